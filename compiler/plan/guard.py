"""Differencing guard across queries (spec/disclosure.md section 3; ledger: spec/governance.md 3).

A receiver remembers earlier releases; where the cells of two releases nest it subtracts them.
The guard compares a new query N with every earlier release E of the same datasets recorded in a
ledger:

* at compile time, in plaintext: `select` picks the earlier releases to compare (their datasets a
  subset of N's, not the same WHERE, keys and datasets), `compiler/plan/structure.py` relates their
  cells over the public domain (inside, covered, connected groups), and the plan carries one
  `guard` entry per earlier release (covered by the plan hash);
* at each owner: a second `partials` step counts its rows in each earlier cell, on today's rows;
* in MPC: `guard.inside` (an earlier cell minus the released new cells inside it), `guard.contains`
  (a new cell minus the possibly released earlier cells inside it) and `guard.margin` (the same on
  connected groups of cells that cross) must each hold >= k rows, or be forced empty by the
  definitions with nothing in it hidden (strict, the zero rule). Where the public domain cannot be
  enumerated, the fallback `guard.rows` requires the rows that satisfy exactly one of the two
  WHERE clauses to be >= k.

A SUM under a dominance rule gets `guard.dominance` on the same differences: the rule on the
contributions in the difference's rows, which the owners recount (guard_sums.py).

Besides the cells, each subgroup a release counts (FILTER, CASE, AVG(b), a nullable column's rows
with a value) and the rest of its cell are families of released cells compared the same way, new
against earlier in both orders (guard_cells.CellChecks; in the fallback guard_rows.value_oks).

Each party rebuilds the guard from its own ledger at run time (runtime/governance/party_checks.py).
"""
from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from insightql.compiler.plaintext.local_eval import ir_type
from insightql.compiler.check.observer import maximal, observer_holdings
from insightql.compiler.diagnostics import Diagnostic, PlanError
from insightql.compiler.plan import guard_rows
from insightql.compiler.plan.guard_closure import close
from insightql.compiler.plan.guard_split import split_oks
from insightql.compiler.plan.guard_cells import CellChecks, column_types, rest_of
from insightql.compiler.plan.guard_sums import SumChecks, recorded, symdiff_oks
from insightql.compiler.plan.structure import relate


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    return "sha256:" + hashlib.sha256(_canon(obj).encode()).hexdigest()


# -- what a release is, for the guard ------------------------------------------------------------
def signature_of_plan(plan: dict) -> dict:
    """The guard-relevant shape of a plan: datasets, row-level WHERE IR, group keys, k, and the
    columns it summed and parts it counted (`sums`, `parts`: guard_sums.recorded).
    Recorded in each `release` ledger entry (`data.guard_signature`)."""
    if any(n["op"] == "link_join" for n in plan["nodes"]):  # its rows are comparable only with the same join
        return _join_signature(plan)
    part = next(n for n in plan["nodes"] if n["op"] == "partials" and not n["attrs"].get("earlier"))
    datasets = sorted({n["attrs"]["dataset"] for n in plan["nodes"]
                       if n["op"] == "partials" and not n["attrs"].get("earlier")})
    return {"query": plan["query"]["name"], "plan_hash": plan["hash"], "datasets": datasets,
            "where": part["attrs"]["where"], "keys": part["attrs"]["keys"],
            "k": plan["policy"]["min_group_size"], **_subgroups(part["attrs"]["slots"]),
            **recorded(plan, part["attrs"]["slots"]),
            **({"dp": True} if plan["policy"].get("privacy") else {}),  # dp_lower.exact_releases
            **({"guard": [_recorded(e) for e in plan["guard"]]} if plan.get("guard") else {})}


def _recorded(entry: dict, nested: bool = True) -> dict:
    """What a release's signature records of one release its guard compared it with: that release's
    cells (datasets, WHERE, keys, subgroups), k, k_old and mode, and (one level) what that release
    recorded of its own guard, so a later query can recompute this release's guard on today's rows
    (guard_cells.CellChecks.own_guard, spec/disclosure.md 3.2). Absent: no guard (or an older entry)."""
    out = {f: entry[f] for f in ("datasets", "where", "keys", "k", "k_old", "mode", "subgroups") if f in entry}
    if nested and entry.get("guarded"):
        out["guarded"] = [_recorded(g, False) for g in entry["guarded"]]
    return out


