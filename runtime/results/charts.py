"""Bar charts of one measure of a result, as inline SVG drawn here (no script, no library).

One horizontal bar per row of the table, from zero. A suppressed value gets no bar: its row reads
"suppressed" in the bar area, so it can never be taken for a zero; a NULL value reads "no value".
Every text is escaped; the chart has a <title> and a <desc> (role="img") and every bar a <title>.
"""
from __future__ import annotations

from html import escape

from insightql.compiler.plaintext.results import Rounded, Suppressed

BAR = "#1f5f8b"  # 7.0:1 against white
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
