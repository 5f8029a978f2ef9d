"""Differencing guard across queries (spec/disclosure.md section 3; ledger: spec/governance.md 3).

A receiver remembers earlier releases; where the cells of two releases nest it subtracts them.
The guard compares a new query N with every earlier release E of the same datasets recorded in a
ledger:

* at compile time, in plaintext: `select` picks the earlier releases to compare (their datasets a
  subset of N's, not the same WHERE, keys and datasets), `compiler/structure.py` relates their
  cells over the public domain (inside, covered, connected groups), and the plan carries one
  `guard` entry per earlier release (covered by the plan hash);
* at each owner: a second `partials` step counts its rows in each earlier cell, on today's rows;
* in MPC: `guard.inside` (an earlier cell minus the released new cells inside it), `guard.contains`
  (a new cell minus the possibly released earlier cells inside it) and `guard.margin` (the same on
  connected groups of cells that cross) must each hold >= k rows, or be forced empty by the
  definitions with nothing in it hidden (strict, the zero rule). Where the public domain cannot be
  enumerated, the fallback `guard.rows` requires the rows that satisfy exactly one of the two
  WHERE clauses to be >= k.

Each party rebuilds the guard from its own ledger at run time (runtime/governance.py).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from .local_eval import ir_type
from .observer import maximal, observer_holdings
from .diagnostics import Diagnostic, PlanError
from .structure import relate


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    return "sha256:" + hashlib.sha256(_canon(obj).encode()).hexdigest()


# -- what a release is, for the guard ------------------------------------------------------------
def signature_of_plan(plan: dict) -> dict:
    """The guard-relevant shape of a plan: datasets, row-level WHERE IR, group keys, k.
    Recorded in each `release` ledger entry (`data.guard_signature`)."""
    if any(n["op"] == "link_join" for n in plan["nodes"]):  # its rows are comparable only with the same join
        return _join_signature(plan)
    part = next(n for n in plan["nodes"] if n["op"] == "partials" and not n["attrs"].get("earlier"))
    datasets = sorted({n["attrs"]["dataset"] for n in plan["nodes"]
                       if n["op"] == "partials" and not n["attrs"].get("earlier")})
    return {"query": plan["query"]["name"], "plan_hash": plan["hash"], "datasets": datasets,
            "where": part["attrs"]["where"], "keys": part["attrs"]["keys"],
            "k": plan["policy"]["min_group_size"]}


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
                                          "releases together (spec/disclosure.md 6.12)"]))


def _rows_key(r: dict) -> str:
    return _canon([sorted(r["datasets"]), r["where"], r["keys"]])


def select(new: dict, releases: list[dict]) -> list[dict]:
    """Guard entries of a new query `new` = {datasets, where, keys, k} against earlier releases.

    `releases` are release signatures or guard entries of an earlier plan (with `from`);
    selecting from a plan's own guard gives that guard again, which is how a party recompiles a
    plan it received. An earlier release is compared when it read at least one of the new
    query's datasets (its other datasets are then counted too: an earlier total over police and
    NGO minus a new police-only cell is the NGO's part). Sorted, one entry per earlier (datasets,
    WHERE, keys); `k` is the larger of the two queries' k, `k_old` the smallest k the earlier
    releases had."""
    datasets = sorted(new["datasets"])
    merged: dict[str, dict] = {}
    for r in releases:
        rd = sorted(r["datasets"])
        if not set(rd) & set(datasets) or _rows_key(r) == _rows_key(new):
            continue  # no rows in common (a JOIN's rows are its pair's: "join:u+m"), or the same cells
        origin = r.get("from") or [{"query": r.get("query"), "plan_hash": r.get("plan_hash")}]
        e = merged.setdefault(_rows_key(r), {"datasets": rd, "where": r["where"], "keys": r["keys"], "k": 0,
                                             "k_old": int(r.get("k_old", r["k"])), "from": []})
        e["k"] = max(e["k"], int(r["k"]), int(new["k"]))
        e["k_old"] = min(e["k_old"], int(r.get("k_old", r["k"])))
        e["from"] = sorted({_canon(o): o for o in e["from"] + origin}.values(), key=_canon)
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


# -- circuit hooks (called from compiler/circuit.py) ---------------------------------------------
def declare(builder, keys_ir: list[dict]) -> list[dict]:
    """Select the guard entries; relate each to the new query over the public domain (entry
    `mode` "cells"), or fall back to a `symdiff` slot (mode "rows"). Returns the row IR the owners
    must be able to evaluate (earlier WHERE and keys), so their columns are loaded."""
    lp = builder.lp
    earlier = getattr(builder, "earlier", None) or []
    new = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": keys_ir, "k": lp.policy.min_group_size}
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
        for ir in [e["where"], *(k["expr"] for k in e["keys"])]:
            _add_column_types(lp, ir)
            irs.append(ir)
        builder.guard_slots.append([] if rel is not None else
                                   [builder.slot("symdiff", e["where"], datasets=e["datasets"], scope=scope)
                                    for scope in (["cell"] if e["scope"] == "cell" else ["cell", "all"])])
    return irs


def _add_column_types(lp, ir) -> None:
    for c, t in _column_types([ir]).items():
        lp.columns.setdefault(c, ir_type(t))


def _column_types(irs: list) -> dict[str, dict]:
    """{column: type} of the column references in row IR, as the query that wrote it saw them."""
    out: dict[str, dict] = {}

    def walk(x):
        if isinstance(x, dict):
            if "col" in x:
                out.setdefault(x["col"], x["type"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for ir in irs:
        walk(ir)
    return out


def scopes(builder, entry: dict) -> list[tuple[tuple, list[str], list[str]]]:
    """(held, new datasets, earlier datasets) the guard's differences are tested on: all rows, and
    for every largest holding of an observer (over the owners of both queries' datasets) what it
    does not hold, where the new query still has rows (an owner subtracts its own rows from a
    difference too: spec/disclosure.md 3.2)."""
    cat, lp = builder.catalog, builder.lp
    owner = {d: cat.datasets[d].owner for d in {*lp.datasets, *entry["datasets"]}}
    out = [((), list(lp.datasets), list(entry["datasets"]))]
    held_sets = observer_holdings(sorted(set(owner.values())), list(lp.policy.receivers), cat.party_names())
    for held in maximal(held_sets):
        new = [d for d in lp.datasets if owner[d] not in held]
        if new:
            out.append((held, new, [d for d in entry["datasets"] if owner[d] not in held]))
    return out


def apply(builder, released: str) -> str:
    """AND every entry's checks, on all rows and on every observer's complement, into the new
    cells' release flag."""
    oks = []
    for e, slots, rel in zip(builder.guard, builder.guard_slots, builder.relations):
        for held, new, old in scopes(builder, e):
            who = {"who": list(held)} if held else {}
            if rel is None:
                for slot in slots:
                    d = builder.combined[slot] if not held else builder.rules.part(slot, new)
                    oks.append(builder.secure("ge_const", [d], 0, 1, const=e["k"], rule="guard.rows",
                                              what=next(s["scope"] for s in builder.slots if s["name"] == slot), **who))
            else:
                if not old:
                    continue  # the observer holds every earlier row: nothing of E to subtract from
                checks = checks if held else CellChecks(builder, e, rel, released, builder.guard_keys)
                oks.append(checks.ok(new, old, who))
    return builder.rules.all_of([released, *oks]) if oks else released


class CellChecks:
    """guard.inside / guard.contains / guard.margin for one earlier release (spec/disclosure.md 3.2)."""

    def __init__(self, builder, entry: dict, rel, released: str, new_keys: list[dict]):
        self.b, self.e, self.rel, self.f, self.new_keys = builder, entry, rel, released, new_keys
        self.cN, self.cE = rel.new_nonempty.size, rel.old_nonempty.size
        self.hi = builder.max_rows
        self.k = entry["k"]
        # what all scopes share: the earlier cells' counts, and which could have been released
        self.rows_old, self.parts, persons = self.old_counts()
        self.unreleased = builder.secure("not", [released], 0, 1)
        self.possible = self.test(self.rows_old, self.cE, entry["k_old"], "guard.inside",
                                  what="earlier cell possibly released")
        self.certain = self.certainly_released(self.rows_old, self.parts, persons)

    # nodes of other shapes than the new cells'
    def node(self, op, inputs, n, lo=0, hi=1, **attrs) -> str:
        return self.b.add(op, "secure", inputs, [n], lo, hi, **attrs)

    def linear(self, x: str, pairs, n: int, hi: float) -> str:
        return self.node("linear", [x], n, 0, hi, pairs=[[int(i), int(j)] for i, j in pairs], size=n)

    def test(self, x: str, size: int, k: int, rule: str, **attrs) -> str:
        return self.node("ge_const", [x], size, const=k, rule=rule, **attrs)

    def old_counts(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """Each owner's rows (and persons) in every earlier cell, today: shared like any partials."""
        b, e = self.b, self.e
        slots = [{"name": "s0", "kind": "rows"}] + (
            [{"name": "s1", "kind": "persons", "column": b.lp.person_key}] if b.lp.person_key else [])
        loads = {n["attrs"]["dataset"]: nid for nid, n in b.g.nodes(data=True) if n["op"] == "load"}
        read = _column_types([e["where"], *(k["expr"] for k in e["keys"])])
        if b.lp.person_key:
            read.setdefault(b.lp.person_key, b.lp.columns[b.lp.person_key].to_json())
        rows, persons = {}, {}
        for d in e["datasets"]:
            owner = b.catalog.datasets[d].owner
            load = loads.get(d)
            if load is None or any(b.g.nodes[load]["attrs"]["columns"].get(c) != t for c, t in read.items()):
                # the earlier query saw a column with another type (a UNION ALL widens category
                # domains, so codes differ): read it again as the earlier query did
                load = b.add("load", f"local:{owner}", [], [-1], dataset=d, columns=dict(sorted(read.items())))
            part = b.add("partials", f"local:{owner}", [load], [len(slots), self.cE], dataset=d, where=e["where"],
                         keys=e["keys"], slots=slots, cells=self.cE, earlier=True)
            share = b.add("share", f"input:{owner}", [part], [len(slots), self.cE], 0, self.hi, party=owner)
            rows[d] = self.node("combine", [share], self.cE, 0, self.hi, slot="s0", how="sum")
            if b.lp.person_key:
                persons[d] = self.node("combine", [share], self.cE, 0, self.hi, slot="s1", how="sum")
        total = rows[e["datasets"][0]]
        for d in e["datasets"][1:]:
            total = self.node("add", [total, rows[d]], self.cE, 0, self.hi)
        return total, rows, persons

    def ok(self, new: list[str], old: list[str], who: dict) -> str:
        """The new cells' flag for one scope: the rows of the datasets `new` and `old` (all, or
        what an observer does not hold); `who` names the observer in the tests' attrs."""
        b, cN, cE, hi = self.b, self.cN, self.cE, self.hi
        full = list(new) == list(b.lp.datasets)
        rows_new = b.combined[b.slot("rows")] if full else b.rules.part(b.slot("rows"), new)
        # what the definitions force within the scope: the cells restricted to these datasets
        rel = self.rel if full and old == self.e["datasets"] else relate(
            b.catalog, {"datasets": new, "where": b.lp.where, "keys": self.new_keys},
            {"datasets": old, "where": self.e["where"], "keys": self.e["keys"]})
        if rel is None:
            raise PlanError(Diagnostic("IQ408", "the differencing guard cannot relate this query to an earlier "
                                       "release on the rows an observer does not hold", None,
                                       ["group and filter by columns whose values the catalog enumerates"]))
        rows_old = self.parts[old[0]]
        for d in old[1:]:
            rows_old = self.node("add", [rows_old, self.parts[d]], cE, 0, hi)
        f_rows = b.secure("mul", [self.f, rows_new], 0, hi)
        p_rows = self.node("mul", [self.possible, rows_old], cE, 0, hi)
        inside = np.argwhere(rel.new_inside_old)  # (n, e): each new cell lies inside at most one earlier cell
        blocked = []
        # guard.inside: earlier cell e minus the released new cells inside it
        g = self.node("sub", [rows_old, self.linear(f_rows, inside, cE, hi)], cE, -hi, hi)
        all_in = self.none_of(self.linear(self.unreleased, inside, cE, cN), cE)
        forced = self.keep(all_in, np.flatnonzero(rel.covered_old), cE)
        ok_e = self.any_of(cE, [self.node("not", [self.possible], cE), self.test(g, cE, self.k, "guard.inside", **who),
                                forced])
        blocked.append(self.linear(self.node("not", [ok_e], cE), inside[:, ::-1], cN, 1))
        # guard.contains: new cell n minus the possibly released earlier cells inside it
        holds = np.argwhere(rel.old_inside_new)  # (e, n)
        h = b.secure("sub", [rows_new, self.linear(p_rows, holds, cN, hi)], -hi, hi)
        all_certain = self.none_of(self.linear(self.node("not", [self.certain], cE), holds, cN, cE), cN)
        forced = self.keep(all_certain, np.flatnonzero(rel.covered_new), cN)
        ok_n = self.any_of(cN, [self.test(h, cN, self.k, "guard.contains", **who), forced])
        blocked.append(b.secure("not", [ok_n], 0, 1))
        blocked += self.margins(rel, rows_new, f_rows, rows_old, p_rows, who)
        out = blocked[0]
        for x in blocked[1:]:
            out = b.secure("or", [out, x], 0, 1)
        return b.secure("not", [out], 0, 1)

    def margins(self, rel, rows_new, f_rows, rows_old, p_rows, who: dict) -> list[str]:
        """guard.margin on every connected group of cells that can share rows: sums over the group,
        which covers groups whose cells cross (inside and contains see single cells only)."""
        b, cN, cE, hi = self.b, self.cN, self.cE, self.hi
        unreleased, possible, certain = self.unreleased, self.possible, self.certain
        groups = [(i, ns, es) for i, (ns, es) in enumerate(rel.components) if ns and es and len(ns) + len(es) > 2]
        if not groups:
            return []
        m = len(groups)
        n_pairs = [(n, g) for g, (_, ns, _) in enumerate(groups) for n in ns]
        e_pairs = [(x, g) for g, (_, _, es) in enumerate(groups) for x in es]
        closed = [rel.component_closed(i) for i, _, _ in groups]
        new_in = np.array([c[0] for c in closed])  # the group's new rows lie in its earlier cells
        old_in = np.array([c[1] for c in closed])
        # earlier sum minus released new sum, where new in old and every earlier cell possibly released
        g_sum = self.node("sub", [self.linear(rows_old, e_pairs, m, hi * cE), self.linear(f_rows, n_pairs, m, hi * cN)],
                          m, -hi * cN, hi * cE)
        all_new = self.none_of(self.linear(unreleased, n_pairs, m, cN), m)
        all_possible = self.none_of(self.linear(self.node("not", [possible], cE), e_pairs, m, cE), m)
        ok_a = self.any_of(m, [self.node("not", [all_possible], m), self.test(g_sum, m, self.k, "guard.margin", **who),
                               self.keep(all_new, np.flatnonzero(old_in), m)])
        ok_a = self.any_of(m, [ok_a, self.keep(self.const(m, 1), np.flatnonzero(~new_in), m)])
        # new sum minus possibly released earlier sum, where old in new and every new cell released
        h_sum = self.node("sub", [self.linear(rows_new, n_pairs, m, hi * cN), self.linear(p_rows, e_pairs, m, hi * cE)],
                          m, -hi * cE, hi * cN)
        all_certain = self.none_of(self.linear(self.node("not", [certain], cE), e_pairs, m, cE), m)
        ok_b = self.any_of(m, [self.node("not", [all_new], m), self.test(h_sum, m, self.k, "guard.margin", **who),
                               self.keep(all_certain, np.flatnonzero(new_in), m),
                               self.keep(self.const(m, 1), np.flatnonzero(~old_in), m)])
        bad = self.node("not", [self.node("and", [ok_a, ok_b], m)], m)
        return [self.linear(bad, [(g, n) for n, g in n_pairs], cN, 1)]

    def certainly_released(self, rows_old, parts, persons) -> str:
        """An earlier cell that passes the cell rule and every owner's complement rule with this k
        (the strictest reading of what the earlier plan required)."""
        cE, k = self.cE, self.k
        flags = [self.test(rows_old, cE, k, "guard.contains", what="earlier cell released")]
        if persons:
            flags.append(self.any_of(cE, [self.test(p, cE, k, "guard.contains", what="earlier cell persons")
                                          for p in persons.values()]))
        owners = {d: self.b.catalog.datasets[d].owner for d in parts}
        if len(set(owners.values())) > 1:
            for held in maximal([(o,) for o in sorted(set(owners.values()))]):
                rest = [parts[d] for d in parts if owners[d] not in held]
                total = rest[0]
                for x in rest[1:]:
                    total = self.node("add", [total, x], cE, 0, self.hi)
                flags.append(self.test(total, cE, k, "guard.contains", what="earlier complement", who=list(held)))
        return flags[0] if len(flags) == 1 else self.node("and", flags, cE)

    def none_of(self, count: str, size: int) -> str:
        """1 where a count of 0/1 flags is 0."""
        return self.node("not", [self.node("ge_const", [count], size, const=1, rule="guard.inside",
                                           what="some cell not released")], size)

    def keep(self, flag: str, where: np.ndarray, size: int) -> str:
        """The flag where a public condition holds, 0 elsewhere."""
        return self.linear(flag, [(i, i) for i in where], size, 1)

    def const(self, size: int, value: int) -> str:
        return self.node("const", [], size, value, value, value=value)

    def any_of(self, size: int, flags: list[str]) -> str:
        out = flags[0]
        for x in flags[1:]:
            out = self.node("or", [out, x], size)
        return out


def leakage_item(plan_guard: list[dict], to: list[str], cells: int) -> dict:
    names = sorted({o["query"] or "?" for e in plan_guard for o in e["from"]})
    rules = sorted({r for e in plan_guard for r in (["guard.rows"] if e["mode"] == "rows" else
                                                     ["guard.inside", "guard.contains", "guard.margin"])})
    return {"item": "guard_outcome", "to": [], "cells": cells, "rules": rules, "public": False,
            "detail": "not revealed on its own: the differencing guard against earlier release(s) "
                      + ", ".join(names) + " is part of each cell's suppression flag (spec/disclosure.md section 3)"}
