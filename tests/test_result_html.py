"""The result page (issue 17 item 8, spec/results.md): `iq run --format html` and `iq report`
write one self-contained page with the summary first, the table, a bar chart per measure in which
a suppressed value is marked and has no bar, the rules applied, the leakage report and the query.
Rendered by headless Chromium (skipped without /usr/bin/chromium, which .ci/run installs): the
marks and bars in the DOM, the summary above the fold at 1280x800, an A4 PDF; and a category
value holding a <script> is shown as text, never run, even with the page's CSP taken out."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.results import ResultTable, Suppressed
from insightql.runtime.cli import main
from insightql.runtime.results import render_result
from insightql.runtime.results.document import result_meta

from conftest import compile_plan, oracle_result

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "examples" / "catalog.toml"
QUERY = ROOT / "examples" / "victims_by_exploitation.iq"
DATA = {d: str(ROOT / "examples" / "data" / f"{d}.csv") for d in ("police_victims", "ngo_clients")}
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)")
EVIL = ("<script>document.body.setAttribute('data-pwned','1')</script>"
        "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">")


@pytest.fixture(scope="module")
def result():
    cat = load_catalog(CATALOG)
    plan = compile_plan(QUERY.read_text(encoding="utf-8"), cat, QUERY.name)
    table = oracle_result(plan, cat, DATA)
    assert any(isinstance(v, Suppressed) for r in table.rows for v in r)  # the page must show both kinds
    return plan, table


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_page_is_self_contained_and_has_every_part(result):
    plan, table = result
    page = render_result(table, result_meta(plan), "html")
    assert not re.search(r"<script|<link|@import|url\(|https?://", page)  # loads nothing, runs nothing
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    order = [page.index(s) for s in ('id="summary"', 'id="result"', 'id="charts"', 'id="rules"', 'id="leakage"',
                                     'id="query"')]
    assert order == sorted(order)
    summary = page[page.index('id="summary"'):page.index("</section>")]
    assert plan["hash"] in summary and "police, ngo, helpline" in summary and "cell.rows" in summary
    assert "@page { size: A4" in page and "<caption>" in page and 'scope="col"' in page
    measures = [o["name"] for o in table.schema if o["kind"] == "value"]
    assert page.count("<figure>") == len(measures) and page.count('role="img"') == len(measures)
    assert "GROUP BY exp_Type" in page  # the query text


@needs_chromium
def test_chromium_marks_suppressed_cells_and_draws_no_bar_for_them(result, tmp_path):
    plan, table = result
    page = tmp_path / "result.html"
    page.write_text(render_result(table, result_meta(plan), "html"), encoding="utf-8")
    dom = chromium(tmp_path, page, "--dump-dom").stdout
    measures = [i for i, s in enumerate(table.schema) if s["kind"] == "value"]
    cells = re.findall(r"<td[^>]*>", dom[dom.index('id="result"'):dom.index('id="charts"')])
    assert sum('class="suppressed"' in c for c in cells) == sum(isinstance(r[i], Suppressed) for r in table.rows
                                                                 for i in measures)
    charts = re.findall(r"<svg.*?</svg>", dom, re.S)
    assert len(charts) == len(measures)
    for i, svg in zip(measures, charts):
        rows = re.findall(r'<g class="row" data-row="(\d+)">(.*?)</g>', svg, re.S)
        assert len(rows) == len(table.rows)
        for k, body in rows:
            v = table.rows[int(k)][i]
            if isinstance(v, Suppressed):
                assert "<rect" not in body and 'class="suppressed"' in body and ">suppressed<" in body
            else:
                assert body.count('<rect class="bar"') == 1
    shot = tmp_path / "page.png"
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,800")
    assert shot.stat().st_size > 10_000  # a page was painted, not a blank


@needs_chromium
def test_summary_is_above_the_fold_at_1280x800(result, tmp_path):
    plan, table = result
    html = render_result(table, result_meta(plan), "html")
    probe = ("<script>addEventListener('load', () => document.body.setAttribute('data-bottom', "
             "Math.ceil(document.getElementById('summary').getBoundingClientRect().bottom)))</script>")
    page = tmp_path / "probe.html"  # the test's copy only: the CSP goes, a measuring script comes in
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
                    .replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, page, "--dump-dom", "--window-size=1280,800").stdout
    bottom = int(re.search(r'data-bottom="(\d+)"', dom).group(1))
    assert 100 < bottom <= 800


@needs_chromium
def test_prints_on_a4(result, tmp_path):
    plan, table = result
    page = tmp_path / "result.html"
    page.write_text(render_result(table, result_meta(plan), "html"), encoding="utf-8")
    pdf = tmp_path / "result.pdf"
    chromium(tmp_path, page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    boxes = set(re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes()))
    assert boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes), boxes


def _evil_table() -> tuple[ResultTable, dict]:
    schema = [{"name": "region", "kind": "key", "type": {"kind": "category"}},
              {"name": "n", "kind": "value", "type": {"kind": "int"}, "rules": []}]
    table = ResultTable(["region", "n"], [[EVIL, 12], ["North", Suppressed("x", "cell", ("cell.rows",))]],
                        [f"note {EVIL}"], schema)
    meta = {"plan_hash": "sha256:00", "receivers": [EVIL], "query": {"name": EVIL, "source": EVIL},
            "rules": [{"id": "cell.rows", "title": EVIL, "section": "2.1", "scope": "cell", "tests": [EVIL]}],
            "leakage": [{"item": "output", "column": EVIL, "to": [EVIL], "detail": EVIL}]}
    return table, meta


def test_every_text_is_escaped():
    page = render_result(*_evil_table(), "html")
    assert "<script" not in page and "<img" not in page and "onerror=\"" not in page
    assert page.count("&lt;script&gt;") >= 8  # table, chart label, note, name, source, receivers, rule, leakage


@needs_chromium
def test_a_script_in_a_category_does_not_run_even_without_the_csp(tmp_path):
    html = render_result(*_evil_table(), "html")
    page = tmp_path / "evil.html"
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html), encoding="utf-8")
    dom = chromium(tmp_path, page, "--dump-dom").stdout
    assert 'data-pwned="' not in dom and "<img" not in dom
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in dom


def test_iq_run_format_html_and_iq_report(result, tmp_path, monkeypatch, capsys):
    """The CLI's output options, with the launcher replaced by the oracle's table (the parties' own
    files are checked in test_result_receivers.py)."""
    plan, table = result
    import insightql.runtime.launch.launcher as launcher
    monkeypatch.setattr(launcher, "launch_local", lambda *a, **k: (table, {}))
    args = ["run", str(QUERY), "--catalog", str(CATALOG), "--quiet", "--timeout", "60",
            "--data", f"police={DATA['police_victims']}", "--data", f"ngo={DATA['ngo_clients']}"]
    assert main([*args, "--format", "html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and plan["hash"] in out and "[suppressed]" not in out
    saved = tmp_path / "r.json"
    assert main([*args, "--out", str(saved)]) == 0
    assert "[suppressed]" in capsys.readouterr().out  # the terminal table is unchanged
    doc = json.loads(saved.read_text(encoding="utf-8"))
    assert doc["meta"]["plan_hash"] == plan["hash"] and doc["columns"] == table.columns
    assert main(["report", str(saved), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == render_result(table, doc["meta"], "html")
    assert main([*args, "--format", "parquet"]) == 2  # a binary format needs --out, checked before the run
    assert "--out" in capsys.readouterr().err
