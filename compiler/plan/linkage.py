"""Record linkage: the circuits of a JOIN and of COUNT(DISTINCT key) over a UNION ALL (spec/linkage.md).

The logical stage of a JOIN (`to_logical_join` -> `JoinLogicalPlan`: which side's key is unique,
group keys / WHERE conjuncts / aggregates assigned to a side, or IQ405-IQ407) is in logical.py.

* `JoinBuilder`: the circuit of a join. Each owner packs its rows (`link_rows`, local), shares the
  vector (`link_share`, length exchanged at the handshake), and one secure `link_join` computes the
  per-cell sums over the joined rows that the usual slots need; `link_slot` picks one. From there
  on the circuit is the ordinary one (thresholds, masks, one reveal), built by CircuitBuilder.
* `UnionDistinctBuilder`: an ordinary UNION ALL circuit whose `distinct` slots (and the distinct
  persons threshold, when the query counts distinct persons anyway) come from `link_distinct`.
"""
from __future__ import annotations

import math

from insightql.compiler.plan import guard
from insightql.compiler.plan.circuit import CircuitBuilder
from insightql.compiler.plaintext.linkage_local import make_layout
from insightql.compiler.plan.logical import AggregateSpec, JoinLogicalPlan, LogicalPlan
from insightql.compiler.plan.lower_expr import columns_used
from insightql.compiler.check.observer import observer_holdings
from insightql.compiler.plan.release import ReleaseRules


def _bits(n: int) -> int:
    return max(0, (n - 1).bit_length())


def link_size(policy) -> dict:
    """linkage.sizes: every linked vector is as long as the next power of two >= max(rows, 2k)."""
    return {"size_rule": "pow2", "min_size": 2 * policy.min_group_size}


def algorithm(catalog, datasets) -> str:
    """"fast" (shuffle + keyed PRF, opens the match pattern) only if every linked dataset's policy
    opts in; otherwise "oblivious" (sort-based, opens nothing)."""
    return "fast" if all(catalog.datasets[d].policy.linkage == "fast" for d in datasets) else "oblivious"


def linkage_item(builder, parties: list[str]) -> dict:
    """What the linkage design opens besides the outputs: what the oblivious sort opens (random
    permutations) or the match pattern (fast)."""
    if algorithm(builder.catalog, builder.link_datasets) == "oblivious":
        return {"item": "sort_comparisons", "to": list(parties), "public": False,
                "detail": "oblivious record linkage: the rows are radix-sorted two key bits at a time; per pass the "
                          "secret permutation sorting them so far is shuffled by a fresh permutation no coalition "
                          "of t parties knows, and the composition is opened. Each opened vector is a uniformly "
                          "random permutation of the positions, independent of the data and of the others (every "
                          "party could simulate them), so they reveal nothing about keys, matches, multiplicities "
                          "or values; their number (passes x rows) is public."}
    return {"item": "match_pattern", "to": list(parties), "public": False,
            "detail": "fast record linkage (every linked dataset sets linkage = \"fast\"): the rows of "
                      + ", ".join(builder.link_datasets) + " are shuffled together by a permutation no "
                      "coalition of t parties knows, and a keyed PRF tag of each row's key (MiMC under a "
                      "secret random key) is opened. Every computing party learns which shuffled positions "
                      "share a key: the number of keys held once, twice, ... (for two datasets with unique "
                      "keys, the intersection size, even below k). Not which rows matched, not the keys, "
                      "not the rows' values: grouping and aggregation stay secret-shared."}


def input_sizes_item(builder, parties: list[str]) -> dict:
    """Leakage: the length of each owner's shared vector, known to every computing party."""
    floor = 2 * builder.lp.policy.min_group_size
    return {"item": "input_sizes", "to": list(parties), "public": False, "rules": ["linkage.sizes"],
            "detail": "record linkage shares one packed row per input row (filtered-out rows and duplicates are "
                      "replaced by padding), so every computing party learns each vector's length: for "
                      + ", ".join(builder.link_datasets) + f", its row count rounded up to a power of two, at least "
                      f"{floor} (2k), never the exact count; with at least one released cell this gives no "
                      "group of 1..k-1 rows [linkage.sizes]. What the linkage design opens besides: "
                      + ("sort_comparisons" if algorithm(builder.catalog, builder.link_datasets) == "oblivious"
                         else "match_pattern") + "."}


