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
from dataclasses import dataclass, field, replace

from insightql.stdlib.types import days_to_date

from insightql.compiler.syntax import ast as A
from insightql.compiler.plaintext.dp_interval import output_noise


@dataclass
class Suppressed:
    """A value the receivers do not get. `scope`: "cell" (the cell's release flag is 0: every value
    of the row) or "value" (this value's own flag is 0). `rules`: the ids of the release rules
    (compiler/check/rules.py) whose conjunction that flag is, as the plan lists them; which one
    failed is not revealed, so this is the set that can have caused it."""
    reason: str
    scope: str = "cell"
    rules: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "suppressed"


@dataclass
class ResultTable:
    """The released table. `schema`: one entry per column, {"name", "kind": "key" | "value", "type"
    (the plan's type JSON), "rules" (a value's own rules)}, from the plan; empty for tables built
    by hand. The file formats are written from it (runtime/results/)."""
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema: list[dict] = field(default_factory=list)

    def to_records(self) -> list[dict]:
        return [{c: _json_value(v) for c, v in zip(self.columns, r)} for r in self.rows]

    def to_json(self) -> str:
        """{"columns", "rows", "notes", "schema"}; a receiver's ledger commits to "columns" and
        "rows" (runtime/governance/disclosure.py)."""
        return json.dumps({"columns": self.columns, "rows": self.to_records(), "notes": self.notes,
                           "schema": self.schema}, indent=2)

    def measures(self) -> list[int]:
        """Indexes of the columns that can be suppressed: the plan's values (a table built by hand:
        the columns holding a suppressed cell)."""
        if self.schema:
            return [i for i, s in enumerate(self.schema) if s["kind"] == "value"]
        return [i for i in range(len(self.columns)) if any(isinstance(r[i], Suppressed) for r in self.rows)]

    def to_csv(self) -> str:
        """Suppression in its own columns (spec/results.md): after each measure m a column
        m_suppressed (true/false), and a last column suppressed_by when any column can be
        suppressed; a suppressed or NULL value is an empty field."""
        flagged = set(self.measures())
        header = []
        for i, c in enumerate(self.columns):
            header += [c, f"{c}_suppressed"] if i in flagged else [c]
        out = [_csv_line(header + (["suppressed_by"] if flagged else []))]
        for r in self.rows:
            line = []
            for i, v in enumerate(r):
                line.append("" if v is None or isinstance(v, Suppressed) else csv_value(v))
                if i in flagged:
                    line.append("true" if isinstance(v, Suppressed) else "false")
            out.append(_csv_line(line + ([suppressed_by(self.columns, r)] if flagged else [])))
        return "".join(out)

    def render(self) -> str:
        cells = [[_fmt(v) for v in r] for r in self.rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths))
        out = [line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        out += self.notes
        return "\n".join(out)


def _csv_line(fields: list[str]) -> str:
    """One CSV line ending in \\n, a field quoted when it holds a comma, a quote, \\n or \\r (csv
    quotes only for the characters of its line terminator, so it writes with \\r\\n and that ending
    is replaced)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)
    return buf.getvalue()[:-2] + "\n"


def suppressed_by(columns: list[str], row: list) -> str:
    """Why values of a row are suppressed, as rule ids: "" (none), "cell: cell.rows observer.rows"
    (the whole cell), or "mean_age: values.rows; median_age: percentile.rank values.rows"."""
    sup = [(c, v) for c, v in zip(columns, row) if isinstance(v, Suppressed)]
    if any(v.scope == "cell" for _, v in sup):
        return "cell: " + " ".join(next(v for _, v in sup if v.scope == "cell").rules)
    return "; ".join(f"{c}: {' '.join(v.rules)}" for c, v in sup)


def parse_suppressed_by(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The inverse of suppressed_by: {"cell" or a column name: (scope, rule ids)}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split("; "))):
        name, _, rules = part.partition(":")
        out[name] = ("cell" if name == "cell" else "value", tuple(rules.split()))
    return out


def csv_value(v) -> str:
    """A released value in CSV: exact (the shortest text that reads back to the same float; a whole
    number without ".0"), a value of round(x, d) with its d digits, booleans as true/false."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Rounded):
        return f"{v:.{v.digits}f}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v)


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


class Rounded(float):
    """A value rounded by `round(x, digits)`, digits > 0: shown with exactly those digits (7.0, not 7)."""
    digits: int

    def __new__(cls, value: float, digits: int):
        out = super().__new__(cls, round(value, digits))
        out.digits = digits
        return out


def rounded(value: float, digits: int):
    """round(value, digits), keeping the digits for display when there are any."""
    return Rounded(value, digits) if digits > 0 else round(value, digits)


def _fmt(v) -> str:
    if isinstance(v, Suppressed):
        return "[suppressed]"
    if v is None:
        return "NULL"
    if isinstance(v, Rounded):
        return f"{v:.{v.digits}f}"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _json_value(v):
    if isinstance(v, Suppressed):
        return {"suppressed": True, "reason": v.reason, "scope": v.scope, "rules": list(v.rules)}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# -- pct(): public post-processing of released values --------------------------------------------
def split_post(e: A.Expr) -> tuple[A.Expr, A.FuncCall | None]:
    """(what MPC computes and reveals for a SELECT item, the pct() call around it or None).

    `pct(v)` reveals v and `round(pct(v), d)` reveals v with a round(v, d) post step; the share is
    computed here, on the released table, so it can never involve a suppressed value. A negative
    digits literal (`-1`, parsed as a negation) is folded into one literal for the plan."""
    rnd = e if isinstance(e, A.FuncCall) and e.name == "round" and e.args else None
    inner = rnd.args[0] if rnd else e
    pct = inner if isinstance(inner, A.FuncCall) and inner.name == "pct" and len(inner.args) == 1 else None
    value = pct.args[0] if pct else inner
    if rnd is None:
        return value, pct
    digits = tuple(_fold(d) for d in rnd.args[1:])
    if value is rnd.args[0] and all(x is y for x, y in zip(digits, rnd.args[1:])):
        return e, pct  # nothing to strip or fold: the item itself
    return replace(rnd, args=(value, *digits)), pct


def _fold(e: A.Expr) -> A.Expr:
    if isinstance(e, A.UnaryOp) and e.op == "neg" and isinstance(e.operand, A.Literal) and e.operand.kind == "int":
        return A.Literal(-e.operand.value, "int", span=e.span)
    return e


def _apply_pct(rows: list[list], outputs: list[dict], pcts: set[int], combos: list[tuple]) -> list[str]:
    """Replace each pct column's released values by their percent of the column's released total.

    The columns are the outputs the compiler marked `pct: true` (the item was `pct(v)` or
    `round(pct(v), d)`); the plan reveals v itself, and its `round` applies to the percent. With
    `pct_by` (OVER (PARTITION BY ...)) the total is taken per partition: over the released values
    of the rows whose keys `pct_by` have the same values (`combos`: each row's key values)."""
    notes = []
    for i in sorted(pcts):
        by = outputs[i].get("pct_by") or []
        part = [tuple(c[k] for k in by) for c in combos]
        totals: dict[tuple, float] = {}
        for r, p in zip(rows, part):
            if not isinstance(r[i], Suppressed) and r[i] is not None:
                totals[p] = totals.get(p, 0) + r[i]
        rnd = outputs[i].get("round")
        for r, p in zip(rows, part):
            if isinstance(r[i], Suppressed) or r[i] is None:
                continue
            share = 100.0 * r[i] / totals[p] if totals[p] > 0 else None
            r[i] = rounded(share, rnd["round"]) if share is not None and rnd is not None else share
            if r[i] is not None and outputs[i]["type"]["kind"] == "int":  # round(pct(v)) or digits < 0
                r[i] = int(r[i])
        left_out = sum(1 for r in rows if isinstance(r[i], Suppressed))
        released = sum(1 for r in rows if not isinstance(r[i], Suppressed) and r[i] is not None)
        within = f" within each of its {len(totals)} partition(s) by {', '.join(_key_names(outputs, by))}" if by else ""
        notes.append(f"{outputs[i]['name']}: percent of the total of the {released} released value(s) in this column"
                     + within + (f"; the {left_out} suppressed are not in the total." if left_out else "."))
    return notes


def _key_names(outputs: list[dict], keys: list[int]) -> list[str]:
    """The output names of GROUP BY keys (`#i` for a key that is not selected)."""
    named = {o["key"]: o["name"] for o in outputs if o["kind"] == "key"}
    return [named.get(k, f"GROUP BY key {k + 1}") for k in keys]


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
    earlier = sorted({o["query"] or "?" for e in plan.get("guard", []) for o in e["from"]})
    reason = (f"fewer than k={k} rows or persons, in the cell or in what an observer does not hold"
              + (", or it would difference with an earlier release" if earlier else ""))
    if plan["policy"].get("privacy"):  # spec/privacy.md 5: the only cell rule under DP
        reason = f"noisy row count below k={k} (differential privacy)"
    pcts = {j for j, o in enumerate(a["outputs"]) if o.get("pct")}  # the compiler's marker (circuit.build_outputs)
    cell_rules, own_rules = plan_rules(plan)
    rows, row_combos = [], []
    for cell, combo in enumerate(combos):
        if keep is not None and released[cell] and not keep[cell]:
            continue  # HAVING is false: the analyst's own filter, applied to released cells only
        row_combos.append(combo)
        row = []
        for j, o in enumerate(a["outputs"]):
            if o["kind"] == "key":
                row.append(key_label(combo[o["key"]], a["keys"][o["key"]]["type"]))
                continue
            if not released[cell]:
                row.append(Suppressed(reason, "cell", cell_rules))
                continue
            if round(revealed[o["flag"]][cell]) != 1:
                row.append(Suppressed("value withheld: too few contributing rows, two counts too close, a "
                                      "dominant contributor, or a zero denominator", "value",
                                      own_rules.get(o["name"], ())))
                continue
            row.append(_finish(revealed[o["value"]][cell], {**o, "round": None} if j in pcts else o))
        rows.append(row)
    pct_notes = _apply_pct(rows, a["outputs"], pcts, row_combos)
    order = a["order_by"]
    if order:
        for idx, desc in reversed(order):
            present = [r for r in rows if not isinstance(r[idx], Suppressed) and r[idx] is not None]
            absent = [r for r in rows if isinstance(r[idx], Suppressed) or r[idx] is None]
            present.sort(key=_sort_key(a, idx), reverse=desc)
            rows = present + absent
    if a["limit"] is not None:
        rows = rows[: a["limit"]]
    notes = []
    cell_sup = sum(1 for r in rows if any(isinstance(v, Suppressed) and v.reason == reason for v in r))
    value_sup = sum(1 for r in rows if any(isinstance(v, Suppressed) for v in r)
                    and not any(isinstance(v, Suppressed) and v.reason == reason for v in r))
    if cell_sup:
        notes.append(f"{cell_sup} row(s) suppressed: {reason} (policy of the data owners"
                     + (f"; compared with earlier release(s) {', '.join(earlier)}" if earlier else "") + ").")
    if value_sup:
        notes.append(f"{value_sup} row(s) with single values withheld: too few rows contribute to that value (in "
                     "the cell or in what an observer does not hold), two counts differ by fewer than k, one "
                     "contributor dominates a sum, or a denominator is zero.")
    schema = [{"name": o["name"], "kind": o["kind"], "type": o["type"],
               **({"rules": list(own_rules.get(o["name"], ()))} if o["kind"] == "value" else {}),
               **({"digits": o["round"]["round"]} if _digits(o) else {}),
               **({"noise95": output_noise(o, len(plan["parties"]))} if o.get("dp") else {})} for o in a["outputs"]]
    if any(o.get("dp") for o in a["outputs"]):  # spec/privacy.md 6
        notes.append("Differentially private: every value carries noise drawn inside MPC; 95% of the noise lies "
                     "within " + "; ".join(f"{o['name']} {output_noise(o, len(plan['parties']))}" for o in a["outputs"] if o.get("dp"))
                     + ". Cells were suppressed on their noisy row count.")
    return ResultTable([o["name"] for o in a["outputs"]], rows, notes + pct_notes, schema)


def _digits(o: dict) -> bool:
    """A value shown with a fixed number of digits (round(x, d), d > 0, on a decimal)."""
    return o["kind"] == "value" and bool(o.get("round")) and o["round"]["round"] > 0 and o["type"]["kind"] != "int"


def plan_rules(plan: dict) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(the rule ids of the cells' release flag, {value column: the ids of its own flag's other
    rules}) from the plan's leakage report (compiler/plan/leakage.py)."""
    items = plan.get("leakage", [])
    cell = tuple(next((i.get("rules", []) for i in items if i["item"] == "suppression_flag"), []))
    own = {i["column"]: tuple(r for r in i.get("rules", []) if r not in cell)
           for i in items if i["item"] == "output_flag"}
    return cell, own