def _subgroups(slots: list[dict]) -> dict:
    """{"subgroups": [row IR]} of a release that counts parts of its cells, else {} (so a release
    without them, and a ledger entry written before subgroups were recorded, reads as none).
    Each is the argument of a `count` slot that may be NULL: a FILTER's or CASE's indicator, a
    boolean's TRUE rows, a nullable column's rows with a value (COUNT(x), and the count inside
    SUM/AVG/... of x: two of them give it). Its rows, WHERE AND arg IS NOT NULL per key cell, are
    released cells the guard compares like the query's own (spec/disclosure.md 2.13, 3.2)."""
    args = {_canon(s["arg"]): s["arg"] for s in slots
            if s["kind"] == "count" and s["arg"].get("type", {}).get("nullable")}
    return {"subgroups": [args[a] for a in sorted(args)]} if args else {}


def _join_signature(plan: dict) -> dict:
    """Guard signature of a JOIN: one pseudo dataset naming the joined pair, so no UNION/single-
    dataset query is ever compared with it; the WHERE of both sides and the join kind together."""
    link = next(n for n in plan["nodes"] if n["op"] == "link_join")
    sides = [n for n in plan["nodes"] if n["op"] == "link_rows"]
    return {"query": plan["query"]["name"], "plan_hash": plan["hash"],
            "datasets": ["join:" + "+".join(n["attrs"]["dataset"] for n in sides)],
            "where": {"join": link["attrs"]["kind"], "sides": [n["attrs"]["where"] for n in sides]},
            "keys": [k for n in sides for k in n["attrs"]["keys"]], "k": plan["policy"]["min_group_size"]}


def join_guard(builder, sides: list[tuple[str, dict | None, list[dict]]], kind: str) -> None:
    """A JOIN is compared with earlier releases of the same JOIN only, and cannot be yet: a JOIN
    whose pair the ledger records with another WHERE or grouping is not planned (IQ409; the
    parties refuse it as a stale guard too). `sides`: (dataset, WHERE, keys) of U, then M."""
    new = {"datasets": ["join:" + "+".join(d for d, _, _ in sides)], "where": {"join": kind, "sides": [w for _, w, _ in sides]},
           "keys": [k for _, _, keys in sides for k in keys], "k": builder.lp.policy.min_group_size}
    earlier = select(new, getattr(builder, "earlier", None) or [])
    if earlier:
        names = ", ".join(o["query"] or "?" for e in earlier for o in e["from"])
        raise PlanError(Diagnostic("IQ409", f"the ledger records an earlier release of this JOIN ({names}) with "
                                   "another WHERE or grouping; the differencing guard cannot compare two JOINs yet",
                                   None, ["repeat the earlier query as it was, or ask the owners to review both "
                                          "releases together (spec/disclosure.md 6.11)"]))


def _rows_key(r: dict) -> str:
    """The cells a release (or guard entry) released: its datasets, WHERE and keys, and the
    subgroups it counted in them (left out when none, so older entries keep their key)."""
    return _canon([sorted(r["datasets"]), r["where"], r["keys"], *([r["subgroups"]] if r.get("subgroups") else [])])


