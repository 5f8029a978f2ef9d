"""Stage 5: LogicalPlan -> MPC circuit DAG (networkx), every node placed and typed.

Placement: `local:P` runs in plaintext at data owner P on its own rows; `input:P` secret-shares
P's fixed-size partials; `secure` runs on shares among all parties; `reveal` is the only exit
from MPC; `public` post-processes revealed values. Nodes are whole-vector operations over the
public cell domain, never per row.
"""
from __future__ import annotations

import math

import networkx as nx

from insightql.stdlib.functions import FUNCTIONS

from insightql.compiler.syntax import ast as A
from insightql.compiler.plan import dp_lower, guard
from insightql.compiler.plan.aggregates import LOWERING, counted
from insightql.compiler.plan.partition import PartitionRule
from insightql.compiler.diagnostics import Diagnostic, PlanError
from insightql.compiler.plan.logical import AggregateSpec, LogicalPlan
from insightql.compiler.plan.ops import FRAC_BITS, OPS
from insightql.compiler.plan.lower_expr import columns_used
from insightql.compiler.plan.release import ReleaseRules



class CircuitBuilder:
    def __init__(self, lp: LogicalPlan, catalog):
        self.lp = lp
        self.catalog = catalog
        self.g = nx.DiGraph()
        self.cells = math.prod(len(k.values) for k in lp.keys) if lp.keys else 1
        self.slots: list[dict] = []
        self.slot_index: dict[str, str] = {}
        self.combined: dict[str, str] = {}

    # -- graph helpers --------------------------------------------------------------------
    def add(self, op: str, placement: str, inputs: list[str], shape: list[int], lo=0, hi=0, **attrs) -> str:
        if op not in OPS:
            raise ValueError(f"compiler bug: {op!r} is not a declared plan op (compiler/plan/ops.py)")
        nid = f"n{len(self.g) + 1:03d}"
        self.g.add_node(nid, op=op, placement=placement, inputs=list(inputs), shape=list(shape),
                        bounds=[_num(lo), _num(hi)], frac=self.frac_of(op, inputs), attrs=attrs)
        for i in inputs:
            self.g.add_edge(i, nid)
        return nid

    def frac_of(self, op: str, inputs: list[str]) -> int:
        """Binary fractional bits of a secure value: a node holds round(value * 2**frac) as a
        secret integer. Each op's rule is declared with it (compiler/plan/ops.py)."""
        return OPS[op].frac([self.g.nodes[i]["frac"] for i in inputs if i in self.g])

    def bounds(self, nid: str) -> tuple[float, float]:
        lo, hi = self.g.nodes[nid]["bounds"]
        return lo, hi

    def secure(self, op, inputs, lo, hi, **attrs) -> str:
        return self.add(op, "secure", inputs, [self.cells], lo, hi, **attrs)

    # -- slots: what each owner pre-aggregates per cell ------------------------------------
    def slot(self, kind: str, arg: dict | None = None, **extra) -> str:
        key = repr((kind, arg, sorted(extra.items())))
        if key in self.slot_index:  # common-subexpression elimination across aggregates
            return self.slot_index[key]
        name = f"s{len(self.slots)}"
        spec = {"name": name, "kind": kind, **({"arg": arg} if arg is not None else {}), **extra}
        self.slots.append(spec)
        self.slot_index[key] = name
        return name

    def value_slots(self, a: AggregateSpec) -> dict:
        t = a.arg_type
        scale = t.scale if t.kind == "decimal" else 0
        extra = {"scale": scale}
        if a.clamp is not None:
            extra["clamp"] = list(a.clamp)
        return extra

    # -- build ----------------------------------------------------------------------------
    def build(self) -> nx.DiGraph:
        lp = self.lp
        max_rows = sum(self.catalog.datasets[d].max_rows for d in lp.datasets)
        self.max_rows = max_rows
        dp = lp.policy.privacy is not None  # differential privacy: noisy values, no threshold rules (dp_lower.py)
        rows = self.slot("rows")
        persons = self.slot("persons", column=lp.person_key) if lp.person_key and not dp else None
        agg_plans = [self.plan_aggregate(a) for a in lp.aggregates]
        self.value_columns = {slot: arg for a, p in zip(lp.aggregates, agg_plans) for slot, arg, _ in counted(a, p)}
        self.partition = PartitionRule(self, agg_plans)  # filter.parts: its slots before the owners' partials
        self.value_columns.update(self.partition.columns())
        self.person_slots = self.value_person_slots(agg_plans) if lp.person_key and not dp else {}
        keys_ir = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
        # differencing guard: earlier releases (compiler/plan/guard.py); under DP the exact ones only
        # (a DP release against a DP one is the budget's: spec/privacy.md 5)
        if dp:
            self.earlier = dp_lower.exact_releases(getattr(self, "earlier", None) or [])
        earlier_irs = guard.declare(self, keys_ir)
        used = set()
        for ir in [lp.where, *(k.expr for k in lp.keys), *(s.get("arg") for s in self.slots), *earlier_irs]:
            columns_used(ir, used)
        if lp.person_key:
            used.add(lp.person_key)
        shares = []
        height = sum(s.get("n", 1) if s["kind"] == "top" else s.get("size", 1) if s["kind"] == "hist" else 1
                     for s in self.slots)
        for d in lp.datasets:
            owner = self.catalog.datasets[d].owner
            load = self.add("load", f"local:{owner}", [], [-1], dataset=d,
                            columns={c: lp.columns[c].to_json() for c in sorted(used)})
            part = self.add("partials", f"local:{owner}", [load], [height, self.cells], dataset=d,
                            where=lp.where, keys=keys_ir, slots=self.slots, cells=self.cells,
                            **dp_lower.person_bound(self, d) if dp else {})
            shares.append(self.add("share", f"input:{owner}", [part], [height, self.cells], 0, max_rows, party=owner))
        self.shares = shares
        for s in self.slots:
            self.combined[s["name"]] = self.combine_slot(s, shares)
        self.rules = ReleaseRules(self)
        if dp:
            dp_lower.finish(self, agg_plans)
        else:
            self.released = guard.apply(self, self.cell_flag(rows, persons))
            self.finish_values(agg_plans)
        self.build_outputs()
        return self.g

    def cell_flag(self, rows: str, persons: str | None) -> str:
        """compiler/plan/release.py; linkage.py overrides it where persons are counted across owners."""
        return self.rules.cell_flag(rows, persons)

    def finish_values(self, agg_plans: list[dict]) -> None:
        """Every aggregate's secure nodes and flag, then the pair rule between the counts the query
        reveals (counts.pair), ANDed into the flags of the values it concerns."""
        lp = self.lp
        self.agg_list = [self.finish_aggregate(a, p) for a, p in zip(lp.aggregates, agg_plans)]
        counts = {slot: text for a, p in zip(lp.aggregates, agg_plans)
                  for slot, _, text in counted(a, p)}  # count slot -> column or subgroup
        distinct = [v["node"] for a, v in zip(lp.aggregates, self.agg_list) if a.func == "count_distinct"]
        pairs = self.rules.count_pairs(counts, self.slot("rows"), distinct)
        # filter.parts, each derived group also against earlier releases (the differencing guard)
        parts = self.partition.flags(lambda slot, flag: guard.apply_values(self, slot, flag)) \
            if getattr(self, "partition", None) else {}
        for i, (a, p, v) in enumerate(zip(lp.aggregates, agg_plans, self.agg_list)):
            own = v["flag"]  # before counts.pair and filter.parts: what they withhold triggers guard.closure
            slots = [slot for slot, _, _ in counted(a, p)]
            extra = [pairs.get(slot) for slot in slots] or [pairs.get(v["node"]) if a.func == "count_distinct"
                                                            else None]
            if a.func == "count_distinct" and self.linked(v["node"]):
                extra.append(self.rules.membership(v["node"], p["distinct"]))
            extra.append(parts.get(i))
            if any(extra):
                v["flag"] = self.rules.all_of([v["flag"], *extra])
            for slot in slots:  # the guard on the rows with a value, or of the subgroup
                if slot in getattr(self, "value_columns", {}):
                    v["flag"] = guard.apply_values(self, slot, v["flag"], before=own)

    def linked(self, node: str) -> bool:
        """Whether a node counts across owners by record linkage (compiler/plan/linkage.py)."""
        return self.g.nodes[node]["op"].startswith("link_")

    def combine_slot(self, s: dict, shares: list[str]) -> str:
        """The secure node holding one slot's per-cell totals (compiler/plan/linkage.py overrides this
        for distinct counts across owners)."""
        how = {"max": "max", "min": "min", "persons": "max", "top": "total"}.get(s["kind"], "sum")
        lo, hi = self.slot_bounds(s)
        nid = self.add("combine", "secure", shares, [self.cells], lo, hi, slot=s["name"], how=how)
        if s["kind"] == "hist":
            self.g.nodes[nid]["shape"] = [s["size"], self.cells]
        return nid

    def slot_bounds(self, s: dict) -> tuple[float, float]:
        n = self.max_rows
        if s["kind"] in ("rows", "persons", "persons_where", "repeaters", "count", "distinct", "hist", "symdiff"):
            return 0, n
        lo, hi = self._arg_range(s)
        if s["kind"] == "sum":
            return min(0, lo * n), max(0, hi * n)
        if s["kind"] in ("sumsq", "abssum", "top"):
            m = max(abs(lo), abs(hi))
            return 0, (m * m if s["kind"] == "sumsq" else m) * n
        return lo - 1, hi + 1  # max/min with empty sentinels

    def _arg_range(self, s: dict) -> tuple[float, float]:
        t = s["arg"]["type"]
        lo, hi = s.get("clamp") or (t["lo"], t["hi"])
        f = 10 ** s.get("scale", 0)
        return math.floor(lo * f), math.ceil(hi * f)

    def value_person_slots(self, agg_plans: list[dict]) -> dict:
        """values.persons (spec/disclosure.md 2.4-2.5): for each nullable column aggregated, the
        persons among the rows with and without a value; for every two, among the rows with exactly
        one; with a distinct count, the persons with repeat records. Each dataset counts its own."""
        pk, out, cols = self.lp.person_key, {}, {}
        for a, p in zip(self.lp.aggregates, agg_plans):
            cols.update((slot, arg) for slot, arg, _ in counted(a, p))
        for s, arg in cols.items():
            out[s] = {"nn": self.slot("persons_where", _not(_is_null(arg)), column=pk),
                      "null": self.slot("persons_where", _is_null(arg), column=pk)}
        names = sorted(cols)
        for i, sx in enumerate(names):
            for sy in names[i + 1:]:
                x, y = _is_null(cols[sx]), _is_null(cols[sy])
                out[(sx, sy)] = self.slot("persons_where", _bool("or", _bool("and", x, _not(y)),
                                                                 _bool("and", _not(x), y)), column=pk)
        if any(a.func == "count_distinct" for a in self.lp.aggregates):
            out["repeaters"] = self.slot("repeaters", column=pk)
        return out

    def per_person(self) -> dict:
        """Order statistics and dominance count persons, not records (spec/disclosure.md 2.7):
        with a person key, each owner first reduces each person's rows in a cell to one value."""
        return {"person": self.lp.person_key} if self.lp.person_key else {}

    def plan_aggregate(self, a: AggregateSpec) -> dict:
        """Declare the slots an aggregate needs (compiler/plan/aggregates.py); returns their names."""
        return LOWERING[a.func].plan(self, a)

    def finish_aggregate(self, a: AggregateSpec, p: dict) -> dict:
        """Secure nodes computing one aggregate (compiler/plan/aggregates.py); {node, flag, scale, post}."""
        return LOWERING[a.func].finish(self, a, p)

    # -- outputs, HAVING, reveal ------------------------------------------------------------
    def build_outputs(self):
        lp = self.lp
        outs, reveal_inputs = [], [self.released]
        for o in lp.outputs:
            key = next((i for i, k in enumerate(lp.keys) if o.expr == self._key_ast(i)), None)
            if key is not None or not o.is_aggregate:
                if key is None:
                    raise PlanError(Diagnostic("IQ404", "this output is neither a GROUP BY key nor an aggregate "
                                               "expression", None, ["select group keys and aggregates"]))
                outs.append({"name": o.name, "kind": "key", "key": key, "type": o.type.to_json()})
                continue
            post = None
            e = o.expr
            if isinstance(e, A.FuncCall) and e.name == "round" and e.name in FUNCTIONS:
                post = {"round": int(e.args[1].value) if len(e.args) > 1 else 0}
                e = e.args[0]
            v = self.value_expr(e)
            masked, rnd = self.released_form(v)
            reveal_inputs += [masked, v["flag"]]
            out = {"name": o.name, "kind": "value", "value": masked, "flag": v["flag"], "scale": v["scale"],
                   "post": v.get("post"), "round": post, "rounded_to": rnd, "type": o.type.to_json()}
            if v.get("dp"):  # the measurements behind the value (spec/privacy.md): leakage report, explain, results
                out["dp"] = v["dp"]
            if o.pct:  # the public stage replaces the column's released values by their shares (results.py)
                out["pct"] = True
            if o.pct_by:  # ... within the cells that share these keys' values (PARTITION BY)
                out["pct_by"] = [next(i for i in range(len(lp.keys)) if self._key_ast(i) == g) for g in o.pct_by]
            outs.append(out)
        keep = None
        if lp.having is not None:
            h = self.bool_expr(lp.having)
            keep = self.secure("and", [h, self.released], 0, 1)
            reveal_inputs.append(keep)
        receivers = list(lp.policy.receivers)
        reveal_inputs = list(dict.fromkeys(reveal_inputs))
        reveal = self.add("reveal", "reveal", reveal_inputs, [len(reveal_inputs), self.cells], to=receivers)
        self.add("table", "public", [reveal], [-1], outputs=outs, keep=keep, released=self.released,
                 keys=[{"name": k.name, "values": k.values, "type": k.type.to_json()} for k in lp.keys],
                 order_by=[list(x) for x in lp.order_by], limit=lp.limit)
        self.outputs = outs

    def _key_ast(self, i):
        return self.lp.keys[i].ast

    def released_form(self, v: dict) -> tuple[str, int]:
        """A value as the receivers get it: 0 unless released; under rounding to b, a count rounded
        down to a multiple of b and a SUM to a multiple of b times the largest value one row can
        add (a WHERE can make every value the same, and the sum a count: spec/disclosure.md 2.10).
        Returns the node and the multiple, in the value's units."""
        masked = self.secure("mask", [v["node"], v["flag"]], *self.bounds(v["node"]))
        base = self.lp.policy.round_counts_to
        step = 1 if v.get("count") else v.get("sum_unit")
        if base <= 1 or not step:
            return masked, 1
        masked = self.secure("round_down", [masked], *self.bounds(masked), to=int(base * step))
        return masked, base * step / 10 ** v["scale"]

    def value_expr(self, e: A.Expr, released: bool = False) -> dict:
        """Secure node of an output or HAVING expression. `released`: aggregates enter in the form
        the receivers get (masked, counts rounded), so a HAVING decision depends on nothing else."""
        if isinstance(e, A.FuncCall):
            for a, v in zip(self.lp.aggregates, self.agg_list):
                if a.ast == e:
                    return {**v, "node": self.released_form(v)[0], "count": False} if released else v
        if isinstance(e, A.Literal) and e.kind in ("int", "decimal"):
            s = len(str(e.value).split(".")[1]) if e.kind == "decimal" else 0
            val = int(round(float(e.value) * 10 ** s))
            return {"node": self.secure("const", [], val, val, value=val), "flag": None, "scale": s, "const": val}
        if isinstance(e, A.UnaryOp) and e.op == "neg":
            v = self.value_expr(e.operand, released)
            lo, hi = self.bounds(v["node"])
            return {**v, "node": self.secure("neg", [v["node"]], -hi, -lo), "count": False}
        if isinstance(e, A.BinOp) and e.op in ("+", "-", "*", "/"):
            a, b = self.value_expr(e.left, released), self.value_expr(e.right, released)
            flag = self._and_flags(a["flag"], b["flag"])
            if e.op in ("+", "-"):
                a, b = self._align(a), self._align(b, a["scale"])
                a, b = self._align(a, b["scale"]), b
                (al, ah), (bl, bh) = self.bounds(a["node"]), self.bounds(b["node"])
                lo, hi = (al + bl, ah + bh) if e.op == "+" else (al - bh, ah - bl)
                op = "add" if e.op == "+" else "sub"
                return {"node": self.secure(op, [a["node"], b["node"]], lo, hi), "flag": flag, "scale": a["scale"]}
            (al, ah), (bl, bh) = self.bounds(a["node"]), self.bounds(b["node"])
            if e.op == "*":
                pr = [al * bl, al * bh, ah * bl, ah * bh]
                return {"node": self.secure("mul", [a["node"], b["node"]], min(pr), max(pr)), "flag": flag,
                        "scale": a["scale"] + b["scale"]}
            m = max(abs(al), abs(ah))
            nz = self.secure("nonzero", [b["node"]], 0, 1, rule="ratio.denominator")
            flag = self._and_flags(flag, nz)
            node = self.secure("div", [a["node"], b["node"]], -m, m, guard=nz)
            return {"node": node, "flag": flag, "scale": a["scale"] - b["scale"]}
        raise PlanError(Diagnostic("IQ404", "this output expression cannot be computed after aggregation", e.span,
                                   ["outputs may combine aggregates and numbers with + - * /"]))

    def _align(self, v: dict, scale: int | None = None) -> dict:
        if scale is None or v["scale"] >= scale:
            return v
        f = 10 ** (scale - v["scale"])
        lo, hi = self.bounds(v["node"])
        return {**v, "node": self.secure("mul_const", [v["node"]], lo * f, hi * f, const=f), "scale": scale}

    def _and_flags(self, a, b):
        if a is None or b is None or a == b:
            return a or b
        return self.secure("and", [a, b], 0, 1)

    def bool_expr(self, e: A.Expr) -> str:
        if isinstance(e, A.BinOp) and e.op in ("and", "or"):
            return self.secure(e.op, [self.bool_expr(e.left), self.bool_expr(e.right)], 0, 1)
        if isinstance(e, A.UnaryOp) and e.op == "not":
            return self.secure("not", [self.bool_expr(e.operand)], 0, 1)
        if isinstance(e, A.BinOp) and e.op in ("=", "<>", "<", "<=", ">", ">="):
            a, b = self.value_expr(e.left, True), self.value_expr(e.right, True)
            a, b = self._align(a, b["scale"]), self._align(b, a["scale"])
            (al, ah), (bl, bh) = self.bounds(a["node"]), self.bounds(b["node"])
            diff = self.secure("sub", [a["node"], b["node"]], al - bh, ah - bl)
            return self.secure("compare", [diff], 0, 1, relation=e.op)
        raise PlanError(Diagnostic("IQ404", "HAVING may only compare aggregates", e.span,
                                   ["filter on grouping columns with WHERE"]))


def _bool(op: str, *args: dict) -> dict:
    return {"op": op, "args": list(args), "type": {"kind": "bool", "nullable": False}}


def _is_null(arg: dict) -> dict:
    return _bool("is_null", arg)


def _not(arg: dict) -> dict:
    return _bool("not", arg)


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2 ** 62 else x
