"""The result document: one dict from which every file format is written (spec/results.md).

A receiver's result table (compiler/plaintext/results.py `ResultTable`) plus what the plan says
about it: its hash, the query, who receives and who computes, the release rules applied and the
leakage report. Everything here comes from the plan or from the released table, so every receiver
of a run writes the same document, and nothing in it is a value the plan does not release.

    {"format": "insightql-result/1", "columns": [...], "rows": [{column: value or
     {"suppressed": true, "reason", "scope", "rules"}}], "notes": [...], "schema": [...],
     "meta": {"plan_hash", "query", "receivers", "computing_parties", "output_parties", "policy",
              "rules", "leakage", "released_on"}}

"columns" and "rows" are exactly what a receiver's ledger commits to (`ResultTable.to_json`), so
`iq audit prove` accepts the JSON file as written. `write_result` is what `iq run --out` and `iq
party --out` call; `read_result` reads a JSON, Parquet or CSV result back.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from insightql.compiler.check.rules import RULES, condition
from insightql.compiler.plaintext.results import ResultTable, table_from_json

FORMAT = "insightql-result/1"


def result_meta(plan: dict, released_on: str | None = None) -> dict:
    """What the plan says about its result: the same for every receiver of a run. `released_on`
    is the UTC date the result was written (default: today)."""
    q = plan.get("query", {})
    return {
        "plan_hash": plan["hash"],
        "query": {k: q.get(k, "") for k in ("name", "purpose", "description", "source_name", "source")},
        "receivers": list(plan.get("receivers", [])),
        "computing_parties": list(plan.get("parties", [])),
        "output_parties": list(plan.get("output_parties", [])),
        "policy": {k: plan.get("policy", {}).get(k) for k in ("min_group_size", "round_counts_to", "dominance",
                                                              "distinct_persons")},
        "rules": applied_rules(plan),
        "leakage": [{k: item[k] for k in ("item", "column", "to", "detail", "rules") if k in item}
                    for item in plan.get("leakage", [])],
        "released_on": released_on or dt.datetime.now(dt.timezone.utc).date().isoformat(),
    }


def applied_rules(plan: dict) -> list[dict]:
    """Every release rule the plan's circuit tests, once, with its tests in words (the nodes'
    constants), in the order of compiler/check/rules.py."""
    found: dict[str, list[str]] = {}
    for n in plan.get("nodes", []):
        rid = n.get("attrs", {}).get("rule")
        if rid in RULES:
            text = condition({"op": n["op"], "attrs": n["attrs"]}).split("] ", 1)[-1]
            found.setdefault(rid, [])
            if text not in found[rid]:
                found[rid].append(text)
    for item in plan.get("leakage", []):  # rules without a test node of their own (having.released)
        for rid in item.get("rules", []):
            if rid in RULES and rid not in found:
                try:
                    found[rid] = [RULES[rid].condition({})]
                except (KeyError, TypeError):
                    found[rid] = [RULES[rid].title]
    return [{"id": r.id, "title": r.title, "section": r.section, "scope": "cell" if r.cell else "value",
             "tests": found[r.id]} for r in RULES.values() if r.id in found]


def to_document(table: ResultTable, meta: dict | None) -> dict:
    body = json.loads(table.to_json())
    return {"format": FORMAT, **body, "meta": meta or {}}


def document_json(table: ResultTable, meta: dict | None) -> str:
    return json.dumps(to_document(table, meta), indent=2, ensure_ascii=False) + "\n"


def from_document(text: str) -> tuple[ResultTable, dict]:
    """(the table, its meta) of a JSON result; a result written before meta existed has {}."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or "columns" not in doc or "rows" not in doc:
        raise ValueError("not an InsightQL result (a JSON object with columns and rows)")
    return table_from_json(text), doc.get("meta", {})


# -- files ---------------------------------------------------------------------------------------
FORMATS = ("csv", "json", "parquet", "html")
EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".html": "html",
              ".htm": "html"}


def format_of(out: str | None, fmt: str | None) -> str:
    """The format asked for: --format, else the extension of --out (CSV when it has none we know)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown result format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    return EXTENSIONS.get(Path(out).suffix.lower(), "csv") if out else "csv"


def render_result(table: ResultTable, meta: dict | None, fmt: str) -> str | bytes:
    """The file's content: text for csv, json and html, bytes for parquet."""
    if fmt == "csv":
        from insightql.runtime.results.tabular import write_csv
        return write_csv(table)
    if fmt == "json":
        return document_json(table, meta)
    if fmt == "parquet":
        from insightql.runtime.results.tabular import parquet_bytes
        doc = to_document(table, meta)
        doc.pop("rows")
        return parquet_bytes(table, doc)
    if fmt == "html":
        from insightql.runtime.results.html import result_html
        return result_html(table, meta or {})
    raise ValueError(f"unknown result format {fmt!r}: one of {', '.join(FORMATS)}")


def write_result(table: ResultTable, plan: dict | None, out: str, fmt: str | None = None,
                 meta: dict | None = None) -> str:
    """Write the result to `out` in `fmt` (or by its extension); returns the format written."""
    fmt = format_of(out, fmt)
    content = render_result(table, meta if meta is not None else result_meta(plan) if plan else {}, fmt)
    if isinstance(content, bytes):
        Path(out).write_bytes(content)
    else:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
    return fmt


def read_result(path: str | Path, schema: list[dict] | None = None) -> tuple[ResultTable, dict]:
    """(table, meta) of a JSON, Parquet or CSV result (CSV has no meta: {}; `schema` types it)."""
    p = Path(path)
    fmt = EXTENSIONS.get(p.suffix.lower())
    if fmt == "json":
        return from_document(p.read_text(encoding="utf-8"))
    if fmt == "parquet":
        from insightql.runtime.results.tabular import read_parquet
        table, doc = read_parquet(p.read_bytes())
        return table, doc.get("meta", {})
    if fmt == "csv":
        from insightql.runtime.results.tabular import read_csv
        with open(p, encoding="utf-8", newline="") as fh:  # a quoted field may hold a carriage return
            return read_csv(fh.read(), schema), {}
    raise ValueError(f"{p}: a result is read from .json, .parquet or .csv")