def select(new: dict, releases: list[dict]) -> list[dict]:
    """Guard entries of a new query `new` = {datasets, where, keys, k} against earlier releases.

    `releases` are release signatures or guard entries of an earlier plan (with `from`);
    selecting from a plan's own guard gives that guard again, which is how a party recompiles a
    plan it received. An earlier release is compared when it read at least one of the new
    query's datasets (its other datasets are then counted too: an earlier total over police and
    NGO minus a new police-only cell is the NGO's part). Sorted, one entry per earlier (datasets,
    WHERE, keys, subgroups); `k` is the larger of the two queries' k, `k_old` the smallest k the
    earlier releases had."""
    datasets = sorted(new["datasets"])
    merged: dict[str, dict] = {}
    for r in releases:
        rd = sorted(r["datasets"])
        if not set(rd) & set(datasets) or _rows_key(r) == _rows_key(new):
            continue  # no rows in common (a JOIN's rows are its pair's: "join:u+m"), or the same cells
        origin = r.get("from") or [{"query": r.get("query"), "plan_hash": r.get("plan_hash")}]
        e = merged.setdefault(_rows_key(r), {"datasets": rd, "where": r["where"], "keys": r["keys"], "k": 0,
                                             "k_old": int(r.get("k_old", r["k"])), "from": [],
                                             **({"subgroups": r["subgroups"]} if r.get("subgroups") else {})})
        e["k"] = max(e["k"], int(r["k"]), int(new["k"]))
        e["k_old"] = min(e["k_old"], int(r.get("k_old", r["k"])))
        e["from"] = sorted({_canon(o): o for o in e["from"] + origin}.values(), key=_canon)
        guarded = r.get("guarded", r.get("guard", []))  # what each earlier release's own guard compared
        if guarded:
            e["guarded"] = sorted({_canon(g): g for g in e.get("guarded", []) + guarded}.values(), key=_canon)
    return [merged[k] for k in sorted(merged) if merged[k]["k"] > 1]  # k = 1: nothing to protect


def coverage(guard: list[dict], new: dict, releases: list[dict]) -> tuple[list[dict], list[dict]]:
    """(missing, unknown) for a plan's guard against a party's own ledger releases:
    `missing` are comparable releases the guard does not cover (a stale guard); `unknown` are
    guard entries naming a release (plan hash) this ledger does not record with those rows."""
    required = select(new, releases)
    have = {_rows_key(g): g for g in guard}
    missing = []
    for r in required:
        g = have.get(_rows_key(r))
        known = {o["plan_hash"] for o in (g["from"] if g else [])}
        missing += [o for o in r["from"] if o["plan_hash"] not in known]
    recorded = {(rel["plan_hash"], _rows_key(rel)) for rel in releases}
    unknown = [o for g in guard for o in g["from"] if (o["plan_hash"], _rows_key(g)) not in recorded]
    return missing, unknown


# -- circuit hooks (called from compiler/plan/circuit.py) ---------------------------------------------
def declare(builder, keys_ir: list[dict]) -> list[dict]:
    """Select the guard entries; relate each to the new query over the public domain (entry
    `mode` "cells"), or fall back to a `symdiff` slot (mode "rows"). Returns the row IR the owners
    must be able to evaluate (earlier WHERE and keys), so their columns are loaded."""
    lp = builder.lp
    earlier = getattr(builder, "earlier", None) or []
    new = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": keys_ir, "k": lp.policy.min_group_size,
           **_subgroups(builder.slots)}
    builder.guard = select(new, earlier)
    builder.guard_keys = keys_ir
    builder.guard_slots, builder.relations, irs = [], [], []
    for e in builder.guard:
        rel = relate(builder.catalog, new, {"datasets": e["datasets"], "where": e["where"], "keys": e["keys"]})
        if rel is None and not set(e["datasets"]) <= set(lp.datasets):
            raise PlanError(Diagnostic(
                "IQ408", f"the differencing guard cannot relate this query to the earlier release of "
                f"{', '.join(o['query'] or '?' for o in e['from'])}, which read datasets this query does not",
                None, ["group and filter by columns whose values the catalog enumerates (categories, years, bands), "
                       "or ask the owners to review the two releases together"]))
        e["mode"] = "cells" if rel is not None else "rows"
        if rel is None:  # per new cell always; in total too when the keys differ (sums of cells)
            e["scope"] = "cell" if digest(e["keys"]) == digest(keys_ir) else "all"
        builder.relations.append(rel)
        for ir in [e["where"], *(k["expr"] for k in e["keys"]), *e.get("subgroups", [])]:
            _add_column_types(lp, ir)
            irs.append(ir)
        # the fallback compares the new cells with the earlier cells, each earlier subgroup and the
        # rest of its cell (the new subgroups: guard_rows.value_oks)
        builder.guard_slots.append([] if rel is not None else
                                   [builder.slot("symdiff", where, datasets=e["datasets"], scope=scope)
                                    for where in guard_rows.earlier_families(e)
                                    for scope in guard_rows.entry_scopes(e)])
    return irs


