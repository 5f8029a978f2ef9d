"""The auditor's page opens with a plain-language summary (issue 20 item 4): who receives what, what
every party learns (a party that learns more than the result is a warning, never a check mark), the
rules per output, the caps on values and the estimated time, above the circuit."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.review.explain_html import explain_html
from insightql.compiler.review.timing import catalog_rows

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(ROOT / "examples" / "catalog.toml")


def page_of(name: str) -> tuple[dict, str]:
    res = compile_source((ROOT / "examples" / name).read_text(), name, CAT)
    assert res.plan is not None
    return res.plan, explain_html(res.plan, catalog_rows(res.plan, CAT))


def summary(page: str) -> str:
    return page[page.index('<section id="summary">'):page.index("</section>")]


def test_summary_comes_first_and_names_every_party():
    plan, page = page_of("victims_by_exploitation.iq")
    assert page.index('<section id="summary">') < page.index("<h2>Query</h2>") < page.index("<h2>Circuit</h2>")
    s = summary(page)
    for party in plan["parties"] + plan.get("output_parties", []):
        assert f"<b>{party}</b>" in s
    assert "helper</b> (computes, receives nothing) learns nothing: it sees only shares" in s
    assert "helpline</b> (receives without computing) learns the result only" in s
    assert "estimated time: at most ~" in s and "values within [0, 99]" in s


def test_a_leak_the_plan_admits_is_a_warning_never_a_check_mark():
    plan, page = page_of("overlap.iq")
    s = summary(page)
    warned = re.findall(r'<li class="warn">&#9888; <b>(\w+)</b>', s)
    assert sorted(warned) == sorted(plan["parties"])  # every computing party learns the vectors' lengths
    assert "input_sizes" in s and "&#10003;" not in s


def test_values_as_the_query_wrote_them_and_json_for_tools():
    """Dates as dates, ORDER BY by name, no Python reprs; `--format json` parses and names every node."""
    import json

    from insightql.compiler.review.explain import explain_json, explain_text

    res = compile_source((ROOT / "examples" / "victims_by_exploitation.iq").read_text(), "v.iq", CAT)
    text = explain_text(res.plan)
    assert "identified_on >= DATE '2022-01-01'" in text and "18993" not in text
    assert "ORDER BY identifications DESC" in text and "True" not in text and "None" not in text
    doc = json.loads(explain_json(res.plan, catalog_rows(res.plan, CAT)))
    assert [n["id"] for n in doc["nodes"]] == [n["id"] for n in res.plan["nodes"]]
    assert doc["computing_parties"] == res.plan["parties"] and doc["time"]["total"] > 0
    page = explain_html(res.plan)
    assert '<dl id="glossary">' in page and "secret sharing" in page


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)")
def test_summary_is_above_the_fold_at_1280x800(tmp_path):
    """Rendered by headless Chromium at 1280x800: the summary ends within the first screen, so an
    auditor reads who learns what before scrolling to the circuit."""
    _, html = page_of("victims_by_exploitation.iq")
    probe = ("<script>addEventListener('load', () => document.body.setAttribute('data-bottom', "
             "Math.ceil(document.getElementById('summary').getBoundingClientRect().bottom)))</script>")
    page = tmp_path / "probe.html"  # the test's copy: any CSP goes, a measuring script comes in
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
                    .replace("</body>", probe + "</body>"), encoding="utf-8")
    r = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                        "--dump-dom", "--window-size=1280,800", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    bottom = int(re.search(r'data-bottom="(\d+)"', r.stdout).group(1))
    assert 100 < bottom <= 800, f"the summary ends at {bottom} px"
