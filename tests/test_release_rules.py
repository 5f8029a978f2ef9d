"""One test per release rule (compiler/check/rules.py, spec/disclosure.md sections 2-3), on the oracle.

Each case is data where one rule, and only the rules named, decides: the value it guards is
suppressed (or withheld) while a control with one more row or person is released; the plan's
leakage report cites the rule's id for that flag. A last test checks that every rule of the
registry has a case here (or names the test file that owns it) and a section in the spec.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.guard import signature_of_plan
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.check.rules import RULES

from conftest import CATALOG, load_tables, oracle_result
from randdata import write_csv

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(CATALOG)
STRICT = load_catalog(ROOT / "tests" / "corpus" / "catalog_strict.toml")
HEAD = "@purpose research\n"


def rows(ds: str, n: int, catalog=CAT, first: int = 1, persons: int | None = None, **cols) -> list[dict]:
    """n rows of dataset `ds` in one cell (North, Feminine, ...); `persons` distinct person keys
    (default n), numbered from `first`; keyword arguments set columns (a list: one value per row)."""
    d = catalog.datasets[ds]
    base = {"person_id": None, "prs_Gender": "Feminine", "prs_Age": "30", "prs_Nationality": "NG",
            "exp_Type": "Other", "exp_Region": "North", "identified_on": "2023-05-01",
            "minor_at_recruitment": "false", "hours_worked_week": "40", "debt_eur": "100.00",
            "interview_notes_len": "0", "region": "North", "nationality": "NG", "stay_days": "10",
            "support_eur": "50.00", "payment_eur": "1.00", "case_notes_len": "0"}
    out = []
    for i in range(n):
        r = {c: base.get(c, "") for c in d.columns}
        r["person_id"] = str(first + i % (persons or n))
        for c, v in cols.items():
            r[c] = str(v[i] if isinstance(v, list) else v)
        out.append(r)
    return out


def run(text: str, data: dict[str, list[dict]], catalog=CAT, earlier=None) -> tuple[dict, dict]:
    res = compile_source(text, "q.iq", catalog, earlier=earlier)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {d: str(write_csv(Path(tmp) / f"{d}.csv", catalog.datasets[d], data.get(d, [])))
                 for d in res.plan["datasets"]}
        table = oracle_result(res.plan, catalog, paths)
    return table, res.plan


def north(table, column: str):
    row = table.rows[[r[0] for r in table.rows].index("North")] if table.columns[0] in ("exp_Region", "region") \
        else table.rows[0]
    return row[table.columns.index(column)]


def rules_of(plan: dict, column: str | None) -> set[str]:
    for item in plan["leakage"]:
        if (column is None and item["item"] == "suppression_flag") or \
                (item["item"] == "output_flag" and item.get("column") == column):
            return set(item.get("rules", []))
    raise AssertionError(column)


@dataclass
class Case:
    rule: str
    query: str
    column: str  # the output whose release the rule decides
    attack: dict  # dataset -> rows: the rule suppresses `column`
    control: dict  # the same with one more row/person: released
    catalog: object = CAT
    flag: str | None = "value"  # "cell": the rule is in the cell's flag; "value": in the column's


BY_REGION = HEAD + "SELECT exp_Region, {outs} FROM {src} GROUP BY exp_Region;"
UNION = "police_victims UNION ALL ngo_clients"
CASES = [
    Case("cell.rows", BY_REGION.format(outs="COUNT(*) AS n", src="police_victims"), "n",
         {"police_victims": rows("police_victims", 9)}, {"police_victims": rows("police_victims", 10)}, flag="cell"),
    Case("cell.persons", BY_REGION.format(outs="COUNT(*) AS n", src="police_victims"), "n",
         {"police_victims": rows("police_victims", 12, persons=9)},
         {"police_victims": rows("police_victims", 12, persons=10)}, flag="cell"),
    Case("observer.rows", BY_REGION.format(outs="COUNT(*) AS n", src=UNION), "n",  # police subtracts its 20
         {"police_victims": rows("police_victims", 20), "ngo_clients": rows("ngo_clients", 3, first=500)},
         {"police_victims": rows("police_victims", 20), "ngo_clients": rows("ngo_clients", 10, first=500)},
         flag="cell"),
    Case("values.rows", BY_REGION.format(outs="COUNT(*) AS n, AVG(hours_worked_week) AS h", src="police_victims"), "h",
         {"police_victims": rows("police_victims", 19, hours_worked_week=["40"] * 9 + [""] * 10)},
         {"police_victims": rows("police_victims", 20, hours_worked_week=["40"] * 10 + [""] * 10)}),
    Case("values.left_out", BY_REGION.format(outs="COUNT(*) AS n, AVG(hours_worked_week) AS h", src="police_victims"),
         "h", {"police_victims": rows("police_victims", 20, hours_worked_week=["40"] * 15 + [""] * 5)},
         {"police_victims": rows("police_victims", 25, hours_worked_week=["40"] * 15 + [""] * 10)}),
    Case("values.persons", BY_REGION.format(outs="COUNT(*) AS n, AVG(hours_worked_week) AS h", src="police_victims"),
         "h",  # ten rows with hours, all one person's: the mean is that person's value
         {"police_victims": rows("police_victims", 10, first=1, hours_worked_week="")
          + rows("police_victims", 10, first=99, persons=1, hours_worked_week="60")},
         {"police_victims": rows("police_victims", 10, first=1, hours_worked_week="")
          + rows("police_victims", 10, first=99, hours_worked_week="60")}),
    Case("counts.pair", BY_REGION.format(outs="COUNT(hours_worked_week) AS h, COUNT(debt_eur) AS d",
                                         src="police_victims"), "h",
         {"police_victims": rows("police_victims", 40, hours_worked_week=["40"] * 30 + [""] * 10,
                                 debt_eur=["1.00"] * 25 + [""] * 15)},
         {"police_victims": rows("police_victims", 40, hours_worked_week=["40"] * 30 + [""] * 10,
                                 debt_eur=["1.00"] * 20 + [""] * 20)}),
    Case("linkage.shared", HEAD + "SELECT exp_Region, COUNT(DISTINCT person_id) AS p FROM " + UNION
         + " GROUP BY exp_Region;", "p",  # police knows its 20 persons: 5 of them also at the NGO
         {"police_victims": rows("police_victims", 20), "ngo_clients": rows("ngo_clients", 20, first=16)},
         {"police_victims": rows("police_victims", 20), "ngo_clients": rows("ngo_clients", 20, first=11)}),
    Case("linkage.unshared", HEAD + "SELECT exp_Region, COUNT(DISTINCT person_id) AS p FROM " + UNION
         + " GROUP BY exp_Region;", "p",  # all of the NGO's 20 clients here are police persons too
         {"police_victims": rows("police_victims", 40), "ngo_clients": rows("ngo_clients", 20, first=1)},
         {"police_victims": rows("police_victims", 40), "ngo_clients": rows("ngo_clients", 20, first=31)}),
    Case("sum.dominance", HEAD + "SELECT region, COUNT(*) AS n, SUM(stay_days) AS days FROM shelter_stays "
         "GROUP BY region;", "days",  # one person's 5 stays of 30 days against 9 persons' 1 day
         {"shelter_stays": rows("shelter_stays", 14, STRICT, person_id=list(range(1, 10)) + [10] * 5,
                                stay_days=[1] * 9 + [30] * 5)},
         {"shelter_stays": rows("shelter_stays", 14, STRICT, stay_days=[1] * 9 + [30] * 5)},
         catalog=STRICT),
    Case("filter.rows", BY_REGION.format(outs="COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 50) AS old",
                                         src="police_victims"), "old",  # 9 of 30 rows are 50 or older
         {"police_victims": rows("police_victims", 30, prs_Age=[60] * 9 + [30] * 21)},
         {"police_victims": rows("police_victims", 30, prs_Age=[60] * 10 + [30] * 20)}),
    Case("filter.rows", BY_REGION.format(outs="COUNT(*) AS n, SUM(CASE WHEN prs_Age >= 50 THEN 1 ELSE 0 END) AS old",
                                         src="police_victims"), "old",  # the complement: 9 rows under 50
         {"police_victims": rows("police_victims", 30, prs_Age=[60] * 21 + [30] * 9)},
         {"police_victims": rows("police_victims", 30, prs_Age=[60] * 20 + [30] * 10)}),
    Case("filter.rows", BY_REGION.format(outs="COUNT(*) AS n, AVG(minor_at_recruitment) AS share",
                                         src="police_victims"), "share",  # 0% is "nobody here": withheld
         {"police_victims": rows("police_victims", 30, minor_at_recruitment="false")},
         {"police_victims": rows("police_victims", 30, minor_at_recruitment=["true"] * 10 + ["false"] * 20)}),
    Case("filter.persons", BY_REGION.format(outs="COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 50) AS old",
                                            src="police_victims"), "old",  # 10 old rows, one person's
         {"police_victims": rows("police_victims", 20, first=1, prs_Age=30)
          + rows("police_victims", 10, first=99, persons=1, prs_Age=60)},
         {"police_victims": rows("police_victims", 20, first=1, prs_Age=30)
          + rows("police_victims", 10, first=99, prs_Age=60)}),
    Case("filter.parts", BY_REGION.format(outs="COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age < 40) AS young, "
                                          "COUNT(*) FILTER (WHERE prs_Age >= 40 AND prs_Age < 77) AS mid",
                                          src="police_victims"), "mid",  # n - young - mid: 9 aged 77 or more
         {"police_victims": rows("police_victims", 39, prs_Age=[20] * 15 + [50] * 15 + [80] * 9)},
         {"police_victims": rows("police_victims", 40, prs_Age=[20] * 15 + [50] * 15 + [80] * 10)}),
    Case("ratio.denominator", BY_REGION.format(outs="COUNT(*) AS n, SUM(prs_Age) / SUM(hours_worked_week) AS r",
                                               src="police_victims"), "r",
         {"police_victims": rows("police_victims", 20, hours_worked_week=0)},
         {"police_victims": rows("police_victims", 20, hours_worked_week=1)}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_suppresses_and_its_control_releases(case):
    attacked, plan = run(case.query, case.attack, case.catalog)
    control, _ = run(case.query, case.control, case.catalog)
    assert isinstance(north(attacked, case.column), Suppressed), attacked.render()
    assert not isinstance(north(control, case.column), Suppressed), control.render()
    assert case.rule in rules_of(plan, None if case.flag == "cell" else case.column)


def test_source_once_counts_distinct_rows_of_the_unique_side(tmp_path):
    """Without a person key a JOIN's cell still needs k distinct join keys: one NGO client matched
    by ten police rows is one row of the unique side."""
    text = CATALOG.read_text().replace('person_key = "person_id"\n', "")
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    cat = load_catalog(path)
    q = HEAD + "SELECT COUNT(*) AS n FROM police_victims p JOIN ngo_clients c ON p.person_id = c.person_id;"
    one = {"police_victims": rows("police_victims", 30, cat, persons=1) + rows("police_victims", 30, cat, first=900),
           "ngo_clients": rows("ngo_clients", 1, cat) + rows("ngo_clients", 30, cat, first=2000)}
    many = {"police_victims": rows("police_victims", 30, cat) + rows("police_victims", 30, cat, first=900),
            "ngo_clients": rows("ngo_clients", 30, cat) + rows("ngo_clients", 30, cat, first=2000)}
    attacked, plan = run(q, one, cat)
    assert isinstance(attacked.rows[0][0], Suppressed)
    assert run(q, many, cat)[0].rows[0][0] == 30
    assert "source.once" in rules_of(plan, None)


def test_percentile_rank_is_neither_first_nor_last():
    """PERCENTILE(x, 5) of 20 values has rank 1: the cell's smallest value, a MIN the owners did not
    allow. It is withheld until 21 values put its rank at 2 (percentile.rank); the cell is released."""
    cat = load_catalog(ROOT / "tests" / "corpus" / "catalog_percentile.toml")
    q = BY_REGION.format(outs="COUNT(*) AS n, PERCENTILE(prs_Age, 5) AS p5", src="police_victims")
    ages = list(range(20, 41))
    attacked, plan = run(q, {"police_victims": rows("police_victims", 20, cat, prs_Age=ages[1:])}, cat)
    control, _ = run(q, {"police_victims": rows("police_victims", 21, cat, prs_Age=ages)}, cat)
    assert north(attacked, "n") == 20 and isinstance(north(attacked, "p5"), Suppressed)
    assert north(control, "p5") == 21  # rank ceil(5 * 21 / 100) = 2: the second smallest
    assert "percentile.rank" in rules_of(plan, "p5")


def test_distinct_keys_and_repeat_records():
    """COUNT(DISTINCT) beside COUNT(*): 20 records of 15 persons differ by 5 (counts.pair)."""
    q = BY_REGION.format(outs="COUNT(*) AS n, COUNT(DISTINCT person_id) AS p", src="police_victims")
    attacked, plan = run(q, {"police_victims": rows("police_victims", 20, persons=15)})
    control, _ = run(q, {"police_victims": rows("police_victims", 20, persons=10)})
    assert north(attacked, "n") == 20 and isinstance(north(attacked, "p"), Suppressed)
    assert north(control, "p") == 10
    assert {"distinct.keys", "counts.pair"} <= rules_of(plan, "p")


def test_variance_needs_two_rows(tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.read_text().replace("min_group_size = 10", "min_group_size = 1"))
    cat = load_catalog(path)
    q = BY_REGION.format(outs="COUNT(*) AS n, VAR(prs_Age) AS v", src="police_victims")
    one, plan = run(q, {"police_victims": rows("police_victims", 1, cat)}, cat)
    two, _ = run(q, {"police_victims": rows("police_victims", 2, cat, prs_Age=[30, 32])}, cat)
    assert north(one, "n") == 1 and isinstance(north(one, "v"), Suppressed)
    assert north(two, "v") == pytest.approx(2.0)
    assert "variance.rows" in rules_of(plan, "v")


def test_values_on_every_observers_complement():
    """Overall 13 rows lack hours (>= k), but 3 of them are the NGO's: police, which knows its own
    10, would derive the NGO's 3 (values.left_out with `who`)."""
    q = BY_REGION.format(outs="COUNT(*) AS n, AVG(hours_worked_week) AS h", src=UNION)
    police = rows("police_victims", 20, hours_worked_week=["40"] * 10 + [""] * 10)
    attack = {"police_victims": police, "ngo_clients": rows("ngo_clients", 12, first=500,
                                                            hours_worked_week=["40"] * 9 + [""] * 3)}
    control = {"police_victims": police, "ngo_clients": rows("ngo_clients", 12, first=500, hours_worked_week="40")}
    attacked, plan = run(q, attack)
    assert north(attacked, "n") == 32 and isinstance(north(attacked, "h"), Suppressed)
    assert not isinstance(north(run(q, control)[0], "h"), Suppressed)
    node = next(n for n in plan["nodes"] if n["attrs"].get("rule") == "values.left_out" and n["attrs"].get("who"))
    assert node["attrs"]["who"] in (["police"], ["ngo"])


