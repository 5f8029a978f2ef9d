"""A catalog for reviewers: each dataset's effective policy, where each value comes from (`like`,
template, preset, default), what is looser or stricter than the dataset it copies, and the
differences between two versions of a catalog (`iq catalog`, `iq explain CATALOG`, `iq diff A B`).

Looser means the dataset allows more: a smaller k, more receivers or purposes, finer rounding, no
or a weaker dominance rule, more cells, row counts, fast linkage, no approval (spec/catalog.md 1.2).
A policy field this module has no order for is reported as changed.
"""
from __future__ import annotations


def _receivers(ds) -> set[str]:
    return set(ds.receivers())


def _purposes(ds):
    return set(ds.policy.purposes) or None  # None: any purpose


def _dominance(ds):
    d = ds.policy.dominance
    return None if d is None else (d.n, d.k)


def _dominance_looser(a, b) -> bool | None:
    if a == b:
        return None
    if a is None or b is None:
        return a is not None  # dropping the rule loosens it
    if b[0] <= a[0] and b[1] >= a[1]:
        return True
    if b[0] >= a[0] and b[1] <= a[1]:
        return False
    return None


def _cap_looser(a, b) -> bool:
    """None is no cap: one query may spend the whole budget."""
    return a is not None and (b is None or a < b)


_PRIVACY_LOOSER = {"require": lambda a, b: a and not b, "epsilon_budget": lambda a, b: a < b,
                   "max_epsilon_per_query": _cap_looser, "delta_budget": lambda a, b: a < b,
                   "period_days": lambda a, b: a > b, "max_rows_per_person": lambda a, b: a > b,
                   "noisy_threshold": lambda a, b: a and not b}
"""Per field of [policy.privacy]: does the change from a to b release more? (A shorter period renews the
budget sooner; fewer rows per person means less noise; no cap lets one query spend the whole budget.)"""


def _privacy_looser(a, b) -> bool | None:
    """A privacy section added lets `@epsilon` replace the threshold rules and the guard (IQ328): looser.
    Removed: looser if it required DP (exact queries again), stricter otherwise (no more DP)."""
    if a == b:
        return None
    if a is None or b is None:
        return True if a is None else a.require
    ways = {f(getattr(a, k), getattr(b, k)) or (getattr(a, k) != getattr(b, k) and "stricter")
            for k, f in _PRIVACY_LOOSER.items()} - {False}
    return True if True in ways else (False if ways == {"stricter"} else None)


def _looser(field: str, a, b) -> bool | None:
    """True if dataset b allows more than a in `field`, False if less, None if neither (or no order)."""
    if field == "receivers":
        ra, rb = _receivers(a), _receivers(b)
        return None if ra == rb else (True if not rb <= ra else (False if rb < ra else None))
    if field == "purposes":
        pa, pb = _purposes(a), _purposes(b)
        if pa == pb:
            return None
        if pa is None or pb is None:
            return pb is None
        return True if not pb <= pa else False
    if field == "dominance":
        return _dominance_looser(_dominance(a), _dominance(b))
    if field == "privacy":
        return _privacy_looser(a.policy.privacy, b.policy.privacy)
    va, vb = getattr(a.policy, field), getattr(b.policy, field)
    if va == vb:
        return None
    smaller_is_looser = {"min_group_size", "round_counts_to"}
    if field in smaller_is_looser:
        return vb < va
    if field == "max_groups":
        return vb > va
    if field == "allow_row_counts":
        return bool(vb)
    if field == "require_approval":
        return not vb
    if field == "linkage":
        return vb == "fast"
    return None


ROLE_RANK = {"hidden": 0, "key": 1, "dimension": 2, "measure": 3}
"""What a role lets a query do, least first: nothing; join and count distinct; group and filter; aggregate."""


def column_looser(old, new) -> list[str]:
    """How a column's new definition allows more than its old one (empty: not looser). Through `like`,
    one owner's edit of its column reaches every dataset that copies it: `iq diff` must say so."""
    out = []
    if ROLE_RANK[new.role] > ROLE_RANK[old.role]:
        out.append(f"role {old.role} -> {new.role}")
    if new.where and not old.where:
        out.append("allowed in WHERE")
    more = sorted(set(new.allowed_aggregates()) - set(old.allowed_aggregates()))
    if more:
        out.append("aggregates " + ", ".join(more))
    lo, hi = getattr(old, "clamp", None), getattr(new, "clamp", None)
    if hi is not None and (lo is None or hi[0] < lo[0] or hi[1] > lo[1]):
        out.append(f"clamp {list(lo) if lo else 'none'} -> {list(hi)}")
    if getattr(new, "unique", False) and not getattr(old, "unique", False):
        out.append("declared unique")
    return out


