"""Issue 17 item 3: HAVING on an output alias, ORDER BY a GROUP BY column in its public domain's
order, and round(x, d) shown with its d digits."""
from __future__ import annotations

from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import ResultTable, rounded

from conftest import compile_plan, oracle_result

HEAD = "@purpose research\nSELECT exp_Region, COUNT(*) AS n, COUNT(hours_worked_week) AS with_hours\n" \
       "FROM police_victims\nGROUP BY exp_Region\n"


def _circuit(plan: dict) -> list:
    return [(n["op"], n["inputs"], n["attrs"]) for n in plan["nodes"]]


def test_having_alias_is_the_aliased_aggregate(corpus_catalog):
    by_alias = compile_plan(HEAD + "HAVING n >= 20;", corpus_catalog)
    repeated = compile_plan(HEAD + "HAVING COUNT(*) >= 20;", corpus_catalog)
    assert _circuit(by_alias) == _circuit(repeated)


def _codes(text: str, catalog) -> list[str]:
    return [d.code for d in compile_source(text, "q.iq", catalog).diagnostics]


def test_having_alias_keeps_the_disclosure_rules(corpus_catalog):
    assert "IQ319" in _codes(HEAD + "HAVING with_hours >= 20;", corpus_catalog)  # may be withheld
    assert "IQ309" in _codes(HEAD + "HAVING n < 20;", corpus_catalog)  # an upper bound of a count


def test_having_alias_of_a_share_is_refused(corpus_catalog):
    text = ("@purpose research\nSELECT exp_Region, pct(COUNT(*)) AS share\nFROM police_victims\n"
            "GROUP BY exp_Region\nHAVING share > 5;")
    assert _codes(text, corpus_catalog) == ["IQ221"]


def test_a_column_named_like_an_alias_wins(corpus_catalog):
    text = ("@purpose research\nSELECT exp_Region, COUNT(*) AS prs_Age\nFROM police_victims\n"
            "GROUP BY exp_Region\nHAVING prs_Age >= 20;")
    assert "IQ223" in _codes(text, corpus_catalog)  # prs_Age is the column, not grouped


def test_order_by_a_category_follows_its_domain(corpus_catalog, corpus_data):
    domain = list(corpus_catalog.datasets["police_victims"].columns["exp_Region"].domain)
    for desc, want in (("", domain), (" DESC", domain[::-1])):
        plan = compile_plan("@purpose research\nSELECT exp_Region, COUNT(*) AS n\nFROM police_victims\n"
                            f"GROUP BY exp_Region\nORDER BY exp_Region{desc};", corpus_catalog)
        got = [r[0] for r in oracle_result(plan, corpus_catalog, corpus_data).rows]
        assert got == want and got != sorted(got, reverse=bool(desc))


def test_round_keeps_the_digits_asked_for(corpus_catalog, corpus_data):
    assert str(ResultTable(["x"], [[rounded(7.0, 1)]]).render().splitlines()[-1]).strip() == "7.0"
    assert ResultTable(["x"], [[rounded(7.25, 2)], [rounded(3.0, 0)]]).to_csv() == "x\n7.25\n3\n"
    plan = compile_plan("@purpose research\nSELECT exp_Region, round(AVG(prs_Age), 3) AS a\n"
                        "FROM police_victims\nGROUP BY exp_Region;", corpus_catalog)
    table = oracle_result(plan, corpus_catalog, corpus_data)
    shown = [line.split()[1] for line in table.render().splitlines()[2:6]]
    assert all(len(s.split(".")[1]) == 3 for s in shown if s != "[suppressed]")
