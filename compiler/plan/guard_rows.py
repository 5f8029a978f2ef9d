"""The differencing guard's fallback on rows (`guard.rows`, spec/disclosure.md 3.3) for the new query's
subgroups.

When `compiler/plan/structure.py` cannot relate two releases over the public domain, the guard counts
the rows in exactly one of two families of released cells (a `symdiff` slot) and requires >= k of
them (0 counts as too few). The new cells are compared in `guard.apply` with the main `partials`
step, whose WHERE is the new query's. A new subgroup (a FILTER or CASE indicator, a boolean's TRUE
rows, a nullable column's rows with a value) and the rest of its cell are families of released cells
too, with WHERE AND the subgroup (AND NOT it): each owner runs one more `partials` step per family,
with that WHERE and the new keys, whose `symdiff` slots count the rows in exactly one of the family
and each earlier family (the earlier WHERE, each earlier subgroup, each earlier subgroup's rest),
per new cell and, when the keys differ, in total. The tests go into the flag of the values that
reveal the subgroup, on all rows and on every observer's complement.
"""
from __future__ import annotations

from insightql.compiler.plan.guard_cells import family_where


def earlier_families(entry: dict) -> list[dict | None]:
    """The WHERE of each family of cells an earlier release released: its cells, each subgroup it
    counted, and the rest of each subgroup's cell."""
    subs = entry.get("subgroups", [])
    return [entry["where"], *(family_where(entry["where"], a) for a in subs),
            *(family_where(entry["where"], a, rest=True) for a in subs)]


def entry_scopes(entry: dict) -> list[str]:
    """Per new cell always; in total too when the keys differ (the earlier cells are sums of new ones)."""
    return ["cell"] if entry["scope"] == "cell" else ["cell", "all"]


def main_loads(b) -> dict[str, str]:
    """Each dataset's load node of the query's own `partials` step (it reads every column the query,
    its subgroups and the earlier releases' WHERE and subgroups use)."""
    out = {}
    for d, share in zip(b.lp.datasets, b.shares):
        part = b.g.nodes[share]["inputs"][0]
        out[d] = b.g.nodes[part]["inputs"][0]
    return out


def value_oks(builder, count_slot: str, scopes) -> list[str]:
    """The fallback's tests on the new subgroup counted in `count_slot` and on the rest of its cell,
    against every earlier release in rows mode: flags over the new cells, to AND into the flag of
    each value that reveals the subgroup. Built once per count slot. `scopes` is guard.scopes (passed
    in: guard.py imports this module)."""
    b = builder
    cache = b.__dict__.setdefault("guard_rows_values", {})
    if count_slot in cache:
        return cache[count_slot]
    entries = [e for e in b.guard if e["mode"] == "rows"]
    arg = b.value_columns.get(count_slot)
    oks: list[str] = []
    if entries and arg is not None:
        loads, cN, hi = main_loads(b), b.cells, b.max_rows
        for rest in (False, True):
            slots, tests = [], []
            for e in entries:
                for where in earlier_families(e):
                    for scope in entry_scopes(e):
                        name = f"s{len(slots)}"
                        slots.append({"name": name, "kind": "symdiff", **({"arg": where} if where is not None else {}),
                                      "datasets": e["datasets"], "scope": scope})
                        tests.append((e, name, scope))
            shares = {}
            for d in b.lp.datasets:
                owner = b.catalog.datasets[d].owner
                part = b.add("partials", f"local:{owner}", [loads[d]], [len(slots), cN], dataset=d,
                             where=family_where(b.lp.where, arg, rest), keys=b.guard_keys, slots=slots, cells=cN)
                shares[d] = b.add("share", f"input:{owner}", [part], [len(slots), cN], 0, hi, party=owner)
            for e, name, scope in tests:
                for held, new, _ in scopes(b, e):
                    who = {"who": list(held)} if held else {}
                    d = b.add("combine", "secure", [shares[x] for x in new], [cN], 0, hi, slot=name, how="sum")
                    oks.append(b.secure("ge_const", [d], 0, 1, const=e["k"], rule="guard.rows",
                                        what=("rest of a subgroup, " if rest else "subgroup, ") + scope, **who))
    cache[count_slot] = oks
    return oks
