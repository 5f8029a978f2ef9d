"""The differencing guard's secure tests against one earlier release (spec/disclosure.md 3.2).

`compiler/plan/guard.py` selects the earlier releases and relates their cells to the new ones over the
public domain (`compiler/plan/structure.py`); this module builds, for one earlier release, the tests
on groups of cells a receiver can subtract: one group of new cells whose rows lie inside a group
of earlier cells by definition (or the reverse). The groups:

* an earlier cell and the new cells inside it (`guard.inside`);
* a new cell and the earlier cells inside it (`guard.contains`);
* every connected group of cells that can share rows, and each cell with every cell of the other
  release it can share rows with (`guard.margin`: cells that cross).

For a group whose new rows lie inside its earlier rows, the earlier sum minus the released new sum
must hold >= k rows, unless every earlier cell was surely not released, or the definitions make
the two sums equal and every new cell is released (then nothing is hidden); the mirror for a group
whose earlier rows lie inside its new rows. Otherwise every new cell of the group is suppressed.
The same tests run on a nullable column's rows with a value (a SUM over a difference of k rows of
which one has a value is that one value), with the value's flag in place of the cell's; and between
families of released cells: each release's cells, each subgroup it counted (WHERE AND the subgroup)
and the rest of that subgroup's cell (WHERE AND NOT the subgroup: the rows where its indicator or
column is NULL, n - m beside COUNT(*)), every new family against every earlier one (2.13, 3.2).
"""
from __future__ import annotations

import json

import numpy as np

from insightql.compiler.diagnostics import Diagnostic, PlanError
from insightql.compiler.check.observer import maximal, observer_holdings
from insightql.compiler.plan.guard_earlier import own_guard, own_values
from insightql.compiler.plan.guard_groups import column_types, family_where, groups_of  # (others import them here too)
from insightql.compiler.plan.structure import Relation, relate


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rest_of(quantity: str) -> str:
    """The name of the rest of a subgroup's cell: "rest:s5" for a new count slot s5, "rest:0" for an
    earlier subgroup "sub:0"."""
    return "rest:" + quantity.removeprefix("sub:")