def _add_column_types(lp, ir) -> None:
    for c, t in column_types([ir]).items():
        lp.columns.setdefault(c, ir_type(t))


def scopes(builder, entry: dict, every: bool = False) -> list[tuple[tuple, list[str], list[str]]]:
    """(held, new datasets, earlier datasets) the guard's differences are tested on: all rows, and
    for every largest holding of an observer (over the owners of both queries' datasets) what it
    does not hold, where the new query still has rows (an owner subtracts its own rows from a
    difference too: spec/disclosure.md 3.2). `every`: every holding, not only the largest, for a
    rule that is not monotone in the rows (guard.dominance: a larger complement can be dominated
    where each smaller one is not)."""
    cat, lp = builder.catalog, builder.lp
    owner = {d: cat.datasets[d].owner for d in {*lp.datasets, *entry["datasets"]}}
    out = [((), list(lp.datasets), list(entry["datasets"]))]
    held_sets = observer_holdings(sorted(set(owner.values())), list(lp.policy.receivers), cat.party_names())
    for held in held_sets if every else maximal(held_sets):
        new = [d for d in lp.datasets if owner[d] not in held]
        if new:
            out.append((held, new, [d for d in entry["datasets"] if owner[d] not in held]))
    return out


def apply(builder, released: str) -> str:
    """AND every entry's checks on rows, on all rows and on every observer's complement, into the
    new cells' release flag (the checks on values follow in `apply_values`); a cell they withhold
    takes its component with it (guard_closure.py, `guard.closure`)."""
    oks = []
    builder.guard_checks = []
    for e, slots, rel in zip(builder.guard, builder.guard_slots, builder.relations):
        checks = None
        if rel is not None:
            checks = CellChecks(builder, e, rel, builder.guard_keys, getattr(builder, "value_columns", {}))
            builder.guard_checks.append((e, checks))
        for held, new, old in scopes(builder, e):
            who = {"who": list(held)} if held else {}
            if rel is None:
                for slot in slots:
                    d = builder.combined[slot] if not held else builder.rules.part(slot, new)
                    oks.append(builder.secure("ge_const", [d], 0, 1, const=e["k"], rule="guard.rows",
                                              what=next(s["scope"] for s in builder.slots if s["name"] == slot), **who))
            elif old:  # (an observer holding every earlier row has nothing of it to subtract from)
                oks += [checks.ok("rows", released, new, old, who, q) for q in checks.families("rows")]
    oks += _derived_family_oks(builder, released)
    oks += split_oks(builder, released, scopes)  # a cell split by two earlier releases
    if not oks:
        return released
    return close(builder, released, builder.rules.all_of([released, *oks]), "cell")


def _derived_family_oks(builder, released: str) -> list[str]:
    """A subgroup whose rest (or a rest whose subgroup) holds the same rows as an earlier release's
    cell by definition is released with the cell (n minus that earlier cell): its tests gate the cell
    flag, in the cells where that holds."""
    checks_all = getattr(builder, "guard_checks", [])
    derived: dict[str, np.ndarray] = {}
    for e, c in checks_all:
        for q in c.columns:
            for fam, other in ((q, rest_of(q)), (rest_of(q), q)):
                for oq in c.old_families():
                    rel = c.relation(other, oq, list(builder.lp.datasets), list(e["datasets"]))
                    if rel is not None:
                        twin = rel.same.any(axis=1)
                        derived[fam] = derived.get(fam, np.zeros_like(twin)) | twin
    oks = []
    for fam, twin in sorted(derived.items()):
        if not twin.any():
            continue
        for e, c in checks_all:
            for held, new, old in scopes(builder, e):
                if old:
                    who = {"who": list(held)} if held else {}
                    for oq in c.families(fam):
                        ok = c.ok(fam, released, new, old, who, oq)
                        if not twin.all():  # only the cells where the family is derived
                            fail = c.keep(builder.secure("not", [ok], 0, 1), np.flatnonzero(twin), builder.cells)
                            ok = builder.secure("not", [fail], 0, 1)
                        oks.append(ok)
    return oks


