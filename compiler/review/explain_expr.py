"""Plan expressions in words: a plan's row-level IR (WHERE, group keys, slot arguments) back in
query-like syntax, for `iq explain` and `iq diff`."""
from __future__ import annotations

import datetime as dt
import json


def expr_text(e) -> str:
    """A plan expression IR back in query-like syntax."""
    if e is None:
        return "TRUE"
    if "col" in e:
        return e["col"]
    if "lit" in e:
        v = e["lit"]
        t = e.get("type", {})
        dom = t.get("domain")
        if dom and isinstance(v, int) and 0 <= v < len(dom):
            return "'" + str(dom[v]).replace("'", "''") + "'"
        if t.get("kind") == "date" and isinstance(v, int):  # days since 1970-01-01, as the query wrote it
            return f"DATE '{(dt.date(1970, 1, 1) + dt.timedelta(days=v)).isoformat()}'"
        return json.dumps(v)
    if "fn" in e:
        args = [expr_text(a) if a is not None else json.dumps(c) for a, c in zip(e["args"], e.get("consts", []))]
        return f"{e['fn']}({', '.join(args)})"
    op, args = e.get("op"), e.get("args", [])
    if op == "case":
        whens = " ".join(f"WHEN {expr_text(c)} THEN {expr_text(v)}" for c, v in e["whens"])
        return f"CASE {whens}" + (f" ELSE {expr_text(e['else'])}" if e.get("else") else "") + " END"
    if op in ("not", "neg", "is_null"):
        inner = expr_text(args[0])
        return {"not": f"NOT ({inner})", "neg": f"-{inner}", "is_null": f"{inner} IS NULL"}[op]
    if op == "in":
        return f"{expr_text(args[0])} IN ({', '.join(expr_text(a) for a in args[1:])})"
    return "(" + f" {op.upper() if op in ('and', 'or') else op} ".join(expr_text(a) for a in args) + ")"


def slot_text(s: dict) -> str:
    arg = f"({expr_text(s['arg'])})" if "arg" in s else f"({s['column']})" if "column" in s else ""
    extra = f", clamp {s['clamp']}" if "clamp" in s else ""
    extra += f", top {s['n']}" if s["kind"] == "top" else ""
    extra += f", {s['size']} bins from {s['lo']}" if s["kind"] == "hist" else ""
    return f"{s['name']} {s['kind']}{arg}{extra}"
