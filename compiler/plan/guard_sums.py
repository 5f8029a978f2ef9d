"""The differencing guard on the dominance of a difference of two sums (`guard.dominance`,
spec/disclosure.md 3.2).

`guard_cells.CellChecks` tests the ROWS of every difference of two releases a receiver can form
(an earlier cell minus the released new cells inside it, a new cell minus the earlier cells inside
it, the groups of cells that cross). A SUM under a dominance rule reveals more: the difference of
two released sums is the sum over the difference's rows, and one person may dominate it (the
total minus the short stays is the long stays' sum, one stay's 20000 of 20040), a value
`sum.dominance` (2.7) withholds when the same group is asked as a cell.

So each owner also recounts the summed column's contributions against the earlier release, on
today's rows, in three `partials` steps per dataset (slots `top`, per person where a person key
exists, and `abssum`, as the SUM's own): the rows in both queries per (earlier cell, new cell), the
earlier rows outside the new WHERE per earlier cell, and the new rows outside the earlier WHERE
per new cell. A group's difference is a union of these parts, chosen by the release flags inside
MPC; its n largest contributions are bounded from above by the sum of its parts' n largest (exact
with one part), its sum of absolute values is exact, and the dominance rule (n, k%) of the policy
must hold on it, on all rows and on the complement of every holding an observer can have (not only
the largest: dominance is not monotone in the rows), else every new cell of the group has its sum
withheld. Only an earlier release that may have summed the column is compared (`summed_before`:
its ledger entry's `sums` name it, or the entry predates them: `recorded` writes them). Which
earlier sums were released is not recorded: the n largest read an
earlier sum as released only when it surely was (its cell surely released and its own dominance
test passing on today's rows), the absolute values whenever it possibly was (the difference can
only be smaller).

In the fallback (`guard.rows`, 3.3: the relation cannot be decided) each owner counts the column's
contributions in the rows that satisfy exactly one of the two WHERE clauses, per new cell (and in
total when the keys differ), as it counts those rows, and the rule must hold on them.
"""
from __future__ import annotations

import json

import numpy as np

from insightql.compiler.plan import guard_rows
from insightql.compiler.plan.guard_cells import CellChecks, column_types, groups_of
from insightql.compiler.plan.guard_earlier import own_sums
from insightql.compiler.plan.lower_expr import columns_used

PARTS = ("both", "old_only", "new_only")  # rows in both WHEREs; only the earlier's; only the new's


def _not_true(where: dict) -> dict:
    """Row IR: the rows where `where` is FALSE or NULL (outside that WHERE)."""
    b = {"kind": "bool", "nullable": False}
    return {"op": "or", "args": [{"op": "not", "args": [where], "type": {**b, "nullable": True}},
                                 {"op": "is_null", "args": [where], "type": b}], "type": b}


def _and(x: dict | None, y: dict) -> dict:
    return y if x is None else {"op": "and", "args": [x, y], "type": {"kind": "bool", "nullable": True}}


