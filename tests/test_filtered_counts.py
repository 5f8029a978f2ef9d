"""Issue 17 item 1: counts and shares of a subgroup (COUNT(*) FILTER (WHERE p), SUM(CASE WHEN p
THEN 1 ELSE 0 END), AVG(boolean)): syntax, the compile-time rules, and filter.rows on every
observer's complement (spec/disclosure.md 2.13). The rules' own cases are in test_release_rules.py."""
from __future__ import annotations

from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.syntax.formatter import format_query
from insightql.compiler.syntax.parser import parse

from test_release_rules import CAT, HEAD, north, rows, run, rules_of

BY_REGION = HEAD + "SELECT exp_Region, COUNT(*) AS n, {outs} FROM {src} GROUP BY exp_Region;"


def _codes(text: str) -> list[str]:
    return [d.code for d in compile_source(text, "q.iq", CAT).diagnostics]


def test_filter_parses_and_formats_back():
    q = parse("SELECT count(*) filter (where prs_Age >= 18 AND NOT minor_at_recruitment) AS n FROM t;")
    assert q.select[0].expr.filter is not None
    text = format_query(q)
    assert "COUNT(*) FILTER (WHERE prs_Age >= 18 AND NOT minor_at_recruitment) AS n" in text
    assert parse(text) == q


def test_filter_is_no_longer_read_as_an_alias():
    assert _codes(BY_REGION.format(outs="COUNT(*) FILTER (WHERE prs_Age >= 18) AS adults",
                                   src="police_victims")) == []


def test_the_three_forms_compile_and_others_stay_refused():
    for outs in ("COUNT(*) FILTER (WHERE prs_Age >= 18) AS a", "SUM(CASE WHEN prs_Age >= 18 THEN 1 ELSE 0 END) AS a",
                 "AVG(minor_at_recruitment) AS a", "AVG(prs_Age >= 18) AS a"):
        assert _codes(BY_REGION.format(outs=outs, src="police_victims")) == [], outs
    for outs in ("SUM(prs_Age) FILTER (WHERE prs_Age >= 18) AS a",  # FILTER on another aggregate
                 "SUM(CASE WHEN prs_Age >= 18 THEN 2 ELSE 0 END) AS a",  # not an indicator
                 "SUM(CASE WHEN prs_Age >= 18 THEN 1 END) AS a"):
        assert "IQ313" in _codes(BY_REGION.format(outs=outs, src="police_victims")), outs


def test_the_condition_obeys_the_rules_of_where():
    assert "IQ303" in _codes(BY_REGION.format(outs="COUNT(*) FILTER (WHERE interview_notes_len > 0) AS a",
                                              src="police_victims"))
    assert "IQ303" in _codes(BY_REGION.format(outs="AVG(interview_notes_len > 0) AS a", src="police_victims"))
    assert "IQ220" in _codes(BY_REGION.format(outs="COUNT(*) FILTER (WHERE COUNT(*) > 3) AS a",
                                              src="police_victims"))


def test_having_on_a_subgroup_count_is_refused():  # it may be withheld in a released cell
    text = BY_REGION.format(outs="COUNT(*) FILTER (WHERE prs_Age >= 50) AS old", src="police_victims")
    assert "IQ319" in _codes(text.replace(";", " HAVING old >= 20;"))


def test_a_share_under_rounding_is_refused():  # helpline_reports rounds counts
    text = HEAD + ("SELECT exp_Type, COUNT(*) AS n, AVG(caller_is_victim) AS s FROM helpline_reports "
                   "GROUP BY exp_Type;")
    assert "IQ321" in _codes(text)
    ok = text.replace("AVG(caller_is_victim) AS s", "COUNT(*) FILTER (WHERE caller_is_victim) AS s")
    assert _codes(ok) == []


def test_subgroup_on_an_observers_complement():
    """police and ngo both receive: police knows its 20 old rows, so the NGO's part of the subgroup
    must hold k rows (and the NGO's other rows too), else the count is withheld."""
    q = BY_REGION.format(outs="COUNT(*) FILTER (WHERE prs_Age >= 50) AS old",
                         src="police_victims UNION ALL ngo_clients")
    police = rows("police_victims", 20, prs_Age=60) + rows("police_victims", 20, first=300, prs_Age=30)
    attack = {"police_victims": police, "ngo_clients": rows("ngo_clients", 30, first=500, prs_Age=[60] * 5 + [30] * 25)}
    control = {"police_victims": police,
               "ngo_clients": rows("ngo_clients", 30, first=500, prs_Age=[60] * 10 + [30] * 20)}
    attacked, plan = run(q, attack)
    released, _ = run(q, control)
    assert isinstance(north(attacked, "old"), Suppressed) and not isinstance(north(attacked, "n"), Suppressed)
    assert north(released, "old") == 30
    assert {"filter.rows", "filter.persons"} <= rules_of(plan, "old")
    rest = {"police_victims": police,  # the NGO's rows under 50 are only 5: the complement's rest
            "ngo_clients": rows("ngo_clients", 30, first=500, prs_Age=[60] * 25 + [30] * 5)}
    assert isinstance(north(run(q, rest)[0], "old"), Suppressed)


def test_two_subgroups_are_a_pair_of_counts():
    q = BY_REGION.format(outs="COUNT(*) FILTER (WHERE prs_Age >= 50) AS a, COUNT(*) FILTER (WHERE prs_Age >= 51) AS b",
                         src="police_victims")
    close = {"police_victims": rows("police_victims", 40, prs_Age=[50] * 3 + [60] * 17 + [30] * 20)}
    table, plan = run(q, close)  # a - b = 3: the persons aged exactly 50
    assert isinstance(north(table, "a"), Suppressed) and isinstance(north(table, "b"), Suppressed)
    assert "counts.pair" in rules_of(plan, "a")


def test_released_values_equal_the_pooled_answer():
    q = BY_REGION.format(outs="COUNT(*) FILTER (WHERE prs_Age >= 50) AS old, "
                              "SUM(CASE WHEN prs_Age >= 50 THEN 1 ELSE 0 END) AS old2, "
                              "AVG(prs_Age >= 50) AS share", src="police_victims")
    data = {"police_victims": rows("police_victims", 40, prs_Age=[60] * 14 + [30] * 26)}
    table, _ = run(q, data)
    assert (north(table, "n"), north(table, "old"), north(table, "old2")) == (40, 14, 14)
    assert abs(north(table, "share") - 14 / 40) < 1e-6
