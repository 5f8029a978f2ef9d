"""Public stage: turn revealed vectors into the result table a receiver sees.

Suppressed cells stay in the table, marked with the reason; they are never silently dropped.
ORDER BY and LIMIT act on revealed values only; suppressed rows sort last.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import dataclass, field

from insightql.stdlib.types import days_to_date


@dataclass
class Suppressed:
    reason: str

    def __str__(self) -> str:
        return "suppressed"


@dataclass
class ResultTable:
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_records(self) -> list[dict]:
        return [{c: _json_value(v) for c, v in zip(self.columns, r)} for r in self.rows]

    def to_json(self) -> str:
        return json.dumps({"columns": self.columns, "rows": self.to_records(), "notes": self.notes}, indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow(["[suppressed]" if isinstance(v, Suppressed) else "" if v is None else _fmt(v) for v in r])
        return buf.getvalue()

    def render(self) -> str:
        cells = [[_fmt(v) for v in r] for r in self.rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths))
        out = [line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        out += self.notes
        return "\n".join(out)


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _fmt(v) -> str:
    if isinstance(v, Suppressed):
        return "[suppressed]"
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _json_value(v):
    if isinstance(v, Suppressed):
        return {"suppressed": True, "reason": v.reason}
    return v


def key_label(value, type_json: dict):
    if value is None:
        return None
    if type_json["kind"] == "date":
        return days_to_date(value).isoformat()
    return value


def assemble(plan: dict, revealed: dict[str, list]) -> ResultTable:
    """Build the result table from the reveal node's values (node id -> per-cell list)."""
    node = next(n for n in plan["nodes"] if n["op"] == "table")
    a = node["attrs"]
    k = plan["policy"]["min_group_size"]
    released = [round(x) == 1 for x in revealed[a["released"]]]
    keep = [round(x) == 1 for x in revealed[a["keep"]]] if a["keep"] else None
    combos = list(itertools.product(*[kk["values"] for kk in a["keys"]])) if a["keys"] else [()]
    reason = f"fewer than k={k} contributing rows" + (" or distinct persons" if plan["policy"]["distinct_persons"] else "")
    blocked = [round(x) == 1 for x in revealed[a["guard_blocked"]]] if a.get("guard_blocked") else None
    earlier = sorted({o["query"] or "?" for e in plan.get("guard", []) for o in e["from"]})
    guard_reason = ("differencing guard: this cell differs by 1 to k-1 rows from an earlier release of "
                    + ", ".join(earlier) + " (it would single out a few rows)")
    rows = []
    for cell, combo in enumerate(combos):
        if keep is not None and released[cell] and not keep[cell]:
            continue  # HAVING is false: the analyst's own filter, applied to released cells only
        row = []
        for o in a["outputs"]:
            if o["kind"] == "key":
                row.append(key_label(combo[o["key"]], a["keys"][o["key"]]["type"]))
                continue
            if not released[cell]:
                row.append(Suppressed(guard_reason if blocked and blocked[cell] else reason))
                continue
            if round(revealed[o["flag"]][cell]) != 1:
                row.append(Suppressed("value withheld: too few contributing rows, a dominant contributor, "
                                      "or a zero denominator"))
                continue
            row.append(_finish(revealed[o["value"]][cell], o))
        rows.append(row)
    order = a["order_by"]
    if order:
        for idx, desc in reversed(order):
            present = [r for r in rows if not isinstance(r[idx], Suppressed) and r[idx] is not None]
            absent = [r for r in rows if isinstance(r[idx], Suppressed) or r[idx] is None]
            present.sort(key=lambda r: r[idx], reverse=desc)
            rows = present + absent
    if a["limit"] is not None:
        rows = rows[: a["limit"]]
    notes = []
    cell_sup = sum(1 for r in rows if any(isinstance(v, Suppressed) and v.reason == reason for v in r))
    value_sup = sum(1 for r in rows if any(isinstance(v, Suppressed) and v.reason not in (reason, guard_reason)
                                           for v in r)
                    and not any(isinstance(v, Suppressed) and v.reason in (reason, guard_reason) for v in r))
    guard_sup = sum(1 for r in rows if any(isinstance(v, Suppressed) and v.reason == guard_reason for v in r))
    if guard_sup:
        notes.append(f"{guard_sup} row(s) suppressed: {guard_reason}.")
    if cell_sup:
        notes.append(f"{cell_sup} row(s) suppressed: {reason} (policy of the data owners).")
    if value_sup:
        notes.append(f"{value_sup} row(s) with single values withheld: too few rows contribute to that value, "
                     "one contributor dominates a sum, or a denominator is zero.")
    return ResultTable([o["name"] for o in a["outputs"]], rows, notes)


def _finish(raw: float, o: dict):
    value = float(raw) / 10 ** o["scale"] if o["scale"] > 0 else float(raw) * 10 ** (-o["scale"])
    if o.get("post") == "sqrt":
        value = math.sqrt(max(value, 0.0))
    if o.get("round") is not None:
        value = round(value, o["round"]["round"])
    if o["type"]["kind"] == "int":
        return int(round(value))
    return value


def table_from_json(text: str) -> ResultTable:
    doc = json.loads(text)
    cols = doc["columns"]
    rows = [[Suppressed(v["reason"]) if isinstance(v, dict) and v.get("suppressed") else v for v in
             (rec[c] for c in cols)] for rec in doc["rows"]]
    return ResultTable(cols, rows, doc.get("notes", []))
