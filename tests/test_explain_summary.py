"""The auditor's page opens with a plain-language summary (issue 20 item 4): who receives what, what
every party learns (a party that learns more than the result is a warning, never a check mark), the
rules per output, the caps on values and the estimated time, above the circuit."""
from __future__ import annotations

import re
from pathlib import Path

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