def apply_values(builder, count_slot: str, flag: str, before: str | None = None) -> str:
    """A value's flag after the guard on its column's rows with a value (spec/disclosure.md 3.2):
    a SUM over a difference of >= k rows of which 1..k-1 have a value is a value of that group.
    And the subgroup it reveals (the rows where a FILTER/CASE condition holds, a boolean's TRUE rows,
    a nullable column's rows with a value) and the rest of its cell (the rows where it is NULL:
    n - m beside COUNT(*)), each a family of released cells, against every family of each earlier
    release (spec/disclosure.md 2.13, 3.2); in the fallback, their rows against the earlier
    families' rows (guard_rows, 3.3). `before` (>= flag): the value's flag before counts.pair and
    filter.parts, so a value they withhold in a released cell closes its component too (their
    groups are not tested on the remainder "earlier cell minus the released new values")."""
    oks = []
    for e, checks in getattr(builder, "guard_checks", []):
        if count_slot not in checks.parts:
            continue
        for held, new, old in scopes(builder, e):
            if old:
                oks.append(checks.ok(count_slot, flag, new, old, {"who": list(held)} if held else {}))
        # the subgroup and its rest as released cells of their own (WHERE AND (NOT) the subgroup, per
        # key cell), against the earlier cells, every earlier subgroup and every earlier rest
        for held, new, old in scopes(builder, e):
            if old:
                who = {"who": list(held)} if held else {}
                oks += [checks.ok(q_new, flag, new, old, who, q)
                        for q_new in (count_slot, rest_of(count_slot)) for q in checks.families(q_new)]
    oks += guard_rows.value_oks(builder, count_slot, scopes)
    if not oks:
        return flag
    return close(builder, before or flag, builder.rules.all_of([flag, *oks]), "value")


def apply_sums(builder, p: dict, flag: str) -> str:
    """A SUM's flag after guard.dominance (spec/disclosure.md 3.2): under a dominance rule (the SUM
    has `top` and `abssum` slots), the difference of two released sums is the sum over the
    difference's rows, and the rule must hold on it, in every group of cells the guard relates,
    on all rows and on every observer's complement (compiler/plan/guard_sums.py)."""
    if "top" not in p:
        return flag
    oks = []
    every = functools.partial(scopes, every=True)  # sum.dominance too tests every holding (not monotone)
    for e, checks in getattr(builder, "guard_checks", []):
        sums = SumChecks(checks, p["top"], p["abssum"], p["count"])
        for held, new, old in every(builder, e):
            if old:
                oks.append(sums.ok(flag, new, old, {"who": list(held)} if held else {}))
    for e in builder.guard if getattr(builder, "guard", None) else []:
        if e["mode"] == "rows":
            oks += symdiff_oks(builder, e, p["top"], p["abssum"], every)
    oks = [ok for ok in oks if ok != flag]  # an earlier release that summed nothing of the column: no test
    if not oks:
        return flag
    builder.guard_dominance = True
    return close(builder, flag, builder.rules.all_of([flag, *oks]), "sum")


def leakage_item(plan_guard: list[dict], to: list[str], cells: int, dominance: bool = False,
                 closure: bool = False) -> dict:
    names = sorted({o["query"] or "?" for e in plan_guard for o in e["from"]})
    rules = sorted({r for e in plan_guard for r in (["guard.rows"] if e["mode"] == "rows" else
                                                     ["guard.inside", "guard.contains", "guard.margin"])}
                   | ({"guard.dominance"} if dominance else set()) | ({"guard.closure"} if closure else set()))
    return {"item": "guard_outcome", "to": [], "cells": cells, "rules": rules, "public": False,
            "detail": "not revealed on its own: the differencing guard against earlier release(s) "
                      + ", ".join(names) + " is part of each cell's suppression flag (spec/disclosure.md section 3)"}