def test_median_counts_each_person_once():
    """One person with 30 records aged 70 among 10 persons aged 20..29: per record the median is
    70, per person (11 values) it is 25."""
    q = BY_REGION.format(outs="COUNT(*) AS n, MEDIAN(prs_Age) AS m", src="police_victims")
    data = rows("police_victims", 10, prs_Age=list(range(20, 30))) + rows("police_victims", 30, first=99,
                                                                          persons=1, prs_Age=70)
    table, plan = run(q, {"police_victims": data})
    assert north(table, "m") == 25
    hist = next(s for n in plan["nodes"] if n["op"] == "partials" for s in n["attrs"]["slots"] if s["kind"] == "hist")
    assert hist["person"] == "person_id"


def test_dominance_per_person_not_per_record():
    """Ten stays of 10 days by one person and ten of 10 days by nine others: per record no stay
    holds more than 5%, per person one holds 50% (rule (1, 60) passes) -- make it 70%."""
    q = HEAD + "SELECT region, COUNT(*) AS n, SUM(stay_days) AS days FROM shelter_stays GROUP BY region;"
    data = rows("shelter_stays", 14, STRICT, persons=1, stay_days=10) + rows("shelter_stays", 6, STRICT, first=50,
                                                                            stay_days=10)
    table, _ = run(q, {"shelter_stays": data}, STRICT)
    per_record = 100 * 10 / 200
    assert per_record <= 60 and north(table, "n") == 20 and isinstance(north(table, "days"), Suppressed)