# -- which columns a release summed, and which parts it counted (ledger: `sums`, `parts`) ----------
def recorded(plan: dict, slots: list[dict]) -> dict:
    """{"sums": [{arg, clamp, degree}], "parts": [row IR]} of a release, for its guard signature: the
    numeric columns whose sums (degree 1: SUM, AVG) and sums of squares (degree 2: VAR, STDDEV) it
    revealed per cell, and the counted parts of its cells (spec/disclosure.md 2.15: a FILTER's or
    CASE's indicator, a boolean's TRUE rows, a nullable column's rows with a value), without the
    groups its filter.parts tested (they are in the span of these). A ledger entry written before
    these fields reads as unknown (filter.parts: not related; guard.dominance: summed)."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    tested = {nodes[i]["attrs"].get("slot") for n in plan["nodes"] if n["attrs"].get("rule") == "filter.parts"
              for i in n["inputs"] if nodes[i]["op"] == "combine"}
    sums: dict[str, dict] = {}
    for s in slots:
        if s["kind"] in ("sum", "sumsq") and s["arg"].get("type", {}).get("kind") in ("int", "decimal"):
            m = sums.setdefault(_key(s["arg"], s.get("clamp")), {
                "arg": s["arg"], **({"clamp": list(s["clamp"])} if s.get("clamp") is not None else {}), "degree": 1})
            m["degree"] = max(m["degree"], 2 if s["kind"] == "sumsq" else 1)
    parts = {_key(s["arg"]): s["arg"] for s in slots if s["kind"] == "count" and s["name"] not in tested
             and s["arg"].get("type", {}).get("nullable")}
    return {"sums": [sums[k] for k in sorted(sums)], "parts": [parts[k] for k in sorted(parts)]}


def _key(*irs) -> str:
    return json.dumps(irs, sort_keys=True)


def summed_before(builder, entry: dict, arg: dict) -> bool:
    """Whether an earlier release of a guard entry may have revealed a sum of the column(s) of `arg`:
    its ledger entry records one, or does not record its sums (an older entry)."""
    sigs = {s.get("plan_hash"): s for s in getattr(builder, "earlier", None) or []}
    cols = columns_used(arg)
    for o in entry["from"]:
        sig = sigs.get(o["plan_hash"])
        if sig is None or "sums" not in sig or any(columns_used(s["arg"]) & cols for s in sig["sums"]):
            return True
    return False


class SumChecks:
    """guard.dominance for one summed column (its `top` and `abssum` slots) against one earlier
    release whose cells `checks` relates to the new ones (none where no earlier release of the
    entry summed the column: `summed_before`)."""

    def __init__(self, checks: CellChecks, top: str, abssum: str, count: str):
        self.c, self.b = checks, checks.b
        self.cN, self.cE = checks.cN, checks.cE
        spec = {s["name"]: s for s in self.b.slots}
        self.skip = not summed_before(self.b, checks.e, spec[top]["arg"])
        if self.skip:
            return
        self.slots = [{**spec[top], "name": "s0"}, {**spec[abssum], "name": "s1"}]
        self.height = spec[top]["n"] + 1
        lo, hi = self.b._arg_range(spec[top])
        rows = sum(self.b.catalog.datasets[d].max_rows for d in {*self.b.lp.datasets, *checks.e["datasets"]})
        self.hi = max(abs(lo), abs(hi)) * rows  # any sum of absolute values over disjoint rows
        self.read = column_types([self.b.lp.where, *(k["expr"] for k in checks.new_keys), spec[top]["arg"]])
        self.shares = self.recount()
        q = count if count in checks.columns else "rows"
        self.possible, self.top, self.abssum = checks.possible[q], top, abssum
        self.certain = self.surely_released(checks.certain[q])
        # an earlier sum its own release's guard may have withheld is not surely released, and a group
        # whose difference holds it fails: it would give that sum back (guard_earlier.own_sums)
        passed = own_sums(self, self.certain)
        self.guarded = None if passed is None else checks.node("and", [self.possible, checks.node(
            "not", [passed], self.cE)], self.cE)
        if passed is not None:
            self.certain = checks.node("and", [self.certain, passed], self.cE)

    # -- the owners' recount ----------------------------------------------------------------------
    def recount(self) -> dict[str, dict[str, str]]:
        """{part: {dataset: share}}: each owner's contributions in the rows of both queries (per
        earlier cell x new cell), of the earlier query only (per earlier cell) and of the new query
        only (per new cell). A dataset one query does not read has rows of the other only."""
        b, e = self.b, self.c.e
        new_where, old_where = b.lp.where, e["where"]
        keys = {"both": [*e["keys"], *self.c.new_keys], "old_only": e["keys"], "new_only": self.c.new_keys}
        cells = {"both": self.cE * self.cN, "old_only": self.cE, "new_only": self.cN}
        assert all(int(np.prod([k["size"] for k in keys[p]])) == cells[p] for p in PARTS), "cells of the keys"
        out: dict[str, dict[str, str]] = {p: {} for p in PARTS}
        for d in sorted({*b.lp.datasets, *e["datasets"]}):
            in_new, in_old = d in b.lp.datasets, d in e["datasets"]
            wheres = {}
            if in_new and in_old:
                wheres["both"] = old_where if new_where is None else _and(old_where, new_where)
            if in_old and (new_where is not None or not in_new):
                wheres["old_only"] = _and(old_where, _not_true(new_where)) if in_new else old_where
            if in_new and (old_where is not None or not in_old):
                wheres["new_only"] = _and(new_where, _not_true(old_where)) if in_old else new_where
            owner = b.catalog.datasets[d].owner
            load = self.c.load_of(d, self.read)
            for part, where in wheres.items():
                step = b.add("partials", f"local:{owner}", [load], [self.height, cells[part]], dataset=d,
                             where=where, keys=keys[part], slots=self.slots, cells=cells[part], earlier=True)
                out[part][d] = b.add("share", f"input:{owner}", [step], [self.height, cells[part]], 0, self.hi,
                                     party=owner)
        return out

    def parts(self, part: str, datasets: list[str]) -> tuple[str, str]:
        """(n largest, sum of absolute values) of one part over some datasets (zeros if none has it)."""
        size = {"both": self.cE * self.cN, "old_only": self.cE, "new_only": self.cN}[part]
        shares = [self.shares[part][d] for d in datasets if d in self.shares[part]]
        if not shares:
            zero = self.c.const(size, 0)
            return zero, zero
        return tuple(self.c.node("combine", shares, size, 0, self.hi, slot=s, how=how)
                     for s, how in (("s0", "total"), ("s1", "sum")))

    def surely_released(self, certain: str) -> str:
        """The earlier sums that surely were released: the cell surely was, and the dominance rule
        holds on today's rows of each earlier cell, on all rows and on the complement of every holding
        the earlier plan could have tested (guard_cells.CellChecks.earlier_complements, each holding:
        the rule is not monotone in the rows)."""
        c, cE, cN = self.c, self.cE, self.cN
        to_old = [(e * cN + n, e) for e in range(cE) for n in range(cN) if c.rel.possible[n, e]]
        flags = [certain]
        for held, datasets in [((), list(c.e["datasets"])), *c.earlier_complements(every=True)]:
            t_both, a_both = self.parts("both", datasets)
            t_old, a_old = self.parts("old_only", datasets)
            t = c.node("add", [t_old, c.linear(t_both, to_old, cE, self.hi)], cE, 0, self.hi)
            a = c.node("add", [a_old, c.linear(a_both, to_old, cE, self.hi)], cE, 0, self.hi)
            flags.append(self.holds(t, a, cE, what="an earlier cell (is its sum surely released)",
                                    **({"who": list(held)} if held else {})))
        return c.node("and", flags, cE)

    # -- the test ----------------------------------------------------------------------------------
    def ok(self, flag: str, new: list[str], old: list[str], who: dict, low: str | None = None) -> str:
        """The sum's flag (over the new cells) that guard.dominance allows on the rows of the
        datasets `new` and `old` (all, or what an observer does not hold). `low`: where the new flags
        are known only to lie between `low` and `flag` (guard_earlier.own_sums), the n largest read
        a new sum as released only by `low`, the absolute values by `flag` (a sound bound for both)."""
        if self.skip:
            return flag
        c, b, cN, cE, hi = self.c, self.b, self.cN, self.cE, self.hi
        rel = c.relation("rows", "rows", new, old)
        groups = groups_of(rel)
        if not groups:
            return flag
        shared = [d for d in new if d in old]
        t_both, a_both = self.parts("both", shared)
        t_old, a_old = self.parts("old_only", old)
        t_new, a_new = self.parts("new_only", new)
        cross = [(e * cN + n) for e in range(cE) for n in range(cN) if rel.possible[n, e]]
        # the cross part of a new cell not released stays in "earlier minus new"; of an earlier sum not
        # surely (possibly) released, in "new minus earlier" for the n largest (the absolute values)
        size, made = cE * cN, {}

        def new_out():  # only for groups of several new cells (it waits for the new flags)
            if not made:
                spread = [c.linear(b.secure("not", [f], 0, 1), [(i % cN, i) for i in cross], size, 1)
                          for f in ([low, flag] if low else [flag])]
                made["x"] = tuple(c.node("mul", [x, spread[-i]], size, 0, hi) for i, x in ((0, t_both), (1, a_both)))
            return made["x"]
        spread_old = {q: c.linear(c.node("not", [x], cE), [(i // cN, i) for i in cross], size, 1)
                      for q, x in (("certain", self.certain), ("possible", self.possible))}
        old_out = (c.node("mul", [t_both, spread_old["certain"]], size, 0, hi),
                   c.node("mul", [a_both, spread_old["possible"]], size, 0, hi))
        not_possible = c.node("not", [self.possible], cE)
        bad = []
        for rule, ns, es, new_in, old_in in groups:
            m = len(ns)
            e_pairs = [(e, g) for g, cells in enumerate(es) for e in cells]
            n_pairs = [(n, g) for g, cells in enumerate(ns) for n in cells]
            # earlier minus new (the group's new rows inside its earlier ones): an earlier cell's rows
            # outside the new WHERE, in new cells outside the group, in new cells not released
            dom_a = self.dominated(m, rel, es, ns, True, (t_old, a_old, e_pairs, cE), (t_both, a_both),
                                   new_out, rule, who)
            some_unknown = c.node("ge_const", [c.linear(not_possible, e_pairs, m, cE)], m, const=1,
                                  rule="guard.dominance", what="earlier sum not released")
            ok_a = c.any_of(m, [dom_a, some_unknown, c.keep(c.const(m, 1), np.flatnonzero(~new_in), m)])
            # new minus earlier (the group's earlier rows inside its new ones): the mirror
            dom_b = self.dominated(m, rel, ns, es, False, (t_new, a_new, n_pairs, cN), (t_both, a_both),
                                   lambda: old_out, rule, who)
            if self.guarded is not None:  # the difference holds an earlier sum its own guard may have withheld
                dom_b = c.node("and", [dom_b, c.none_of(c.linear(self.guarded, e_pairs, m, cE), m)], m)
            ok_b = c.any_of(m, [dom_b, c.keep(c.const(m, 1), np.flatnonzero(~old_in), m)])
            bad.append(c.group_to_cells(ok_a, ok_b, n_pairs, m))
        return c.allowed_by(bad, flag, "guard.dominance")

    def dominated(self, m: int, rel, outer: list, inner: list, outer_old: bool, own: tuple, both: tuple,
                  masked, rule: str, who: dict) -> str:
        """1 per group where the dominance rule holds on the difference `outer` minus `inner` (cells of
        the earlier release if `outer_old`): the outer cells' rows outside the other WHERE (`own`: n
        largest, absolute values, pairs into the groups, length), their rows in cells of the other
        release outside the group (`both`), and in the group's inner cells (`masked()`: zero where the
        inner sum is released). A group of one new cell reads it as released: where it is not, the
        group's outcome withholds nothing more (its one sum is withheld already)."""
        c, cN = self.c, self.cN
        fixed, flagged = [], []
        can = rel.possible.T if outer_old else rel.possible  # (outer cell, inner cell): can share rows
        for g, (outs, ins) in enumerate(zip(outer, inner)):
            r, i = np.nonzero(can[list(outs)])
            o = np.asarray(outs, dtype=np.int64)[r]
            cell = o * cN + i if outer_old else i * cN + o
            mine = np.isin(i, list(ins))
            fixed += [(int(x), g) for x in cell[~mine]]
            if not outer_old or len(ins) > 1:
                flagged += [(int(x), g) for x in cell[mine]]

        def total(k):
            nodes = [c.linear(x[k], pairs, m, self.hi) for x, pairs in ((own, own[2]), (both, fixed))
                     if pairs] + ([c.linear(masked()[k], flagged, m, self.hi)] if flagged else [])
            out = nodes[0] if nodes else c.const(m, 0)
            for x in nodes[1:]:
                out = c.node("add", [out, x], m, 0, self.hi)
            return out
        return self.holds(total(0), total(1), m, what=f"a difference of two released sums ({rule})", **who)

    def holds(self, top: str, absolute: str, size: int, **attrs) -> str:
        return holds(self.b, top, absolute, size, **attrs)


