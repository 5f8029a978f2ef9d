"""A result as one self-contained HTML page (`iq run --format html`, `iq report RESULT.json`).

For a policy officer's briefing: a summary first (query, date, plan hash, receivers, rows released
and suppressed), then the table, one bar chart per measure (inline SVG, below), the rules
applied, what the plan reveals to whom (its leakage report) and the query text. No script, no
font, no image from elsewhere: the page loads nothing (its Content-Security-Policy forbids it),
every text from the query or the data is escaped, and it prints on A4.

The bar charts are inline SVG drawn here: one horizontal bar per row, from zero. A suppressed
value gets no bar: its row reads "suppressed" in the bar area, so it can never be taken for a
zero; a NULL value reads "no value". Each chart has a <title> and a <desc> (role="img"), each bar
a <title>.
"""
from __future__ import annotations

from html import escape

from insightql.compiler.plaintext.results import ResultTable, Rounded, Suppressed

BAR = "#1f5f8b"  # 6.8:1 against white
NEG = "#8b3a1f"
INK = "#1a1a1a"
MUTED = "#595959"  # 7.0:1 against white
ROW_H, LABEL_W, PLOT_W, VALUE_W, PAD = 22, 220, 380, 90, 6


def fmt(v) -> str:
    if isinstance(v, Rounded):
        return f"{v:,.{v.digits}f}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4f}".rstrip("0").rstrip(".")
    return str(v)