def test_having_reads_released_values():
    """HAVING compares the values as released: masked and, under rounding, rounded."""
    q = HEAD + ("SELECT exp_Type, COUNT(*) AS reports FROM helpline_reports GROUP BY exp_Type "
                "HAVING COUNT(*) >= 15;")
    res = compile_source(q, "q.iq", CAT)
    nodes = {n["id"]: n for n in res.plan["nodes"]}
    compare = next(n for n in res.plan["nodes"] if n["op"] == "compare")
    sub = nodes[compare["inputs"][0]]
    assert nodes[sub["inputs"][0]]["op"] == "round_down"
    assert "having.released" in {r for i in res.plan["leakage"] for r in i.get("rules", [])}


def test_rounding_thresholds_use_k_rounded_up():
    """k = 12 under rounding to 5 would let the flag tell 12 from 10 (both shown as 10): tests use 15."""
    text = CATALOG.read_text().replace("min_group_size = 5\n", "min_group_size = 12\n")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "c.toml"
        p.write_text(text)
        cat = load_catalog(p)
    q = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM helpline_reports GROUP BY exp_Region;"
    plan = compile_source(q, "q.iq", cat).plan
    assert [n["attrs"]["const"] for n in plan["nodes"] if n["attrs"].get("rule") == "cell.rows"] == [15]