# -- JOIN circuit -----------------------------------------------------------------------------
class JoinBuilder(CircuitBuilder):
    lp: JoinLogicalPlan

    def plan_aggregate(self, a: AggregateSpec) -> dict:
        side = self.lp.agg_sides[self.lp.aggregates.index(a)]
        if a.func == "count_rows":
            return {}
        if a.func == "count_distinct":
            return {"distinct": self.slot("persons", column=self.lp.m.key_column)}
        ex = {**self.value_slots(a), "side": side}
        p = {"count": self.slot("count", a.arg, **ex)}  # same clamp as the sum: one packed field
        if a.func in ("sum", "avg"):
            p["sum"] = self.slot("sum", a.arg, **ex)
        return p

    def build(self):
        lp, cat = self.lp, self.catalog
        self.max_rows = cat.datasets[lp.m.dataset].max_rows
        self.guard, self.guard_slots = [], []
        self.link_datasets = [lp.u.dataset, lp.m.dataset]
        rows = self.slot("rows")
        # distinct join keys, always: a row of the unique side enters once per matching row (source.once)
        persons = self.slot("persons", column=lp.m.key_column)
        agg_plans = [self.plan_aggregate(a) for a in lp.aggregates]
        fields = {0: [], 1: []}
        weights, measures = [], {0: [], 1: []}
        for s in self.slots:
            if s["kind"] in ("rows", "persons"):
                weights.append({"kind": s["kind"]})
                continue
            side = s["side"]
            name = self._measure(s, measures[side])
            w = {"kind": s["kind"], "side": side, "field": name}
            if s["kind"] == "sum":
                w["lo"] = next(m["lo"] for m in measures[side] if m["name"] == name)
            weights.append(w)
        sides = (lp.u, lp.m)
        cells = [math.prod(len(lp.keys[k].values) for k in sd.keys) for sd in sides]
        for i, sd in enumerate(sides):
            fields[i] = [("cell", _bits(cells[i])), ("present", 1), ("keyed", 1)]
            for m in measures[i]:
                fields[i] += [(m["name"] + ".nn", 1), (m["name"] + ".val", max(1, (m["hi"] - m["lo"]).bit_length()))]
        layout = make_layout("join", max(lp.u.key_bits, lp.m.key_bits), [fields[0], fields[1]])
        shares, self.side_inputs = [], []
        for i, sd in enumerate(sides):
            keys_ir = [{"expr": lp.keys[k].expr, "type": lp.keys[k].type.to_json(), "size": len(lp.keys[k].values)}
                       for k in sd.keys]
            used = {sd.key_column}
            for ir in [sd.where, *(k["expr"] for k in keys_ir), *(m["arg"] for m in measures[i])]:
                columns_used(ir, used)
            ds = cat.datasets[sd.dataset]
            from insightql.compiler.check.checker import column_type
            load = self.add("load", f"local:{sd.owner}", [], [-1], dataset=sd.dataset,
                            columns={c: column_type(ds.columns[c]).to_json() for c in sorted(used)})
            rows_n = self.add("link_rows", f"local:{sd.owner}", [load], [-1], dataset=sd.dataset, side=i,
                              layout=layout, where=sd.where, keys=keys_ir, key_column=sd.key_column,
                              measures=[{k: v for k, v in m.items() if k != "key"} for m in measures[i]],
                              unique=sd.unique, keep_unkeyed=(i == 1 and lp.kind == "left"),
                              **link_size(lp.policy))
            shares.append(self.add("link_share", f"input:{sd.owner}", [rows_n], [-1], 0, 2 ** layout["bits"],
                                   party=sd.owner))
            self.side_inputs.append((load, keys_ir, cells[i]))
        guard.join_guard(self, [(sd.dataset, sd.where, keys) for sd, (_, keys, _) in zip(sides, self.side_inputs)],
                         lp.kind)
        null_u = 0
        for k in lp.u.keys:
            null_u = null_u * len(lp.keys[k].values) + len(lp.keys[k].values) - 1
        link = self.add("link_join", "secure", shares, [len(weights), self.cells], 0, self.max_rows,
                        algorithm=algorithm(cat, self.link_datasets), kind=lp.kind, layout=layout, cells_u=cells[0], cells_m=cells[1], null_cell_u=null_u,
                        weights=weights, cell_perm=self._cell_perm())
        for r, s in enumerate(self.slots):
            lo, hi = self.slot_bounds(s)
            self.combined[s["name"]] = self.add("link_slot", "secure", [link], [self.cells], lo, hi,
                                                slot=s["name"], row=r)
        self.rules = ReleaseRules(self, per_dataset=False)  # every joined row holds rows of both owners
        rule = {"count": "join_keys"} if lp.person_key else {"rule": "source.once", "dataset": lp.u.dataset}
        self.released = self.rules.all_of([
            self.rules.at_least("cell.rows", self.combined[rows]),
            self.rules.at_least(rule.pop("rule", "cell.persons"), self.combined[persons], **rule),
            self.unmatched_flag(rows, persons)])
        self.finish_values(agg_plans)
        self.build_outputs()
        return self.g

    def unmatched_flag(self, rows: str, persons: str) -> str | None:
        """linkage.unshared for an inner JOIN (spec/disclosure.md 2.6): an owner that receives knows its
        own rows in each part of the cells it can tell apart (its own GROUP BY keys); of those, the
        rows that found no match must be >= k (0 counts as too few), else the released counts say
        that all of its persons there are, or are not, in the other organisation's data. For M the
        matched rows are the joined rows; for U an upper bound, the distinct keys summed over cells."""
        lp = self.lp
        if lp.kind != "inner":
            return None  # LEFT JOIN: unmatched rows are cells (NULL keys) or rows without a value
        holdings = observer_holdings([lp.u.owner, lp.m.owner], list(lp.policy.receivers), self.catalog.party_names())
        flags = []
        groups = self._side_cells()
        for i, sd in enumerate((lp.u, lp.m)):
            if (sd.owner,) not in holdings or sd.owner == (lp.m if i == 0 else lp.u).owner:
                continue
            load, keys_ir, size = self.side_inputs[i]
            own = self.add("partials", f"local:{sd.owner}", [load], [1, size], dataset=sd.dataset, where=sd.where,
                           keys=keys_ir, slots=[{"name": "s0", "kind": "rows"}], cells=size)
            share = self.add("share", f"input:{sd.owner}", [own], [1, size], 0, self.max_rows, party=sd.owner)
            total = self.add("combine", "secure", [share], [size], 0, self.max_rows, slot="s0", how="sum")
            matched = self.add("linear", "secure", [self.combined[rows if i == 1 else persons]], [size], 0,
                               self.max_rows * self.cells, pairs=[[c, g] for c, g in enumerate(groups[i])], size=size)
            rest = self.secure_shaped("sub", [total, matched], [size], -self.max_rows * self.cells, self.max_rows)
            ok = self.add("ge_const", "secure", [rest], [size], 0, 1, const=self.rules.kk, rule="linkage.unshared",
                          who=[sd.owner], what="rows" if i == 1 else "rows (persons)")
            flags.append(self.add("linear", "secure", [ok], [self.cells], 0, 1,
                                  pairs=[[g, c] for c, g in enumerate(groups[i])], size=self.cells))
        return self.rules.all_of(flags) if flags else None

    def secure_shaped(self, op, inputs, shape, lo, hi, **attrs) -> str:
        return self.add(op, "secure", inputs, shape, lo, hi, **attrs)

    def _side_cells(self) -> tuple[list[int], list[int]]:
        """Per plan cell: its cell over U's GROUP BY keys, and over M's."""
        cells_m = math.prod(len(self.lp.keys[k].values) for k in self.lp.m.keys)
        perm = self._cell_perm()
        return [p // cells_m for p in perm], [p % cells_m for p in perm]

    def _measure(self, s: dict, measures: list[dict]) -> str:
        """The packed field of a slot's argument (one per column, clamp and scale, per side)."""
        key = (repr(s["arg"]), s.get("scale", 0), tuple(s.get("clamp") or ()))
        for m in measures:
            if m["key"] == key:
                return m["name"]
        lo, hi = self._arg_range({"arg": s["arg"], "scale": s.get("scale", 0), "clamp": s.get("clamp")})
        name = f"m{s['side']}_{len(measures)}"
        m = {"name": name, "key": key, "arg": s["arg"], "scale": s.get("scale", 0), "lo": int(lo), "hi": int(hi)}
        if s.get("clamp"):
            m["clamp"] = list(s["clamp"])
        measures.append(m)
        return name

    def _cell_perm(self) -> list[int]:
        """Plan cell (mixed radix over all GROUP BY keys) -> row of the join's (u cell, m cell) grid."""
        lp = self.lp
        sizes = [len(k.values) for k in lp.keys]
        cells_m = math.prod(sizes[k] for k in lp.m.keys)
        perm = []
        for c in range(self.cells):
            pos, rest = [], c
            for s in reversed(sizes):
                pos.append(rest % s)
                rest //= s
            pos.reverse()
            cu = cm = 0
            for k in lp.u.keys:
                cu = cu * sizes[k] + pos[k]
            for k in lp.m.keys:
                cm = cm * sizes[k] + pos[k]
            perm.append(cu * cells_m + cm)
        return perm


# -- COUNT(DISTINCT key) over UNION ALL ---------------------------------------------------------
class UnionDistinctBuilder(CircuitBuilder):
    """The ordinary circuit, but distinct keys are counted across owners by record linkage."""

    def build(self):
        self._links: dict[str, str] = {}
        self.link_datasets = list(self.lp.datasets)
        return super().build()

    def cell_flag(self, rows: str, persons: str | None) -> str:
        linked = self.combined.get(persons) if persons else None
        if linked in self._links.values():  # exact across owners: the query counts these keys anyway
            return self.rules.cell_flag(rows, persons, persons_node=linked, persons_count="linked")
        return self.rules.cell_flag(rows, persons)

    def combine_slot(self, s: dict, shares: list[str]) -> str:
        if s["kind"] == "distinct" and "col" in s["arg"]:
            return self.link_distinct(s["arg"]["col"])
        if s["kind"] == "persons" and any(x["kind"] == "distinct" and x["arg"].get("col") == s["column"]
                                          for x in self.slots):
            return self.link_distinct(s["column"])  # exact and free: the query counts them anyway
        return super().combine_slot(s, shares)

    def link_distinct(self, column: str) -> str:
        if column in self._links:
            return self._links[column]
        lp, cat = self.lp, self.catalog
        bits = max(cat.datasets[d].columns[column].bits for d in lp.datasets)
        layout = make_layout("distinct", bits, [[("cell", _bits(self.cells)), ("present", 1)]])
        keys_ir = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
        loads = {d["attrs"]["dataset"]: n for n, d in self.g.nodes(data=True) if d["op"] == "load"}
        shares = []
        for ds in lp.datasets:
            owner = cat.datasets[ds].owner
            r = self.add("link_rows", f"local:{owner}", [loads[ds]], [-1], dataset=ds, side=0, layout=layout,
                         where=lp.where, keys=keys_ir, key_column=column, measures=[], unique=False,
                         keep_unkeyed=False, **link_size(lp.policy))
            shares.append(self.add("link_share", f"input:{owner}", [r], [-1], 0, 2 ** layout["bits"], party=owner))
        nid = self.add("link_distinct", "secure", shares, [self.cells], 0, self.max_rows,
                       algorithm=algorithm(cat, lp.datasets), layout=layout, cells=self.cells, column=column)
        self._links[column] = nid
        return nid


def builder_class(lp: LogicalPlan) -> type[CircuitBuilder]:
    if isinstance(lp, JoinLogicalPlan):
        return JoinBuilder
    if len(lp.datasets) > 1 and any(a.func == "count_distinct" for a in lp.aggregates):
        return UnionDistinctBuilder
    return CircuitBuilder
