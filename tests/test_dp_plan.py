"""Differential privacy in the compiler (spec/privacy.md): the annotation, the policy, the split of
epsilon, the plan's shape (nothing but noisy values reaches a comparison or the reveal), the
oracle with given noise, explain and the result table's interval. No MPC here: tests/test_dp_noise.py
(the noise through the secure op) and tests/test_dp_e2e.py (real parties, ledger, budget)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import networkx as nx
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.dp_lower import noise_scale
from insightql.compiler.plan.ops import SIGN_TESTS
from insightql.compiler.plaintext.dp_interval import noise_interval
from insightql.compiler.syntax.formatter import format_query
from insightql.compiler.syntax.parser import parse

from conftest import load_tables
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plaintext.results import Suppressed

CORPUS = Path(__file__).resolve().parent / "corpus"
QUERY = """@purpose research
@epsilon 0.9
SELECT exp_Region, COUNT(*) AS n, COUNT(hours_worked_week) AS with_hours, SUM(hours_worked_week) AS hours,
       AVG(prs_Age) AS mean_age
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Region;
"""


@pytest.fixture(scope="module")
def dp_catalog():
    return load_catalog(CORPUS / "catalog_dp.toml")


def _plan(text, catalog):
    res = compile_source(text, "q.iq", catalog)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


def _graph(plan) -> nx.DiGraph:
    g = nx.DiGraph()
    for n in plan["nodes"]:
        g.add_node(n["id"], **n)
        for i in n["inputs"] + ([n["attrs"]["guard"]] if n["attrs"].get("guard") else []):
            g.add_edge(i, n["id"])
    return g


def test_noisy_threshold_reads_only_the_noisy_count(dp_catalog):
    """dp.threshold: with the dp_noise nodes taken out, no comparison, quotient or reveal depends on
    a shared value: every flag and every released value is a function of noisy values only."""
    plan = _plan(QUERY, dp_catalog)
    g = _graph(plan)
    noise = [n for n, d in g.nodes(data=True) if d["op"] == "dp_noise"]
    assert noise
    thr = [d for _, d in g.nodes(data=True) if d["attrs"].get("rule") == "dp.threshold"]
    assert len(thr) == 1 and thr[0]["attrs"]["const"] == 10
    assert g.nodes[thr[0]["inputs"][0]]["op"] == "dp_noise" and g.nodes[thr[0]["inputs"][0]]["attrs"]["what"] == "COUNT(*)"
    cut = g.copy()
    cut.remove_nodes_from(noise)
    shared = [n for n, d in g.nodes(data=True) if d["op"] == "share"]
    reach = set().union(*(nx.descendants(cut, s) for s in shared))
    after = {d["op"] for n, d in g.nodes(data=True) if n in reach}
    assert after <= {"combine"}, after  # exact partials are summed, then only noised
    assert not any(g.nodes[n]["op"] in SIGN_TESTS + ("div", "reveal", "mask") for n in reach)


def test_epsilon_is_split_evenly_and_spent_exactly(dp_catalog):
    plan = _plan(QUERY, dp_catalog)
    noise = [n["attrs"] for n in plan["nodes"] if n["op"] == "dp_noise"]
    # COUNT(*), COUNT(hours) (nullable), SUM(hours), SUM(prs_Age); AVG(prs_Age) reuses COUNT(*)
    assert sorted(a["what"] for a in noise) == ["COUNT(*)", "COUNT(hours_worked_week)", "SUM(hours_worked_week)",
                                                "SUM(prs_Age)"]
    share = Fraction(9, 10) / 4
    for a in noise:
        eps, s = Fraction(a["epsilon"]), Fraction(a["scale"])
        assert eps == Fraction(a["sensitivity"]) / s <= share  # exact: the double scale rounds up
        assert Fraction(float(s)) == s
    assert sum(Fraction(a["epsilon"]) for a in noise) <= Fraction(9, 10)
    # a person has at most 5 police rows and 1 NGO row: sensitivity 6 rows, 6 x 100 hours, 6 x 99 years
    assert {a["what"]: a["sensitivity"] for a in noise} == {"COUNT(*)": 6, "COUNT(hours_worked_week)": 6,
                                                            "SUM(hours_worked_week)": 600, "SUM(prs_Age)": 594}
    assert plan["policy"]["privacy"] == {"epsilon": "9/10", "delta": "0", "unit": "person (rows per person declared "
                                         "by the owners)", "rows_per_person": {"police_victims": 5, "ngo_clients": 1},
                                         "noisy_threshold": True, "required_by": ["police_victims"]}
    assert "guard" not in plan


def test_noise_scale_is_the_smallest_double_at_or_above():
    for sens, eps in ((1, Fraction(1, 3)), (594, Fraction(9, 40)), (7, Fraction(1, 10))):
        s = noise_scale(sens, eps)
        assert s >= sens / eps and Fraction(float(s)) == s
        import math
        assert Fraction(math.nextafter(float(s), 0)) < sens / eps


def test_epsilon_annotation_round_trips_and_is_exact():
    q = parse(QUERY, "q.iq")
    assert str(q.annotation("epsilon").value) == "0.9"
    assert parse(format_query(q), "q.iq") == q
    assert "@epsilon 0.9" in format_query(q)


def test_a_query_may_ask_for_dp_where_every_owner_keeps_a_budget(dp_catalog, corpus_catalog):
    """ngo_clients has a budget without requiring DP: a query over it alone may ask for DP. Where a dataset
    read has no `[policy.privacy]` (catalog.toml), `@epsilon` is refused (IQ328): nobody would count its spends."""
    plan = _plan(QUERY.replace("FROM police_victims UNION ALL ngo_clients", "FROM ngo_clients"), dp_catalog)
    assert plan["policy"]["privacy"]["required_by"] == [] and plan["policy"]["privacy"]["unit"] == "record"
    assert _plan(QUERY, dp_catalog)["policy"]["privacy"]["unit"] == "person (rows per person declared by the owners)"
    res = compile_source(QUERY.replace("0.9", "2"), "q.iq", corpus_catalog)
    assert res.plan is None and [d.code for d in res.diagnostics] == ["IQ328"]


def test_without_epsilon_the_plan_is_the_plain_one(corpus_catalog):
    text = QUERY.replace("@epsilon 0.9\n", "")
    plan = _plan(text, corpus_catalog)
    assert "privacy" not in plan["policy"] and not any(n["op"] == "dp_noise" for n in plan["nodes"])


def test_oracle_adds_the_given_noise(dp_catalog, corpus_data):
    """The oracle draws no noise; given each dp_noise node's noise, released values are true + noise and
    the threshold reads the noisy count (a cell pushed below k by its noise is suppressed)."""
    plan = _plan(QUERY, dp_catalog)
    tables = load_tables(plan, dp_catalog, corpus_data)
    exact = run_plan_plaintext(plan, tables)
    cells = plan["cells"]
    ids = {n["attrs"]["what"]: n["id"] for n in plan["nodes"] if n["op"] == "dp_noise"}
    n_col = exact.columns.index("n")
    true_n = [r[n_col] for r in exact.rows]
    push = [-(c - 3) if i == 0 else 5 for i, c in enumerate(true_n)]  # cell 0: noisy count 3 < k
    noisy = run_plan_plaintext(plan, tables, noise={ids["COUNT(*)"]: push, ids["SUM(prs_Age)"]: [0] * cells})
    assert isinstance(noisy.rows[0][n_col], Suppressed)
    assert [r[n_col] for r in noisy.rows[1:]] == [c + 5 for c in true_n[1:]]
    s = next(x for x in noisy.schema if x["name"] == "n")
    assert s["noise95"] == f"± {noise_interval(Fraction(6) / (Fraction(9, 10) / 4), 3)}"
    assert any("Differentially private" in note for note in noisy.notes)


def test_explain_shows_mechanism_epsilon_and_interval(dp_catalog):
    from insightql.compiler.review.explain import explain_text

    text = explain_text(_plan(QUERY, dp_catalog))
    assert "differential privacy: epsilon 9/10, delta 0" in text
    assert "discrete Laplace noise, epsilon 9/40" in text and "95% of the noise within ±" in text
    assert "[dp.threshold]" in text


def test_leakage_report_names_dp_outputs(dp_catalog):
    plan = _plan(QUERY, dp_catalog)
    outs = {i["column"]: i["detail"] for i in plan["leakage"] if i["item"] == "output"}
    assert all(d.startswith("differentially private: discrete Laplace noise (epsilon ") for d in outs.values())
    assert "epsilon 9/40 = 0.225, delta 0, sensitivity 594" in outs["mean_age"]
    flag = next(i for i in plan["leakage"] if i["item"] == "suppression_flag")
    assert flag["rules"] == ["dp.threshold"]


def test_interval_matches_the_closed_form_for_one_party():
    import math
    for s in (1, 2.5, 36):
        h = noise_interval(Fraction(s), 1)
        q = math.exp(-1 / s)
        inside = lambda x: 1 - 2 * q ** (x + 1) / (1 + q)  # noqa: E731  P(|Z| <= x)
        assert inside(h) >= 0.95 > inside(h - 1)


def test_each_owner_keeps_at_most_r_rows_per_person(dp_catalog, tmp_path):
    """spec/privacy.md 1: with a person key, each owner keeps a person's first R_d rows after WHERE
    (police R = 5, NGO R = 1 in catalog_dp.toml), so one person moves a count by at most sum R_d."""
    from redteam_data import block, cells, releases

    plan = _plan(QUERY, dp_catalog)
    bounds = {n["attrs"]["dataset"]: n["attrs"].get("bound") for n in plan["nodes"] if n["op"] == "partials"}
    assert bounds == {"police_victims": {"column": "person_id", "rows": 5},
                      "ngo_clients": {"column": "person_id", "rows": 1}}
    world = [block("police_victims", 8, exp_Region="North", person_id=424242),  # one person, 8 interviews
             block("police_victims", 12, exp_Region="North"),
             block("ngo_clients", 3, exp_Region="North", person_id=424242),  # the same person at the NGO, 3 rows
             block("ngo_clients", 10, exp_Region="North")]
    text = "@epsilon 0.5\nSELECT exp_Region, COUNT(*) AS n FROM police_victims UNION ALL " \
           "ngo_clients GROUP BY exp_Region;"
    ((p, loaded, table),) = releases([text], world, dp_catalog, tmp_path, guard=False)
    assert cells(p, table)[("North",)]["n"] == 5 + 12 + 1 + 10  # not 8 + 12 + 3 + 10: the oracle adds no noise


def test_noisy_values_are_shown_within_their_public_range(dp_catalog, corpus_data):
    """Post-processing in the public stage: a noisy mean beyond the column's clamp is shown at the
    bound (a mean age of 99, not 400), and the suppression note names the noisy threshold."""
    plan = _plan(QUERY, dp_catalog)
    tables = load_tables(plan, dp_catalog, corpus_data)
    ids = {n["attrs"]["what"]: n["id"] for n in plan["nodes"] if n["op"] == "dp_noise"}
    big = run_plan_plaintext(plan, tables, noise={ids["SUM(prs_Age)"]: [10 ** 6] * plan["cells"]})
    col = big.columns.index("mean_age")
    assert {r[col] for r in big.rows if not isinstance(r[col], Suppressed)} == {99}
    low = run_plan_plaintext(plan, tables, noise={ids["COUNT(*)"]: [-(10 ** 6)] * plan["cells"]})
    assert any("noisy row count below k=10 (differential privacy)" in n for n in low.notes)


def test_iq_diff_names_weaker_privacy(dp_catalog):
    from insightql.compiler.review.weakening import weakenings

    ngo = QUERY.replace("FROM police_victims UNION ALL ngo_clients", "FROM ngo_clients")  # DP allowed, not required
    half, one = _plan(ngo.replace("0.9", "0.5"), dp_catalog), _plan(ngo.replace("0.9", "1"), dp_catalog)
    plain = _plan(ngo.replace("@epsilon 0.9\n", ""), dp_catalog)
    assert "larger epsilon (less noise, more of the budget): 1/2 -> 1" in weakenings(half, one)
    assert not any("epsilon" in w for w in weakenings(one, half))
    assert "differential privacy is dropped: values are released without noise" in weakenings(half, plain)
    assert any("replaced by differential privacy" in w for w in weakenings(plain, half))


def test_without_a_noisy_threshold_the_row_count_is_measured_only_when_read(dp_catalog):
    """noisy_threshold = false: a query of SUMs spends its whole epsilon on them (no hidden noisy count)."""
    from insightql.compiler.check.catalog import Catalog

    raw = dp_catalog.model_dump(mode="json")
    raw["datasets"]["police_victims"]["policy"]["privacy"]["noisy_threshold"] = False
    cat = Catalog.model_validate(raw)
    text = "@purpose research\n@epsilon 0.5\nSELECT exp_Region, SUM(prs_Age) AS ages FROM police_victims GROUP BY exp_Region;"
    plan = _plan(text, cat)
    noise = [n["attrs"] for n in plan["nodes"] if n["op"] == "dp_noise"]
    assert [a["what"] for a in noise] == ["SUM(prs_Age)"] and Fraction(noise[0]["epsilon"]) == Fraction(1, 2)
    assert not any(n["attrs"].get("rule") == "dp.threshold" for n in plan["nodes"])
    counted = _plan(text.replace("SUM(prs_Age) AS ages", "SUM(prs_Age) AS ages, COUNT(*) AS n"), cat)
    assert sorted(n["attrs"]["what"] for n in counted["nodes"] if n["op"] == "dp_noise") == ["COUNT(*)", "SUM(prs_Age)"]