GUARD_CASES = {
    "guard.inside": ("", "WHERE NOT prs_Age = 77"),
    "guard.contains": ("WHERE NOT prs_Age = 77", ""),
}


@pytest.mark.parametrize("rule", sorted(GUARD_CASES))
def test_guard_rule(rule):
    first, second = GUARD_CASES[rule]
    q = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims {} GROUP BY exp_Region;"
    data = {"police_victims": rows("police_victims", 29) + rows("police_victims", 1, first=99, prs_Age=77)}
    _, p1 = run(q.format(first), data)
    guarded, p2 = run(q.format(second), data, earlier=[signature_of_plan(p1)])
    plain, _ = run(q.format(second), data)
    assert not isinstance(north(plain, "n"), Suppressed)
    assert isinstance(north(guarded, "n"), Suppressed)
    assert rule in rules_of(p2, None)


def test_guard_margin_on_groups_that_cross():
    """By region first, then a total WHERE NOT <one person>: no single cell nests, the sum does."""
    regions = [r for r in ("North", "East", "South", "West") for _ in range(30)]
    data = {"police_victims": rows("police_victims", 120, exp_Region=regions, prs_Age=[77] + [30] * 119)}
    _, p1 = run(HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims GROUP BY exp_Region;", data)
    table, p2 = run(HEAD + "SELECT COUNT(*) AS n FROM police_victims WHERE NOT prs_Age = 77;", data,
                    earlier=[signature_of_plan(p1)])
    assert isinstance(table.rows[0][0], Suppressed)
    assert "guard.margin" in rules_of(p2, None)


def test_guard_dominance_of_a_difference():
    """SUM per region, then WHERE stay_days < 30: the five long stays' 20040 is one stay's 20000 (rule (1, 60));
    the control's five long stays of 4000 each are released as a difference (tests/test_guard_dominance.py)."""
    q = HEAD + "SELECT region, COUNT(*) AS n, SUM(support_eur) AS s FROM shelter_stays {} GROUP BY region;"
    short = rows("shelter_stays", 20, STRICT, support_eur="1000.00", stay_days=10)
    for long_support, released in (([20000] + [10] * 4, False), ([4000] * 5, True)):
        data = {"shelter_stays": short + rows("shelter_stays", 5, STRICT, first=100, stay_days=60,
                                              support_eur=long_support)}
        _, p1 = run(q.format(""), data, STRICT)
        guarded, p2 = run(q.format("WHERE stay_days < 30"), data, STRICT, earlier=[signature_of_plan(p1)])
        assert north(guarded, "n") == 20
        assert isinstance(north(guarded, "s"), Suppressed) != released
        assert "guard.dominance" in rules_of(p2, "s")


OWNED_ELSEWHERE = {
    "guard.dominance": "test_guard_dominance_of_a_difference (above)",
    "dp.threshold": "tests/test_dp_plan.py::test_noisy_threshold_reads_only_the_noisy_count",
    "observer.persons": "tests/test_disclosure_property.py::test_persons_in_every_observers_complement",
    "guard.rows": "tests/test_guard.py::test_undecidable_relation_falls_back_to_the_row_difference",
    "linkage.sizes": "tests/test_linkage.py::test_padding_depends_on_row_count_only",
    "distinct.keys": "test_distinct_keys_and_repeat_records (above)",
    "source.once": "test_source_once_counts_distinct_rows_of_the_unique_side (above)",
    "variance.rows": "test_variance_needs_two_rows (above)",
    "percentile.rank": "test_percentile_rank_is_neither_first_nor_last (above)",
    "having.released": "test_having_reads_released_values (above)",
    "guard.margin": "test_guard_margin_on_groups_that_cross (above)",
    "guard.closure": "tests/test_guard_closure.py::test_a_withheld_cell_takes_its_component_with_it",
}


def test_every_rule_has_a_test_and_a_spec_section():
    spec = (ROOT / "spec" / "disclosure.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^### (\d+\.\d+) ", spec, re.M))
    covered = {c.rule for c in CASES} | set(GUARD_CASES) | set(OWNED_ELSEWHERE)
    for rid, rule in RULES.items():
        assert rid in covered, f"rule {rid} has no test"
        assert rule.section in sections, f"rule {rid} cites section {rule.section}, not in spec/disclosure.md"
        assert f"`{rid}`" in spec, f"rule {rid} is not named in spec/disclosure.md"
