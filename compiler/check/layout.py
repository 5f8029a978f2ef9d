"""Dataset layouts: `like = "other_dataset"` or `like = "template:NAME"`, resolved before validation.

Several organisations that keep the same layout write it once; every other dataset reuses it:

    [datasets.ngo_clients]
    like = "police_victims"             # columns, owner, policy, ... of police_victims
    owner = "ngo"                       # written fields replace the inherited ones
    exclude = ["debt_eur"]              # drop inherited columns
    [datasets.ngo_clients.columns]
    person_id = { unique = true }       # no `type`: merged field by field into the inherited column
    intake = { type = "date", min = 2020-01-01, max = 2025-12-31 }   # with `type`: a whole column
    [datasets.ngo_clients.policy]
    min_group_size = 20                 # key by key over the inherited policy (stricter or looser)

A stdlib template (`template:htcds.victim`, stdlib/data/htcds_templates.toml, spec/stdlib.md
section 2) is a layout without owner or policy: columns, description and `person_key`;
`from = "htcds.victim"` is the older spelling of `like = "template:htcds.victim"`.
Resolution only rewrites the raw TOML dict, so a dataset written with `like` validates, digests
and compiles exactly like the same dataset written out. Each dataset's `Lineage` records where
every field came from, for `iq catalog` / `iq explain CATALOG` / `iq diff`. spec/catalog.md has
the rules; errors are IQ003 (unknown name), IQ004 (cycle), IQ005 (column not in the layout).
"""
from __future__ import annotations

import copy
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

LAYOUT_KEYS = ("like", "from", "exclude", "policy_preset")
INHERITED_FIELDS = ("owner", "description", "max_rows", "person_key")
TEMPLATE_PREFIX = "template:"


@dataclass
class Lineage:
    """Where a dataset's fields come from: the `like` chain, and per field the dataset (or
    `template:NAME`, `preset NAME`) whose text wrote the value. Fields absent are catalog defaults."""
    chain: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    policy: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    """column -> where its definition was last written (`police_victims`, or `ngo (over police)`
    when a type-less override merged fields into an inherited column)."""


