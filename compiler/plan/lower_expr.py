"""Row expressions: AST -> plan expression IR (JSON-ready dicts with resolved types).

Category literals become domain codes of the expression they are compared with, so a data
owner evaluates predicates on integer codes, and no string matching happens at run time.
"""
from __future__ import annotations

from insightql.stdlib.types import IQType, date_to_days

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.checker import CheckedQuery


class Lowering:
    def __init__(self, cq: CheckedQuery):
        self.cq = cq

    def t(self, e) -> IQType:
        return self.cq.type_of(e)

    def expr(self, e: A.Expr, want: IQType | None = None) -> dict:
        """Lower e; `want` is the category type a string literal must be coded against."""
        t = self.t(e) if id(e) in self.cq.types else None
        if isinstance(e, A.Literal):
            return self.literal(e, want)
        if isinstance(e, A.ColumnRef):
            binding, name = self.cq.columns[id(e)]
            return {"col": name, "type": t.to_json()}
        if isinstance(e, A.FuncCall):
            args, consts = [], []
            want_arg = t if t.kind == "category" else None  # coalesce(region, 'Unknown'): a code of the result
            for a in e.args:
                if isinstance(a, A.ListLiteral):
                    args.append(None)
                    consts.append([_const_value(i) for i in a.items])
                else:
                    args.append(self.expr(a, want_arg))
                    consts.append(_const_value(a))  # a literal, or a negated one: round(x, -1)
            return {"fn": e.name, "args": args, "consts": consts, "arg_types": [
                None if isinstance(a, A.ListLiteral) else self.t(a).to_json() for a in e.args], "type": t.to_json()}
        if isinstance(e, A.UnaryOp):
            return {"op": e.op, "args": [self.expr(e.operand)], "type": t.to_json()}
        if isinstance(e, A.BinOp):
            lt, rt = self.t(e.left), self.t(e.right)
            l = self.expr(e.left, rt if rt.kind == "category" else None)
            r = self.expr(e.right, lt if lt.kind == "category" else None)
            return {"op": e.op, "args": [l, r], "type": t.to_json()}
        if isinstance(e, A.InList):
            ot = self.t(e.operand)
            items = [self.expr(i, ot if ot.kind == "category" else None) for i in e.items]
            node = {"op": "in", "args": [self.expr(e.operand), *items], "type": t.to_json()}
            return {"op": "not", "args": [node], "type": t.to_json()} if e.negated else node
        if isinstance(e, A.Between):
            x = self.expr(e.operand)
            node = {"op": "and", "args": [
                {"op": ">=", "args": [x, self.expr(e.low)], "type": t.to_json()},
                {"op": "<=", "args": [x, self.expr(e.high)], "type": t.to_json()}], "type": t.to_json()}
            return {"op": "not", "args": [node], "type": t.to_json()} if e.negated else node
        if isinstance(e, A.IsNull):
            node = {"op": "is_null", "args": [self.expr(e.operand)], "type": t.to_json()}
            return {"op": "not", "args": [node], "type": t.to_json()} if e.negated else node
        if isinstance(e, A.Case):
            whens = [[self.expr(c), self.expr(v, t if t.kind == "category" else None)] for c, v in e.whens]
            else_ = self.expr(e.else_, t if t.kind == "category" else None) if e.else_ is not None else None
            return {"op": "case", "whens": whens, "else": else_, "type": t.to_json()}
        raise AssertionError(f"cannot lower {e!r}")

    def literal(self, e: A.Literal, want: IQType | None) -> dict:
        if e.kind == "string":
            if want is not None and e.value in want.domain:
                return {"lit": want.domain.index(e.value), "type": want.with_nullable(False).to_json()}
            return {"lit": e.value, "type": {"kind": "string", "nullable": False}}
        if e.kind == "date":
            return {"lit": date_to_days(e.value), "type": {"kind": "date", "nullable": False}}
        if e.kind == "decimal":
            return {"lit": float(e.value), "type": self.t(e).to_json()}
        if e.kind == "null":
            return {"lit": None, "type": {"kind": "null", "nullable": True}}
        return {"lit": e.value, "type": self.t(e).to_json()}


def _const_value(e):
    if isinstance(e, A.Literal):
        if e.kind == "decimal":
            return float(e.value)
        if e.kind == "date":
            return date_to_days(e.value)
        return e.value
    if isinstance(e, A.UnaryOp) and e.op == "neg" and isinstance(e.operand, A.Literal):
        return -_const_value(e.operand)
    return None


def columns_used(ir: dict | None, out: set[str] | None = None) -> set[str]:
    """Names of the columns an IR expression reads."""
    out = set() if out is None else out
    if ir is None:
        return out
    if "col" in ir:
        out.add(ir["col"])
    for a in ir.get("args", []) or []:
        columns_used(a, out)
    for c, v in ir.get("whens", []):
        columns_used(c, out)
        columns_used(v, out)
    columns_used(ir.get("else"), out)
    return out