def _sort_key(table: dict, idx: int):
    """How ORDER BY compares the values of output idx: a GROUP BY key in the order of its public
    domain (a category in its declared order, not alphabetically), a value by its value."""
    o = table["outputs"][idx]
    if o["kind"] != "key":
        return lambda r: r[idx]
    key = table["keys"][o["key"]]
    rank = {key_label(v, key["type"]): k for k, v in enumerate(key["values"])}
    return lambda r: rank[r[idx]]


def _finish(raw: float, o: dict):
    value = float(raw) / 10 ** o["scale"] if o["scale"] > 0 else float(raw) * 10 ** (-o["scale"])
    if o.get("post") == "sqrt":
        value = math.sqrt(max(value, 0.0))
    if o.get("dp"):  # a noisy value into its type's public range (a count >= 0, a mean within the clamp): post-processing
        lo, hi = o["type"].get("lo"), o["type"].get("hi")
        value = max(value, lo) if lo is not None else value
        value = min(value, hi) if hi is not None else value
    if o["type"]["kind"] == "int":
        return int(round(value, o["round"]["round"] if o.get("round") else 0))
    if o.get("round") is not None:
        return rounded(value, o["round"]["round"])
    return value


def table_from_json(text: str) -> ResultTable:
    doc = json.loads(text)
    cols = doc["columns"]
    digits = {s["name"]: s["digits"] for s in doc.get("schema", []) if s.get("digits")}

    def cell(c, v):
        if isinstance(v, dict) and v.get("suppressed"):
            return Suppressed(v["reason"], v.get("scope", "cell"), tuple(v.get("rules", ())))
        return Rounded(v, digits[c]) if c in digits and isinstance(v, (int, float)) else v
    rows = [[cell(c, rec[c]) for c in cols] for rec in doc["rows"]]
    return ResultTable(cols, rows, doc.get("notes", []), doc.get("schema", []))
