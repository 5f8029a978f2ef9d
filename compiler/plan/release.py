"""Release conditions of a plan: the secure tests behind every release flag (spec/disclosure.md 2).

The circuit (compiler/plan/circuit.py) declares what each owner pre-aggregates; this module turns the
shared per-dataset partials into flags, one rule of compiler/check/rules.py per test node:

* the cell flag: `cell.rows`, `cell.persons`, and for every observer holding (compiler/check/observer.py)
  `observer.rows` / `observer.persons` on the rows it does not hold;
* a value's flag (aggregates over a column): `values.rows` / `values.left_out` / `values.persons` on
  the whole cell and on every observer's complement, `counts.pair` between the counts a query
  reveals, `linkage.shared` / `linkage.unshared` for distinct counts across owners, `sum.dominance`
  per person on the whole cell and on every complement, `variance.rows`, `distinct.keys`.

Tests compare exact counts with k' = k rounded up to the policy's rounding base b, so a strict
test (x >= k') gives the same answer on the rounded count; a two-sided test (x = 0 or x >= k')
reads counts rounded down to multiples of b, so no flag depends on a count finer than b.
"""
from __future__ import annotations

import math
from itertools import combinations

from insightql.compiler.check.observer import maximal, observer_holdings


class ReleaseRules:
    def __init__(self, builder, *, per_dataset: bool = True):
        self.b = builder
        lp = builder.lp
        pol = lp.policy
        self.k = pol.min_group_size
        self.base = max(1, pol.round_counts_to)
        self.kk = math.ceil(self.k / self.base) * self.base  # k': same verdict on rounded counts
        self.owner = {d: builder.catalog.datasets[d].owner for d in lp.datasets}
        owners = sorted(set(self.owner.values()))
        # per_dataset False: the parts of a cell are not per owner (a JOIN: every joined row has both)
        self.holdings = observer_holdings(owners, list(pol.receivers), builder.catalog.party_names()) \
            if per_dataset and len(owners) > 1 else []

    # -- nodes ----------------------------------------------------------------------------------
    def at_least(self, rule: str, x: str, k: int | None = None, **attrs) -> str:
        return self.b.secure("ge_const", [x], 0, 1, const=self.kk if k is None else k, rule=rule, **attrs)

    def zero_or_many(self, rule: str, x: str, rounded: bool = False, **attrs) -> str:
        """x = 0 or x >= k' (x a count, rounded down first when the policy rounds; `rounded`: x is
        already a difference of rounded counts)."""
        x = x if rounded else self.rounded(x)
        return self.b.secure("outside_range", [x], 0, 1, low=1, high=self.kk - 1, rule=rule, **attrs)

    def rounded(self, x: str) -> str:
        if self.base <= 1:
            return x
        return self.b.secure("round_down", [x], *self.b.bounds(x), to=self.base)

    def all_of(self, flags: list[str]) -> str:
        flags = list(dict.fromkeys(f for f in flags if f))
        return flags[0] if len(flags) == 1 else self.b.secure("and", flags, 0, 1)

    def any_of(self, flags: list[str], **attrs) -> str:
        out = flags[0]
        for f in flags[1:]:
            out = self.b.secure("or", [out, f], 0, 1)
        if attrs:
            out = self.b.secure("and", [out], 0, 1, **attrs)  # a named copy: carries the rule for the report
        return out

    def part(self, slot: str, datasets: list[str], how: str = "sum") -> str:
        """One slot summed over some datasets' shares only (a complement of an observer's rows)."""
        shares = [s for d, s in zip(self.b.lp.datasets, self.b.shares) if d in datasets]
        spec = next(s for s in self.b.slots if s["name"] == slot)
        lo, hi = self.b.slot_bounds(spec)
        return self.b.add("combine", "secure", shares, [self.b.cells], lo, hi, slot=slot, how=how)

    def not_held(self, held: tuple[str, ...]) -> list[str]:
        return [d for d in self.b.lp.datasets if self.owner[d] not in held]

    # -- the cell -------------------------------------------------------------------------------
    def cell_flag(self, rows: str, persons: str | None = None, persons_node: str | None = None,
                  persons_count: str = "each_dataset") -> str:
        """`rows`, `persons`: slot names (persons: each dataset's own distinct persons); `persons_node`:
        distinct persons counted across the datasets (record linkage), which then decides cell.persons."""
        b = self.b
        flags = [self.at_least("cell.rows", b.combined[rows])]
        per_dataset = {}
        if persons and (persons_node is None or self.holdings):
            per_dataset = {d: self.at_least("cell.persons", self.part(persons, [d]), dataset=d)
                           for d in b.lp.datasets}
        if persons_node:
            flags.append(self.at_least("cell.persons", persons_node, count=persons_count))
        elif per_dataset:
            flags.append(self.any_of(list(per_dataset.values())))
        for held in maximal(self.holdings):  # strict: the smallest complements decide
            rest = self.not_held(held)
            flags.append(self.at_least("observer.rows", self.part(rows, rest), who=list(held)))
            if per_dataset:
                flags.append(self.any_of([per_dataset[d] for d in rest], rule="observer.persons", const=self.kk,
                                         who=list(held)))
        return self.all_of(flags)

    # -- values ---------------------------------------------------------------------------------
    def value_flag(self, cell: str, rows: str, count: str, column: str, nullable: bool) -> str:
        """Own-count rule on the cell and on every observer's complement (two-sided there: the
        complement's rows already passed observer.rows), and values.persons: the rows with and
        without a value hold >= k persons, not only rows (one person's k records are one value)."""
        b = self.b
        if not nullable:
            return cell
        m = b.combined[count]
        persons = getattr(b, "person_slots", {}).get(count)
        with_value, without = f"rows with a value of {column}", f"rows without a value of {column}"
        everyone = list(b.lp.datasets)
        flags = [cell, self.at_least("values.rows", m, what=column),
                 self.zero_or_many("values.left_out", self.gap(b.combined[rows], m), rounded=True, what=column)]
        if persons:
            flags += [self.persons_ok(persons["nn"], everyone, strict=True, what=with_value),
                      self.persons_ok(persons["null"], everyone, what=without)]
        for held in self.holdings:
            rest = self.not_held(held)
            m_rest = self.part(count, rest)
            flags.append(self.zero_or_many("values.rows", m_rest, what=column, who=list(held)))
            flags.append(self.zero_or_many("values.left_out", self.gap(self.part(rows, rest), m_rest), rounded=True,
                                           what=column, who=list(held)))
            if persons:
                flags += [self.persons_ok(persons["nn"], rest, what=with_value, who=list(held)),
                          self.persons_ok(persons["null"], rest, what=without, who=list(held))]
        return self.all_of(flags)

    def subgroup_flag(self, flag: str, whole: str, part: str, p: dict, what: str) -> str:
        """filter.rows / filter.persons (spec/disclosure.md 2.13): a count of a subgroup of `whole`
        (the cell's rows, or the rows with a value of b for AVG(b)) is released only where both the
        subgroup and the rest of `whole` would pass the cell and observer rules as cells of their own:
        >= k' rows and some dataset with >= k' persons, in the whole and in every observer's complement
        (strict: 0 counts as too few). The rest of the whole is tested on the released (rounded)
        counts, so >= k + b - 1 there: no flag depends on a count finer than b."""
        b = self.b
        m, others = b.combined[part], f"the other rows than the {what}"
        need = self.k + self.base - 1 if self.base > 1 else self.kk
        flags = [flag, self.at_least("filter.rows", m, what=what),
                 self.at_least("filter.rows", self.gap(b.combined[whole], m), need, what=others)]
        everyone = list(b.lp.datasets)
        if "persons_in" in p:
            flags += [self.persons_ok(p["persons_in"], everyone, strict=True, rule="filter.persons", what=what),
                      self.persons_ok(p["persons_out"], everyone, strict=True, rule="filter.persons",
                                      what=others)]
        for held in maximal(self.holdings):  # strict: the smallest complements decide
            rest, who = self.not_held(held), {"who": list(held)}
            m_rest = self.part(part, rest)
            other = self.b.secure("sub", [self.part(whole, rest), m_rest], 0, self.b.max_rows)
            flags += [self.at_least("filter.rows", m_rest, what=what, **who),
                      self.at_least("filter.rows", other, what=others, **who)]
            if "persons_in" in p:
                flags += [self.persons_ok(p["persons_in"], rest, strict=True, rule="filter.persons", what=what,
                                          **who),
                          self.persons_ok(p["persons_out"], rest, strict=True, rule="filter.persons",
                                          what=others, **who)]
        return self.all_of(flags)

    def persons_ok(self, slot: str, datasets: list[str], strict: bool = False, rule: str = "values.persons",
                   **attrs) -> str:
        """values.persons: the distinct persons of a group of rows, counted by each dataset on its
        own rows, are >= k' (some dataset alone has k') or, unless strict, 0 (no dataset has any).
        The union's count lies between the largest and the sum of the datasets' counts."""
        tests = [self.at_least(rule, self.part(slot, [d]), dataset=d, **attrs) for d in datasets]
        if not strict:  # none: fewer than b (the rounding base) in the sum, as rounded counts would show
            some = self.at_least(rule, self.part(slot, datasets), self.base, **attrs)
            tests.append(self.b.secure("not", [some], 0, 1))
        return self.any_of(tests, rule=rule, const=self.kk, **({"strict": True} if strict else {}),
                           **attrs)

    def gap(self, rows: str, m: str) -> str:
        """rows - m, each rounded first under rounding: the gap the released counts show."""
        return self.b.secure("sub", [self.rounded(rows), self.rounded(m)], 0, self.b.max_rows)

    def count_pairs(self, counts: dict[str, str], rows: str, distinct: list[str]) -> dict[str, str]:
        """counts.pair: every two counts of nullable columns (per complement too), and rows against
        each released distinct count. `counts`: {count slot: column}. Returns {count slot or
        distinct node: flag}."""
        b = self.b
        out: dict[str, list[str]] = {}
        for (sx, x), (sy, y) in combinations(sorted(counts.items(), key=lambda i: (i[1], i[0])), 2):
            scopes = [((), b.combined[sx], b.combined[sy])]
            scopes += [(h, self.part(sx, self.not_held(h)), self.part(sy, self.not_held(h))) for h in self.holdings]
            both = getattr(b, "person_slots", {}).get(tuple(sorted((sx, sy))))
            for held, mx, my in scopes:
                who = {"who": list(held)} if held else {}
                f = self.differ(mx, my, what=[f"COUNT({x})", f"COUNT({y})"], **who)
                if both:  # and the rows with exactly one of the two values hold 0 or >= k persons
                    f = self.all_of([f, self.persons_ok(both, self.not_held(held) if held else list(b.lp.datasets),
                                                        what=f"rows with a value of exactly one of {x}, {y}", **who)])
                out.setdefault(sx, []).append(f)
                out.setdefault(sy, []).append(f)
        repeaters = getattr(b, "person_slots", {}).get("repeaters")
        for d in distinct:
            f = self.differ(b.combined[rows], d, what=["COUNT(*)", "COUNT(DISTINCT)"])
            if repeaters:  # repeat records: the persons who have them are 0 or >= k
                f = self.all_of([f, self.persons_ok(repeaters, list(b.lp.datasets), what="persons with repeat records")])
            out.setdefault(d, []).append(f)
        return {c: self.all_of(fs) for c, fs in out.items()}

    def differ(self, a: str, c: str, **attrs) -> str:
        """|a - c| = 0 or >= k': (a - c)^2 = 0 or >= k'^2, on rounded counts under rounding."""
        b = self.b
        d = b.secure("sub", [self.rounded(a), self.rounded(c)], -b.max_rows, b.max_rows)
        sq = b.secure("mul", [d, d], 0, b.max_rows ** 2)
        return b.secure("outside_range", [sq], 0, 1, low=1, high=self.kk * self.kk - 1, rule="counts.pair",
                        **attrs)  # 1 <= d^2 < k'^2 means 1 <= |d| <= k'-1

    def membership(self, distinct: str, slot: str) -> str:
        """linkage.shared / linkage.unshared for COUNT(DISTINCT key) counted across owners: for every
        observer holding S, of the persons S holds in a cell, those also in other datasets and those
        not are each >= k' (0 counts as too few: else the count says that all, or none, of S's
        persons are known elsewhere). Distinct counts of several datasets together are bounded by
        the largest and the sum of the datasets' own counts; exact for one dataset on each side."""
        b = self.b
        flags = []
        for held in self.holdings:
            mine, rest = [d for d in b.lp.datasets if self.owner[d] in held], self.not_held(held)
            own = {d: self.part(slot, [d]) for d in b.lp.datasets}
            # shared >= max(mine) + max(rest) - D; unshared = D - D_rest >= D - sum(rest)
            low_mine, low_rest = self.largest([own[d] for d in mine]), self.largest([own[d] for d in rest])
            hi = b.max_rows
            shared = b.secure("sub", [b.secure("add", [low_mine, low_rest], 0, 2 * hi), distinct], -hi, 2 * hi)
            flags.append(self.at_least("linkage.shared", shared, who=list(held)))
            unshared = b.secure("sub", [distinct, self.part(slot, rest)], -hi, hi)
            flags.append(self.at_least("linkage.unshared", unshared, who=list(held), what="persons"))
        return self.all_of(flags) if flags else None

    def largest(self, nodes: list[str]) -> str:
        out = nodes[0]
        for n in nodes[1:]:
            hi = self.b.max_rows
            lt = self.b.secure("compare", [self.b.secure("sub", [out, n], -hi, hi)], 0, 1, relation="<")
            out = self.b.secure("add", [out, self.b.secure("mul", [lt, self.b.secure("sub", [n, out], -hi, hi)],
                                                             -hi, hi)], 0, hi)
        return out

    def dominance(self, top: str, absolute: str, flag: str) -> str:
        """sum.dominance per person: the n largest persons' contributions, bounded from above by
        the sum over datasets of each one's n largest (a person may be in several datasets)."""
        b, pol = self.b, self.b.lp.policy
        scopes = [((), b.combined[top], b.combined[absolute])]
        scopes += [(h, self.part(top, self.not_held(h), "total"), self.part(absolute, self.not_held(h)))
                   for h in self.holdings]
        flags = [flag]
        for held, t, a in scopes:
            flags.append(b.secure("dominance", [t, a], 0, 1, k=pol.dominance_k, n=pol.dominance_n,
                                  rule="sum.dominance", **({"who": list(held)} if held else {})))
        return self.all_of(flags)