class CellChecks:
    """The guard's tests for one earlier release (entry), on rows and on nullable columns' rows with
    a value, and between families of released cells (quantities "rows", a new count slot "s5" and its
    rest "rest:s5"; earlier "rows", "sub:i" and "rest:i"), on all rows and on every observer's complement."""

    def __init__(self, builder, entry: dict, rel: Relation, new_keys: list[dict], columns: dict[str, dict]):
        self.b, self.e, self.rel, self.new_keys = builder, entry, rel, new_keys
        self.cN, self.cE = rel.new_nonempty.size, rel.old_nonempty.size
        self.hi = builder.max_rows
        self.k = entry["k"]
        self.columns = columns  # new count slot -> the column's IR (nullable columns aggregated)
        self.subs = {f"sub:{i}": arg for i, arg in enumerate(entry.get("subgroups", []))}  # the earlier's subgroups
        self.rels: dict[tuple, Relation] = {}
        self.parts, persons = self.old_counts()
        for q in self.subs:  # the rest of each earlier subgroup's cell: as exactly released (n - m)
            self.parts[rest_of(q)] = {d: self.node("sub", [self.parts["rows"][d], p], self.cE, 0, self.hi)
                                      for d, p in self.parts[q].items()}
        every = list(entry["datasets"])
        totals = {q: self.total(parts, every) for q, parts in self.parts.items()}
        strict = self.certainly_released(totals["rows"], self.parts["rows"], persons)
        self.possible = {q: self.test(t, self.cE, entry["k_old"], "guard.inside", what="earlier cell possibly released")
                         for q, t in totals.items()}
        certain = own_guard(self, strict)
        self.certain = {q: certain if q == "rows" else self.node("and", [
            certain, self.test(t, self.cE, self.k, "guard.contains", what="earlier values released"),
            self.node("outside_range", [self.node("sub", [totals["rows"], t], self.cE, 0, self.hi)], self.cE,
                      low=1, high=self.k - 1, rule="guard.contains", what="earlier rows without a value")], self.cE)
            for q, t in totals.items() if q not in self.subs and not q.startswith("rest:")}
        for q in self.subs:  # a subgroup and its rest are released together
            self.certain[q] = self.certain[rest_of(q)] = self.subgroup_released(q, certain, totals)
        # the values and subgroups its own guard let through (guard_earlier.own_values)
        for q, arg in [*self.columns.items(), *self.subs.items()]:
            passed = own_values(self, arg, self.parts[q], self.certain[q], self.possible[q])
            if passed is not None:
                self.certain[q] = passed
                if q in self.subs:
                    self.certain[rest_of(q)] = passed

    # -- nodes of other shapes than the new cells' ------------------------------------------------
    def node(self, op, inputs, n, lo=0, hi=1, **attrs) -> str:
        return self.b.add(op, "secure", inputs, [n], lo, hi, **attrs)

    def linear(self, x: str, pairs, n: int, hi: float) -> str:
        return self.node("linear", [x], n, 0, hi, pairs=[[int(i), int(j)] for i, j in pairs], size=n)

    def test(self, x: str, size: int, k: int, rule: str, **attrs) -> str:
        return self.node("ge_const", [x], size, const=k, rule=rule, **attrs)

    def total(self, parts: dict[str, str], datasets: list[str]) -> str:
        out = parts[datasets[0]]
        for d in datasets[1:]:
            out = self.node("add", [out, parts[d]], self.cE, 0, self.hi)
        return out

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

    # -- the earlier release's cells, recounted by their owners -----------------------------------------
    def old_counts(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Each owner's rows (and persons, and rows with a value of each column) in every earlier
        cell, today: shared like any partials. ({"rows" or count slot: {dataset: node}}, persons)."""
        b, e = self.b, self.e
        slots = [{"name": "s0", "kind": "rows"}]
        if b.lp.person_key:
            slots.append({"name": "s1", "kind": "persons", "column": b.lp.person_key})
        named = {}
        for count, arg in [*sorted(self.columns.items()), *self.subs.items()]:
            named[count] = f"s{len(slots)}"
            slots.append({"name": named[count], "kind": "count", "arg": arg})
        parts: dict[str, dict[str, str]] = {"rows": {}, **{c: {} for c in named}}
        persons = {}
        for d in e["datasets"]:
            owner = b.catalog.datasets[d].owner
            load = self.load_of(d)
            part = b.add("partials", f"local:{owner}", [load], [len(slots), self.cE], dataset=d, where=e["where"],
                         keys=e["keys"], slots=slots, cells=self.cE, earlier=True)
            share = b.add("share", f"input:{owner}", [part], [len(slots), self.cE], 0, self.hi, party=owner)
            parts["rows"][d] = self.node("combine", [share], self.cE, 0, self.hi, slot="s0", how="sum")
            if b.lp.person_key:
                persons[d] = self.node("combine", [share], self.cE, 0, self.hi, slot="s1", how="sum")
            for count, name in named.items():
                parts[count][d] = self.node("combine", [share], self.cE, 0, self.hi, slot=name, how="sum")
        return parts, persons

    def load_of(self, d: str, extra: dict[str, dict] | None = None) -> str:
        """Dataset d's load node for the earlier release's recounts: the query's own when it read every
        column the earlier WHERE, keys and subgroups use (and `extra`: {column: type}) with the same
        type, else a load of its own (a UNION ALL widens category domains, so codes differ: read it
        again as the earlier query did)."""
        b, e = self.b, self.e
        read = column_types([e["where"], *(k["expr"] for k in e["keys"]), *self.columns.values(), *self.subs.values()])
        if b.lp.person_key:
            read.setdefault(b.lp.person_key, b.lp.columns[b.lp.person_key].to_json())
        for c, t in (extra or {}).items():
            if read.setdefault(c, t) != t:
                raise PlanError(Diagnostic("IQ408", f"the differencing guard cannot recount `{c}` for an earlier "
                                           "release that read it with another type (another UNION ALL)", None,
                                           ["ask the owners to review the two releases together"]))
        cache = self.__dict__.setdefault("loads", {})
        key = (d, _canon(sorted(read.items())))
        if key not in cache:
            load = ([nid for nid, n in b.g.nodes(data=True) if n["op"] == "load" and n["attrs"]["dataset"] == d]
                    or [None])[-1]
            if load is None or any(b.g.nodes[load]["attrs"]["columns"].get(c) != t for c, t in read.items()):
                load = b.add("load", f"local:{b.catalog.datasets[d].owner}", [], [-1], dataset=d,
                             columns=dict(sorted(read.items())))
            cache[key] = load
        return cache[key]

    def earlier_complements(self, every: bool = False, datasets: list[str] | None = None) -> list[tuple[tuple, list[str]]]:
        """(holding, the earlier datasets it does not hold) for every largest holding an observer of the
        earlier release could have with this k (its holdings with every receiver its datasets allow,
        which the receivers it named can only narrow, and each single owner); none with one owner.
        `every`: every holding, for a rule that is not monotone in the rows (dominance)."""
        cat, datasets = self.b.catalog, list(self.e["datasets"] if datasets is None else datasets)
        owners = {d: cat.datasets[d].owner for d in datasets}
        if len(set(owners.values())) < 2:
            return []
        names = sorted(set(owners.values()))
        receivers = sorted(set.intersection(*(set(cat.datasets[d].receivers()) for d in datasets)))
        held = sorted({*observer_holdings(names, receivers, cat.party_names()), *((o,) for o in names)})
        return [(h, [d for d in datasets if owners[d] not in h]) for h in (held if every else maximal(held))]

    def certainly_released(self, rows_old, parts, persons) -> str:
        """An earlier cell that passes the cell rule and the complement rule of every holding an
        observer of the earlier release could have with this k (the strictest reading of what the
        earlier plan required: its holdings with every receiver its datasets allow, which the
        receivers it named can only narrow, and each single owner)."""
        cE, k = self.cE, self.k
        flags = [self.test(rows_old, cE, k, "guard.contains", what="earlier cell released")]
        if persons:
            flags.append(self.any_of(cE, [self.test(p, cE, k, "guard.contains", what="earlier cell persons")
                                          for p in persons.values()]))
        for held, rest in self.earlier_complements():
            flags.append(self.test(self.total(parts, rest), cE, k, "guard.contains", what="earlier complement",
                                   who=list(held)))
        return flags[0] if len(flags) == 1 else self.node("and", flags, cE)

    def subgroup_released(self, q: str, certain: str, totals: dict[str, str]) -> str:
        """An earlier subgroup count that surely was released: its cell was, and the subgroup and
        the rest of the cell each hold >= k rows, in the cell and on every owner's complement
        (filter.rows, the strict reading of values.rows / values.left_out), and it differs from
        each other earlier subgroup by 0 or >= k rows (counts.pair)."""
        cE, hi = self.cE, self.hi
        rest = self.parts[rest_of(q)]
        flags = [certain, self.certainly_released(totals[q], self.parts[q], {}),
                 self.certainly_released(totals[rest_of(q)], rest, {})]
        for other in self.subs:
            if other != q:
                flags += [self.node("outside_range", [self.node("sub", [a, c], cE, -hi, hi)], cE, low=1,
                                    high=self.k - 1, rule="guard.contains", what="earlier subgroups differ")
                          for a, c in ((totals[q], totals[other]), (totals[other], totals[q]))]
        return self.node("and", flags, cE)

    # -- families of released cells: the query's own, and two per counted subgroup -----------------
    def where_of(self, quantity: str, new: bool) -> dict | None:
        """The WHERE of the released cells a quantity counts: the query's own for "rows" (and for an
        earlier recount of a new column, read with the earlier WHERE), WHERE AND the subgroup for a
        subgroup (a new count slot, an earlier "sub:i"), WHERE AND NOT the subgroup for its rest
        ("rest:s5", "rest:i": the rows where the subgroup's indicator or column is NULL)."""
        where = self.b.lp.where if new else self.e["where"]
        rest = quantity.startswith("rest:")
        sub = quantity[5:] if rest else quantity
        arg = self.columns.get(sub) if new else self.subs.get("sub:" + sub if rest else sub)
        return family_where(where, arg, rest)

    def same_family(self, quantity: str, old_q: str) -> bool:
        lp = self.b.lp
        return _canon([sorted(lp.datasets), self.where_of(quantity, True), self.new_keys]) == \
            _canon([sorted(self.e["datasets"]), self.where_of(old_q, False), self.e["keys"]])

    def old_families(self) -> list[str]:
        """The earlier release's families of released cells: its cells, each subgroup and its rest."""
        return ["rows", *self.subs, *(rest_of(q) for q in self.subs)]

    def families(self, quantity: str) -> list[str]:
        """The earlier quantities a new one is compared with as released cells: for the new cells
        ("rows"), a new subgroup (a count slot) or its rest ("rest:" + slot), the earlier cells,
        every earlier subgroup and every earlier subgroup's rest, each unless it holds the same rows
        by definition (nothing to subtract)."""
        return [q for q in self.old_families() if not self.same_family(quantity, q)]

    def new_count(self, quantity: str, new: list[str]) -> str:
        """A new quantity's count per new cell over the datasets `new`: the cells' rows, a count
        slot, or the rest of a count slot's cell (rows minus the count)."""
        b = self.b
        full = list(new) == list(b.lp.datasets)

        def count(slot):
            return b.combined[slot] if full else b.rules.part(slot, new)
        if quantity == "rows":
            return count(b.slot("rows"))
        if quantity.startswith("rest:"):
            return b.secure("sub", [count(b.slot("rows")), count(quantity[5:])], 0, self.hi)
        return count(quantity)

    def relation(self, quantity: str, old_q: str, new: list[str], old: list[str]) -> Relation | None:
        if quantity == old_q or old_q in self.columns:  # the cells, or a column's rows in the same cells
            if list(new) == list(self.b.lp.datasets) and list(old) == list(self.e["datasets"]):
                return self.rel
            quantity = old_q = "rows"
        key = (quantity, old_q, tuple(new), tuple(old))
        if key not in self.rels:
            self.rels[key] = relate(self.b.catalog,
                                    {"datasets": new, "where": self.where_of(quantity, True), "keys": self.new_keys},
                                    {"datasets": old, "where": self.where_of(old_q, False), "keys": self.e["keys"]})
        return self.rels[key]

    # -- the tests ---------------------------------------------------------------------------------
    def ok(self, quantity: str, flag: str, new: list[str], old: list[str], who: dict, old_q: str | None = None) -> str:
        """The flag (over the new cells) that the guard allows, for one quantity ("rows", or a
        column's count slot: its rows with a value) and one scope: the rows of the datasets `new`
        and `old` (all, or what an observer does not hold). `flag`: the quantity's release flag
        before the guard. `old_q`: the earlier quantity it is compared with: by default the same
        rows in the earlier cells; "rows" or an earlier subgroup ("sub:i") compares the quantity's
        released cells with that family of earlier released cells, related over the public domain."""
        b, cN, cE, hi = self.b, self.cN, self.cE, self.hi
        # a new cell that is an earlier cell by definition (the same family of cells, one of them
        # surely released) tells nothing new, whatever it differs from
        twin = next((q for q in self.old_families() if q != old_q and self.same_family(quantity, q)), None) \
            if old_q not in (None, quantity) else None
        old_q = old_q or quantity
        rel = self.relation(quantity, old_q, new, old)
        if rel is None:
            raise PlanError(Diagnostic("IQ408", "the differencing guard cannot relate this query to an earlier "
                                       "release on the rows an observer does not hold, or on a subgroup either "
                                       "counts", None,
                                       ["group and filter by columns whose values the catalog enumerates"]))
        groups = groups_of(rel)
        if not groups:  # no cells that can share rows: nothing to subtract
            return flag if twin is None else self.with_twin(twin, flag)
        q_new = self.new_count(quantity, new)
        q_old = self.total(self.parts[old_q], old)
        possible, certain = self.possible[old_q], self.certain[old_q]
        f_q = b.secure("mul", [flag, q_new], 0, hi)
        p_q = self.node("mul", [possible, q_old], cE, 0, hi)
        unreleased = b.secure("not", [flag], 0, 1)
        bad = []
        for rule, ns, es, new_in, old_in in groups:
            m = len(ns)
            n_pairs = [(n, g) for g, cells in enumerate(ns) for n in cells]
            e_pairs = [(e, g) for g, cells in enumerate(es) for e in cells]
            all_new = self.none_of(self.linear(unreleased, n_pairs, m, cN), m)
            all_possible = self.none_of(self.linear(self.node("not", [possible], cE), e_pairs, m, cE), m)
            all_certain = self.none_of(self.linear(self.node("not", [certain], cE), e_pairs, m, cE), m)
            # the earlier sum minus the released new sum (the group's new rows lie in its earlier ones)
            g = self.node("sub", [self.linear(q_old, e_pairs, m, hi * cE), self.linear(f_q, n_pairs, m, hi * cN)],
                          m, -hi * cN, hi * cE)
            ok_a = self.any_of(m, [self.node("not", [all_possible], m), self.test(g, m, self.k, rule, **who),
                                   self.keep(all_new, np.flatnonzero(old_in), m),
                                   self.keep(self.const(m, 1), np.flatnonzero(~new_in), m)])
            # the new sum minus the possibly released earlier sum (the mirror)
            h = self.node("sub", [self.linear(q_new, n_pairs, m, hi * cN), self.linear(p_q, e_pairs, m, hi * cE)],
                          m, -hi * cE, hi * cN)
            ok_b = self.any_of(m, [self.node("not", [all_new], m), self.test(h, m, self.k, rule, **who),
                                   self.keep(all_certain, np.flatnonzero(new_in), m),
                                   self.keep(self.const(m, 1), np.flatnonzero(~old_in), m)])
            bad.append(self.group_to_cells(ok_a, ok_b, n_pairs, m))
        allowed = self.allowed_by(bad, flag, "guard.margin")
        return allowed if twin is None else self.with_twin(twin, allowed)

    def with_twin(self, twin: str, allowed: str) -> str:
        """The flag of a new family that holds an earlier family's rows by definition (`twin`): where the
        twin was surely released, nothing new, whatever the other tests say; where it was possibly
        released but not surely (its own guard, or its subgroup's, may have withheld it), the new cells
        would give it back (the earlier n minus this rest is the withheld subgroup): withheld too."""
        b, cE = self.b, self.cE
        maybe = self.node("and", [self.possible[twin], self.node("not", [self.certain[twin]], cE)], cE)
        return b.secure("or", [self.certain[twin], b.secure("and", [allowed, self.node("not", [maybe], cE)], 0, 1)],
                        0, 1)

    def group_to_cells(self, ok_a: str, ok_b: str, n_pairs: list[tuple[int, int]], m: int) -> str:
        """Per new cell, 1 where a group of it fails (ok_a and ok_b over the m groups)."""
        group_bad = self.node("not", [self.node("and", [ok_a, ok_b], m)], m)
        return self.linear(group_bad, [(gi, n) for n, gi in n_pairs], self.cN, m)

    def allowed_by(self, bad: list[str], flag: str, rule: str) -> str:
        """The new cells in no failed group (`bad`: failed groups per new cell)."""
        b = self.b
        if not bad:
            return flag
        count = bad[0]
        for x in bad[1:]:
            count = b.secure("add", [count, x], 0, 4 * (self.cN + self.cE))
        blocked = b.secure("ge_const", [count], 0, 1, const=1, rule=rule, what="new cell in a failed group")
        return b.secure("not", [blocked], 0, 1)