def show(field: str, ds) -> str:
    if field == "receivers":
        return ", ".join(ds.receivers()) + ("" if ds.policy.receivers else "  (the owner only)")
    if field == "purposes":
        return ", ".join(ds.policy.purposes) or "any"
    v = getattr(ds.policy, field)
    if field == "dominance":
        return "none" if v is None else f"(n={v.n}, k={v.k:g})"
    if hasattr(v, "model_dump"):
        return ", ".join(f"{k}={x}" for k, x in v.model_dump().items())
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def compare(field: str, old, new, name: str) -> str:
    """`looser than NAME (old)` / `stricter than ...` / `changed from ...` / '' for the same value."""
    if show(field, old) == show(field, new):
        return ""
    verdict = _looser(field, old, new)
    word = {True: "looser than", False: "stricter than", None: "changed from"}[verdict]
    return f"{word} {name} ({show(field, old)})"


def policy_fields(ds) -> list[str]:
    return list(type(ds.policy).model_fields)


def explain_catalog(catalog, path) -> str:
    """Every dataset: owner, `like` chain, effective policy with the origin of each value and how it
    compares with the dataset it is like, and its columns (where each was defined)."""
    out = [f"catalog {catalog.name} ({path}), digest {catalog.digest()}"]
    for name, ds in catalog.datasets.items():
        lin = catalog.lineage(name)
        like = f"  like {' <- '.join(lin.chain)}" if lin.chain else ""
        out.append(f"\n{name}  owner {ds.owner}, k={ds.policy.min_group_size}{like}  {ds.description}".rstrip())
        parent = catalog.datasets.get(lin.chain[0]) if lin.chain else None
        out.append("  policy (effective):")
        for field in policy_fields(ds):
            origin = lin.policy.get(field, "default")
            origin = "own" if origin == name else origin
            note = compare(field, parent, ds, lin.chain[0]) if parent is not None else ""
            out.append(f"    {field:18} {show(field, ds):32} {origin:24} {note}".rstrip())
        out.append(f"  columns ({len(ds.columns)}):")
        for c, col in ds.columns.items():
            origin = lin.columns.get(c, name)
            origin = "own" + origin[len(name):] if origin == name or origin.startswith(name + " (") else origin
            where = f"  [{origin}]" if lin.chain else ""
            out.append(f"    {c:28} {col.type:9} {col.role:10} {col.description}{where}".rstrip())
    return "\n".join(out)


def diff_catalogs(a, b) -> tuple[str, bool]:
    """What changed between two catalogs, dataset by dataset (policies first), and whether some
    dataset's policy got looser."""
    lines, looser = [], False
    if a.digest() == b.digest():
        return "the catalogs are the same (same digest)", False
    for name in a.datasets.keys() - b.datasets.keys():
        lines.append(f"dataset {name}: removed")
    for name in b.datasets.keys() - a.datasets.keys():
        lines.append(f"dataset {name}: added (owner {b.datasets[name].owner}), policy k={b.datasets[name].policy.min_group_size}")
        looser = True
    for name in [n for n in b.datasets if n in a.datasets]:
        old, new = a.datasets[name], b.datasets[name]
        if old == new:
            continue
        if old.owner != new.owner:
            lines.append(f"dataset {name}: owner {old.owner} -> {new.owner}")
        for field in policy_fields(new):
            note = compare(field, old, new, "before")
            if note:
                looser |= note.startswith("looser")
                lines.append(f"dataset {name}: policy {field} = {show(field, new)}, {note}")
        for c in old.columns.keys() - new.columns.keys():
            lines.append(f"dataset {name}: column {c} removed")
        for c in new.columns:
            if c not in old.columns:
                lines.append(f"dataset {name}: column {c} added ({new.columns[c].type}), looser: a column to query")
                looser = True
            elif old.columns[c] != new.columns[c]:
                changed = [k for k, v in new.columns[c].model_dump().items()
                           if old.columns[c].model_dump().get(k) != v]
                more = column_looser(old.columns[c], new.columns[c])
                looser |= bool(more)
                lines.append(f"dataset {name}: column {c} changed: {', '.join(changed)}"
                             + (f", looser: {'; '.join(more)}" if more else ""))
        if any(getattr(old, f) != getattr(new, f) for f in ("max_rows", "person_key", "description")):
            lines.append(f"dataset {name}: " + ", ".join(f"{f} {getattr(old, f)!r} -> {getattr(new, f)!r}" for f in
                                                       ("max_rows", "person_key", "description")
                                                       if getattr(old, f) != getattr(new, f)))
    lines.sort(key=lambda s: "looser" not in s)
    head = "catalog policies are looser in some dataset" if looser else "no dataset's policy is looser"
    return "\n".join([head, *lines]), looser
