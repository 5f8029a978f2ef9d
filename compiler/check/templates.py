"""Catalog templates and policy presets: expand a raw catalog before it is validated.

A dataset may start from a standard template and a policy preset from the stdlib:

    [datasets.ngo_cases]
    owner = "ngo"
    from = "htcds.victim"                  # columns of HTCDS 2.0 Person + Victim Context
    exclude = ["prs_Birthdate"]            # drop template columns
    policy_preset = "research-output"      # k = 10, counts rounded to 5, dominance (2, 85)
    [datasets.ngo_cases.columns]
    prs_Gender = { type = "category", domain = ["Feminine", "Masculine"] }   # replaces the template's
    [datasets.ngo_cases.policy]
    receivers = ["ngo", "police"]          # the dataset's own policy keys win over the preset

Expansion only rewrites the raw TOML dict (the three keys `from`, `exclude`, `policy_preset` are
removed); the result is validated like any hand-written catalog. spec/stdlib.md has the rules.
"""
from __future__ import annotations

import copy
import difflib
import tomllib
from functools import lru_cache
from importlib.resources import files

TEMPLATE_KEYS = ("from", "exclude", "policy_preset")


@lru_cache(maxsize=1)
def load_templates() -> dict[str, dict]:
    """The stdlib's templates by name (`htcds.victim`, ...), read from the installed package data."""
    text = files("insightql.stdlib.data").joinpath("htcds_templates.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["templates"]


def _unknown(kind: str, name, known) -> ValueError:
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
    return ValueError(f"unknown {kind} {name!r}{hint}")


def _expand_columns(name: str, ds: dict, template_name, exclude) -> None:
    templates = load_templates()
    if not isinstance(template_name, str) or template_name not in templates:
        raise _unknown("template", template_name, templates)
    template = templates[template_name]
    if not isinstance(exclude, list) or not all(isinstance(c, str) for c in exclude):
        raise ValueError(f"dataset {name!r}: exclude must be a list of column names")
    columns = copy.deepcopy(template["columns"])
    for col in exclude:
        if col not in columns:
            raise ValueError(f"dataset {name!r}: exclude names {col!r}, which template {template_name!r} "
                             f"does not have")
        del columns[col]
    own = ds.get("columns", {})
    if not isinstance(own, dict):
        raise ValueError(f"dataset {name!r}: columns must be a table")
    columns.update(own)  # a column the dataset declares replaces the template's entirely
    ds["columns"] = columns
    ds.setdefault("description", template.get("description", ""))
    key = template.get("person_key")
    if "person_key" not in ds and key in columns and columns[key].get("type") == "key":
        ds["person_key"] = key


def _expand_policy(name: str, ds: dict, preset_name) -> None:
    from insightql.stdlib.presets import load_presets, preset_policy

    presets = load_presets()
    if not isinstance(preset_name, str) or preset_name not in presets:
        raise _unknown("policy preset", preset_name, presets)
    own = ds.get("policy", {})
    if not isinstance(own, dict):
        raise ValueError(f"dataset {name!r}: policy must be a table")
    ds["policy"] = {**preset_policy(preset_name), **own}


def expand_templates(raw: dict) -> dict:
    """Return a copy of `raw` with every dataset's template and preset applied.

    Raises ValueError (reported as IQ002) for an unknown template or preset, or an `exclude`
    naming a column the template does not have.
    """
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict) or not any(
            isinstance(ds, dict) and any(k in ds for k in TEMPLATE_KEYS) for ds in datasets.values()):
        return raw
    out = dict(raw)
    out["datasets"] = {}
    for name, ds in datasets.items():
        if not isinstance(ds, dict) or not any(k in ds for k in TEMPLATE_KEYS):
            out["datasets"][name] = ds
            continue
        ds = dict(ds)
        template_name = ds.pop("from", None)
        exclude = ds.pop("exclude", None)
        preset_name = ds.pop("policy_preset", None)
        try:
            if template_name is not None:
                _expand_columns(name, ds, template_name, exclude if exclude is not None else [])
            elif exclude is not None:
                raise ValueError(f"dataset {name!r}: exclude needs `from = \"<template>\"`")
            if preset_name is not None:
                _expand_policy(name, ds, preset_name)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith("dataset ") else f"dataset {name!r}: {msg}") from None
        out["datasets"][name] = ds
    return out