def _clip(text: str, n: int = 32) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def bar_chart(measure: str, labels: list[str], values: list, chart_id: str) -> str:
    """An SVG bar chart of `values` (numbers, None or Suppressed), one per label."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, (bool, Suppressed))]
    lo, hi = min([0.0, *nums]), max([0.0, *nums])
    span = (hi - lo) or 1.0
    x0 = LABEL_W + PLOT_W * (0 - lo) / span
    height = PAD * 2 + ROW_H * max(len(labels), 1)
    width = LABEL_W + PLOT_W + VALUE_W
    released = len(nums)
    suppressed = sum(1 for v in values if isinstance(v, Suppressed))
    title = f"{measure} per row of the result"
    desc = (f"Horizontal bar chart of {measure}: {released} released value(s) drawn as bars from zero; "
            f"{suppressed} suppressed value(s) marked 'suppressed' with no bar. The values are in the table.")
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-labelledby="{chart_id}-t {chart_id}-d">',
           f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
           f'<line x1="{x0:.1f}" y1="{PAD}" x2="{x0:.1f}" y2="{height - PAD}" stroke="{INK}" stroke-width="1"/>']
    for k, (label, v) in enumerate(zip(labels, values)):
        y = PAD + k * ROW_H
        mid = y + ROW_H / 2 + 4
        out.append(f'<g class="row" data-row="{k}">')
        out.append(f'<text x="{LABEL_W - 8}" y="{mid:.1f}" text-anchor="end" fill="{INK}">'
                   f'<title>{escape(label)}</title>{escape(_clip(label))}</text>')
        if isinstance(v, Suppressed):
            rules = ", ".join(v.rules) or "the plan's release rules"
            out.append(f'<text class="suppressed" x="{x0 + 6:.1f}" y="{mid:.1f}" fill="{MUTED}" font-style="italic">'
                       f'<title>{escape(label)}: suppressed ({escape(rules)}); no value is shown</title>'
                       f'suppressed</text>')
        elif not isinstance(v, (int, float)) or isinstance(v, bool):
            out.append(f'<text class="null" x="{x0 + 6:.1f}" y="{mid:.1f}" fill="{MUTED}">no value</text>')
        else:
            w = PLOT_W * abs(v) / span
            x = x0 if v >= 0 else x0 - w
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{ROW_H - 6}" '
                       f'fill="{BAR if v >= 0 else NEG}"><title>{escape(label)}: {escape(fmt(v))}</title></rect>')
            tx = (x0 + w + 4) if v >= 0 else (LABEL_W + PLOT_W + 4)
            out.append(f'<text class="value" x="{tx:.1f}" y="{mid:.1f}" fill="{INK}">{escape(fmt(v))}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# -- the page ----------------------------------------------------------------------------------------

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = f"""
:root {{ color: {INK}; background: #fff; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
body {{ margin: 0 auto; max-width: 1100px; padding: 16px 24px; }}
h1 {{ font-size: 1.5rem; margin: 0 0 4px; }} h2 {{ font-size: 1.15rem; margin: 22px 0 8px; }}
#summary {{ border: 1px solid #c8c8c8; border-left: 6px solid {BAR}; padding: 8px 14px; background: #f6f8fa; }}
#summary dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }}
#summary dt {{ font-weight: 600; }} #summary dd {{ margin: 0; overflow-wrap: anywhere; }}
code, pre {{ font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9em; }}
table {{ border-collapse: collapse; margin: 4px 0; }}
caption {{ text-align: left; color: {MUTED}; padding-bottom: 4px; }}
th, td {{ border: 1px solid #c8c8c8; padding: 3px 8px; vertical-align: top; }}
thead th {{ background: #e9eef2; text-align: left; }} tbody th {{ text-align: left; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.suppressed {{ color: {MUTED}; font-style: italic; background: repeating-linear-gradient(135deg, #fff 0 6px, #efefef 6px 8px); }}
td.suppressed small {{ display: block; font-style: normal; font-size: 0.75em; }}
figure {{ margin: 12px 0; break-inside: avoid; }} figcaption {{ font-weight: 600; }}
svg.chart {{ max-width: 100%; height: auto; font-size: 12px; }}
.notes li, .rules li {{ margin-bottom: 3px; }}
pre {{ background: #f6f8fa; border: 1px solid #c8c8c8; padding: 8px; white-space: pre-wrap; }}
@page {{ size: A4; margin: 14mm; }}
@media print {{ :root {{ font-size: 10.5pt; }} body {{ max-width: none; padding: 0; }}
  #summary {{ background: none; }} thead {{ display: table-header-group; }} tr, figure {{ break-inside: avoid; }}
  h2 {{ break-after: avoid; }} }}
"""


def _e(x) -> str:
    return escape(str(x), quote=True)


def _labels(table: ResultTable, keys: list[int]) -> list[str]:
    if not keys:
        return ["all rows"] * len(table.rows)
    return [" \u00b7 ".join("NULL" if r[i] is None else fmt(r[i]) for i in keys) for r in table.rows]


def _cell(v, header: str) -> str:
    if isinstance(v, Suppressed):
        why = ", ".join(v.rules) or "the plan's release rules"
        scope = "whole cell" if v.scope == "cell" else "value withheld"
        return (f'<td class="suppressed" headers="{header}" title="suppressed by a rule among: {_e(why)}" '
                f'aria-label="suppressed ({_e(scope)}; rules {_e(why)})">suppressed<small>{_e(scope)}</small></td>')
    if v is None:
        return f'<td headers="{header}">NULL</td>'
    num = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f'<td{num} headers="{header}">{_e(fmt(v))}</td>'


def _table(table: ResultTable, keys: list[int]) -> str:
    ids = [f"col-{i}" for i in range(len(table.columns))]
    head = "".join(f'<th scope="col" id="{ids[i]}">{_e(c)}</th>' for i, c in enumerate(table.columns))
    body = []
    for r in table.rows:
        cells = []
        for i, v in enumerate(r):
            if i in keys:
                cells.append(f'<th scope="row" headers="{ids[i]}">{_e("NULL" if v is None else fmt(v))}</th>')
            else:
                cells.append(_cell(v, ids[i]))
        body.append("<tr>" + "".join(cells) + "</tr>")
    sup = sum(1 for r in table.rows if any(isinstance(v, Suppressed) for v in r))
    caption = (f"{len(table.rows)} row(s); {sup} with suppressed values, shown as 'suppressed' "
               "(never as zero or blank)")
    return (f'<table id="result"><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _summary(table: ResultTable, meta: dict, measures: list[int]) -> str:
    q = meta.get("query", {})
    cell_sup = sum(1 for r in table.rows if any(isinstance(v, Suppressed) and v.scope == "cell" for v in r))
    val_sup = sum(1 for r in table.rows if any(isinstance(v, Suppressed) for v in r)) - cell_sup
    policy = meta.get("policy") or {}
    k, who = policy.get("min_group_size"), "rows and persons" if policy.get("distinct_persons") else "rows"
    rules = ", ".join(r["id"] for r in meta.get("rules", [])) or "not recorded"
    items = [("Query", q.get("name") or q.get("source_name") or "unnamed"),
             ("Purpose", q.get("purpose") or "not stated"),
             ("Released on", meta.get("released_on", "not recorded")),
             ("Rows", f"{len(table.rows)}: {len(table.rows) - cell_sup - val_sup} fully released, {cell_sup} "
                      f"suppressed, {val_sup} with single values withheld"),
             ("Receivers", ", ".join(meta.get("receivers", [])) or "not recorded"),
             ("Computed by", ", ".join(meta.get("computing_parties", [])) or "not recorded"),
             ("Threshold", f"k = {k} {who} per released cell" if k else "not recorded"),
             ("Rules applied", rules),
             ("Plan hash", meta.get("plan_hash", "not recorded"))]
    dl = "".join(f"<dt>{_e(a)}</dt><dd>{'<code>' + _e(b) + '</code>' if a == 'Plan hash' else _e(b)}</dd>"
                 for a, b in items)
    return (f'<section id="summary" aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2><dl>{dl}</dl>'
            "<p>Only aggregates the data owners' rules release are shown; a suppressed cell's value never "
            "left the secure computation.</p></section>")


def _rules(meta: dict) -> str:
    rules = meta.get("rules", [])
    if not rules:
        return ""
    items = "".join(f'<li><code>{_e(r["id"])}</code> ({_e(r["title"])}; applies to the '
                    f'{"whole cell" if r["scope"] == "cell" else "single value"}, spec/disclosure.md '
                    f'section {_e(r["section"])}): {_e("; ".join(r["tests"]))}</li>' for r in rules)
    return f'<section id="rules"><h2>Rules applied</h2><ul class="rules">{items}</ul></section>'


def _leakage(meta: dict) -> str:
    items = meta.get("leakage", [])
    if not items:
        return ""
    rows = "".join(f'<tr><th scope="row">{_e(i["item"])}{(" (" + _e(i["column"]) + ")") if i.get("column") else ""}'
                   f'</th><td>{_e(", ".join(i.get("to", [])) or "nobody")}</td><td>{_e(i.get("detail", ""))}</td></tr>'
                   for i in items)
    return ('<section id="leakage"><h2>What the plan reveals, and to whom</h2><table><caption>The plan\'s leakage '
            'report: everything the run opens beyond the secret shares</caption><thead><tr><th scope="col">item'
            f'</th><th scope="col">to</th><th scope="col">what</th></tr></thead><tbody>{rows}</tbody></table></section>')


def result_html(table: ResultTable, meta: dict) -> str:
    """The page for a result table and its meta (runtime/results/document.py `result_meta`)."""
    measures = table.measures()
    keys = [i for i in range(len(table.columns)) if i not in measures]
    labels = _labels(table, keys)
    q = meta.get("query", {})
    name = q.get("name") or q.get("source_name") or "InsightQL result"
    charts = "".join(f'<figure><figcaption>{_e(table.columns[i])}</figcaption>'
                     f'{bar_chart(table.columns[i], labels, [r[i] for r in table.rows], f"chart-{i}")}</figure>'
                     for i in measures)
    notes = "".join(f"<li>{_e(n)}</li>" for n in table.notes)
    source = q.get("source")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(name)}: InsightQL result</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{_e(name)}</h1>" + (f"<p>{_e(q['description'])}</p>" if q.get("description") else ""),
        _summary(table, meta, measures),
        f'<section id="table-section"><h2>Result</h2>{_table(table, keys)}'
        + (f'<ul class="notes">{notes}</ul>' if notes else "") + "</section>",
        f'<section id="charts"><h2>Charts</h2>{charts}</section>' if charts else "",
        _rules(meta), _leakage(meta),
        f'<section id="query"><h2>Query</h2><pre><code>{_e(source)}</code></pre></section>' if source else "",
        "</main></body></html>", ""])