def holds(b, top: str, absolute: str, size: int, **attrs) -> str:
    """1 where the policy's dominance rule (n, k%) holds: 100 * top <= k * absolute."""
    pol = b.lp.policy
    return b.add("dominance", "secure", [top, absolute], [size], 0, 1, rule="guard.dominance", k=pol.dominance_k,
                 n=pol.dominance_n, **attrs)


def symdiff_oks(builder, entry: dict, top: str, abssum: str, scopes) -> list[str]:
    """guard.dominance in the fallback: flags over the new cells that the rule holds on the contributions
    of the rows in exactly one of the new and the earlier WHERE (per new cell; in total too when the keys
    differ), on all rows and on every observer's complement. `scopes` is guard.scopes."""
    b = builder
    new_where, old_where = b.lp.where, entry["where"]
    spec = {s["name"]: s for s in b.slots}
    if not summed_before(b, entry, spec[top]["arg"]):
        return []  # no earlier sum of the column: no difference of two sums
    if new_where is None and old_where is None:
        return []  # the same rows: the keys differ only, and the row test withholds every cell
    # a WHERE that is absent holds everywhere: no row is outside it
    parts = [_and(w, _not_true(other)) for w, other in ((new_where, old_where), (old_where, new_where))
             if other is not None]
    either = parts[0] if len(parts) == 1 else {"op": "or", "args": parts, "type": {"kind": "bool", "nullable": True}}
    slots = [{**spec[top], "name": "s0"}, {**spec[abssum], "name": "s1"}]
    height, cN = spec[top]["n"] + 1, b.cells
    lo, hi = b._arg_range(spec[top])
    hi = max(abs(lo), abs(hi)) * b.max_rows
    loads, oks = guard_rows.main_loads(b), []
    for scope in guard_rows.entry_scopes(entry):
        keys, size = (b.guard_keys, cN) if scope == "cell" else ([], 1)
        shares = {}
        for d in b.lp.datasets:
            owner = b.catalog.datasets[d].owner
            step = b.add("partials", f"local:{owner}", [loads[d]], [height, size], dataset=d,
                         where=either if d in entry["datasets"] else new_where, keys=keys, slots=slots, cells=size,
                         earlier=True)
            shares[d] = b.add("share", f"input:{owner}", [step], [height, size], 0, hi, party=owner)
        for held, new, _ in scopes(b, entry):
            t, a = (b.add("combine", "secure", [shares[d] for d in new], [size], 0, hi, slot=slot, how=how)
                    for slot, how in (("s0", "total"), ("s1", "sum")))
            ok = holds(b, t, a, size, what="the rows in exactly one of the two WHEREs, "
                       + ("per cell" if scope == "cell" else "in total"), **({"who": list(held)} if held else {}))
            if size == 1:  # the total, for every new cell
                ok = b.add("linear", "secure", [ok], [cN], 0, 1, pairs=[[0, n] for n in range(cN)], size=cN)
            oks.append(ok)
    return oks