@lru_cache(maxsize=1)
def load_templates() -> dict[str, dict]:
    """The stdlib's templates by name (`htcds.victim`, ...): layouts without owner or policy, read
    from the installed package data (stdlib/data/htcds_templates.toml, made by stdlib/make_templates.py)."""
    text = files("insightql.stdlib.data").joinpath("htcds_templates.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["templates"]


class LayoutError(Exception):
    """One layout problem: code (IQ002-IQ005), message, the dataset, the key path to point at, hints."""

    def __init__(self, code: str, message: str, dataset: str, path: tuple[str, ...] = (), hints=()):
        super().__init__(message)
        self.code, self.message, self.dataset, self.path, self.hints = code, message, dataset, path, list(hints)
        self.cycle: frozenset[str] | None = None


def _close(name: str, known) -> list[str]:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return [f"did you mean {close[0]!r}?"] if close else []


class _Resolver:
    def __init__(self, datasets: dict):
        self.datasets = datasets
        self.done: dict[str, tuple[dict, Lineage]] = {}
        self.visiting: list[str] = []

    def template(self, name: str, ds_name: str, path: tuple[str, ...]) -> tuple[dict, Lineage]:
        templates = load_templates()
        if name not in templates:
            known = [TEMPLATE_PREFIX + t for t in templates]
            raise LayoutError("IQ003", f"dataset {ds_name!r}: no template {TEMPLATE_PREFIX + name!r}", ds_name, path,
                              _close(TEMPLATE_PREFIX + name, known) + ["templates: " + ", ".join(sorted(known))])
        t = templates[name]
        origin = TEMPLATE_PREFIX + name
        raw = {"columns": copy.deepcopy(t["columns"]), "description": t.get("description", "")}
        if t.get("person_key") in raw["columns"]:
            raw["person_key"] = t["person_key"]
        lin = Lineage((), {k: origin for k in ("description", "person_key") if k in raw},
                      {}, dict.fromkeys(raw["columns"], origin))
        return raw, lin

    def parent(self, name: str, ds: dict) -> tuple[dict, Lineage] | None:
        like, old = ds.get("like"), ds.get("from")
        if like is not None and old is not None:
            raise LayoutError("IQ002", f"dataset {name!r}: `like` and `from` both given; `from = \"T\"` is the older "
                              f"spelling of `like = \"template:T\"`", name, ("from",), ["keep only `like`"])
        key = "like" if like is not None else "from"
        target = like if like is not None else old
        if target is None:
            return None
        if not isinstance(target, str):
            raise LayoutError("IQ002", f"dataset {name!r}: {key} must be a string", name, (key,))
        if key == "from":
            return self.template(target, name, (key,))
        if target.startswith(TEMPLATE_PREFIX):
            return self.template(target[len(TEMPLATE_PREFIX):], name, (key,))
        if target not in self.datasets:
            raise LayoutError("IQ003", f"dataset {name!r}: like names {target!r}, which is no dataset of this catalog",
                              name, (key,), _close(target, self.datasets)
                              + ["`like` takes a dataset of this catalog or `template:NAME` (spec/catalog.md)"])
        if target in self.visiting:
            cycle = self.visiting[self.visiting.index(target):] + [target]
            err = LayoutError("IQ004", f"dataset {name!r}: like forms a cycle: {' -> '.join(cycle)}", name, (key,),
                              ["one dataset of the cycle must be written out (or start from a template)"])
            err.cycle = frozenset(cycle)
            raise err
        return self.resolve(target)

    def resolve(self, name: str) -> tuple[dict, Lineage]:
        if name in self.done:
            return self.done[name]
        ds = self.datasets[name]
        if not isinstance(ds, dict) or not any(k in ds for k in LAYOUT_KEYS):
            self.done[name] = (ds, _written_out(name, ds))
            return self.done[name]
        self.visiting.append(name)
        try:
            got = self.parent(name, ds)
        finally:
            self.visiting.pop()
        raw, lin = copy.deepcopy(got) if got else ({}, Lineage())
        if got:  # the parent, then the parent's own chain
            lin.chain = (ds["like"] if ds.get("like") is not None else TEMPLATE_PREFIX + ds["from"],) + lin.chain
        out = {k: v for k, v in raw.items() if k not in ("columns", "policy")}
        _apply_fields(name, ds, out, lin)
        out["columns"] = _columns(name, ds, raw.get("columns", {}), lin, got is not None)
        if "person_key" in out and out["person_key"] not in out["columns"] and "person_key" not in ds:
            del out["person_key"]  # the inherited key column was excluded
            lin.fields.pop("person_key", None)
        policy = _policy(name, ds, raw.get("policy", {}), lin)
        if policy or "policy" in ds:
            out["policy"] = policy
        self.done[name] = (out, lin)
        return out, lin


def _written_out(name: str, ds) -> Lineage:
    """A dataset written out: every field it sets is its own."""
    if not isinstance(ds, dict):
        return Lineage()
    policy, columns = ds.get("policy"), ds.get("columns")
    return Lineage((), {k: name for k in INHERITED_FIELDS if k in ds},
                   dict.fromkeys(policy if isinstance(policy, dict) else {}, name),
                   dict.fromkeys(columns if isinstance(columns, dict) else {}, name))


def _apply_fields(name: str, ds: dict, out: dict, lin: Lineage) -> None:
    for k, v in ds.items():
        if k in LAYOUT_KEYS or k in ("columns", "policy"):
            continue
        out[k] = v
        if k in INHERITED_FIELDS:
            lin.fields[k] = name


def _columns(name: str, ds: dict, inherited: dict, lin: Lineage, has_parent: bool) -> dict:
    exclude = ds.get("exclude")
    own = ds.get("columns", {})
    if not isinstance(own, dict):
        raise LayoutError("IQ002", f"dataset {name!r}: columns must be a table", name, ("columns",))
    if exclude is not None:
        if not has_parent:
            raise LayoutError("IQ005", f"dataset {name!r}: exclude without `like`: there are no inherited columns "
                              f"to drop", name, ("exclude",), ["remove `exclude`, or add `like = \"...\"`"])
        if not isinstance(exclude, list) or not all(isinstance(c, str) for c in exclude):
            raise LayoutError("IQ002", f"dataset {name!r}: exclude must be a list of column names", name, ("exclude",))
    columns = dict(inherited)
    for col in exclude or []:
        if col not in columns:
            raise LayoutError("IQ005", f"dataset {name!r}: exclude names {col!r}, which {lin.chain[0]!r} does not have",
                              name, ("exclude",), _close(col, columns))
        del columns[col]
        lin.columns.pop(col, None)
    for col, spec in own.items():
        if isinstance(spec, dict) and "type" not in spec and has_parent:
            if col not in columns:
                raise LayoutError("IQ005", f"dataset {name!r}: column {col!r} has no `type` and {lin.chain[0]!r} has "
                                  f"no column {col!r} to change", name, ("columns", col),
                                  _close(col, columns) + ["a new column needs its `type`; a change of an inherited "
                                                          "column names it exactly"])
            columns[col] = {**columns[col], **spec}
            lin.columns[col] = f"{name} (over {lin.columns.get(col, lin.chain[0])})"
        else:
            columns[col] = spec  # with a type: the whole column, replacing the inherited one in place
            lin.columns[col] = name
    return columns


def _policy(name: str, ds: dict, inherited: dict, lin: Lineage) -> dict:
    from insightql.stdlib.presets import PRESET_POLICY_FIELDS, load_presets, preset_policy

    policy = dict(inherited)
    preset = ds.get("policy_preset")
    if preset is not None:
        presets = load_presets()
        if not isinstance(preset, str) or preset not in presets:
            raise LayoutError("IQ003", f"dataset {name!r}: no policy preset {preset!r}", name, ("policy_preset",),
                              _close(str(preset), presets) + ["presets: " + ", ".join(sorted(presets))])
        for k in PRESET_POLICY_FIELDS:  # a preset sets every field presets govern: those it leaves out
            policy.pop(k, None)         # return to the catalog defaults, not to the inherited values
            lin.policy.pop(k, None)
        fresh = preset_policy(preset)
        policy.update(fresh)
        lin.policy.update(dict.fromkeys(fresh, f"preset {preset}"))
    own = ds.get("policy", {})
    if not isinstance(own, dict):
        raise LayoutError("IQ002", f"dataset {name!r}: policy must be a table", name, ("policy",))
    policy.update(own)
    lin.policy.update(dict.fromkeys(own, name))
    return policy


def resolve_layouts(raw: dict) -> tuple[dict, dict[str, Lineage], list[LayoutError]]:
    """`raw` with every dataset's `like`/`from`/`exclude`/`policy_preset` applied and removed, each
    dataset's Lineage, and the problems found (a dataset with a problem is left as written)."""
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict):
        return raw, {}, []
    resolver = _Resolver(datasets)
    errors: list[LayoutError] = []
    out, lineage = {}, {}
    for name in datasets:
        try:
            out[name], lineage[name] = resolver.resolve(name)
        except LayoutError as e:  # reported once: a parent's problem stops its children too
            if not any(prev.message == e.message or (e.cycle and prev.cycle == e.cycle) for prev in errors):
                errors.append(e)
            out[name] = {k: v for k, v in datasets[name].items() if k not in LAYOUT_KEYS} \
                if isinstance(datasets[name], dict) else datasets[name]
    if not any(isinstance(ds, dict) and any(k in ds for k in LAYOUT_KEYS) for ds in datasets.values()):
        return raw, lineage, errors
    return {**raw, "datasets": out}, lineage, errors


# ---------------------------------------------------------------------------------- positions
def key_offset(text: str, dataset: str, path: tuple[str, ...]) -> int:
    """Where `datasets.<dataset>.<path>` is written in the TOML text: the key, else the dataset's
    header, else 0 (TOML parsers keep no positions)."""
    name = r'(?:"{0}"|\'{0}\'|{0})'.format(re.escape(dataset))
    header = re.compile(r"^\s*\[\s*datasets\s*\.\s*" + name + r"\s*\]", re.M).search(text)
    if header is None:
        return 0
    table, keys = header, path
    if len(path) == 2 and path[0] in ("columns", "policy"):
        sub = re.compile(r"^\s*\[\s*datasets\s*\.\s*" + name + r"\s*\.\s*" + path[0] + r"\s*\]", re.M).search(text)
        if sub is not None:
            table, keys = sub, path[1:]
    if not keys:
        return table.start() + (len(table[0]) - len(table[0].lstrip()))
    nxt = re.compile(r"^\s*\[", re.M).search(text, table.end())
    end = nxt.start() if nxt else len(text)
    key = re.compile(r"^\s*(?:\"|')?" + re.escape(keys[0]) + r"(?:\"|')?\s*[=.]", re.M).search(text, table.end(), end)
    if key is None:
        return table.start() + (len(table[0]) - len(table[0].lstrip()))
    return key.start() + (len(key[0]) - len(key[0].lstrip()))
