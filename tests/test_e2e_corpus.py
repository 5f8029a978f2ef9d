"""Every valid corpus query, run by real MPyC parties (one OS process each), equals the oracle.

Queries: tests/corpus/valid/*.iq (queries the compiler answers with IQ4xx "not executable
yet" are skipped with that reason; a `-- catalog: NAME.toml` header picks another corpus catalog,
e.g. catalog_fast.toml for fast record linkage) plus a few written here to cover every aggregate. Data: the
session's random CSVs (a few hundred rows per dataset). All runs of the module are queued at
its start and run two at a time; each test waits for its own run. Two queries also run with
five parties (tests/catalog5.toml: the corpus catalog with a second helper).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source

from conftest import CATALOG5, TESTS, assert_same_result, compile_plan, oracle_result, submit_mpc
from make_golden import catalog_of

VALID = TESTS / "corpus" / "valid"

INLINE = {
    "inline_union_count_avg_sum": """@purpose research
SELECT exp_Type, prs_Gender, COUNT(*) AS n, AVG(prs_Age) AS mean_age, SUM(hours_worked_week) AS hours
FROM police_victims UNION ALL ngo_clients
WHERE exp_Region IN ('North', 'East')
GROUP BY exp_Type, prs_Gender;""",
    "inline_spread_and_order": """@purpose research
SELECT exp_Type, VAR(prs_Age) AS v, STDDEV(prs_Age) AS s, MEDIAN(prs_Age) AS med,
       MIN(prs_Age) AS youngest, MAX(prs_Age) AS oldest
FROM police_victims
GROUP BY exp_Type
ORDER BY v DESC;""",
    "inline_decimal_having_limit": """@purpose research
SELECT exp_Region, COUNT(*) AS n, SUM(debt_eur) AS debt, AVG(debt_eur) AS mean_debt,
       COUNT(hours_worked_week) AS with_hours, COUNT(*) - COUNT(hours_worked_week) AS no_hours
FROM ngo_clients
WHERE identified_on BETWEEN DATE '2021-01-01' AND DATE '2024-12-31'
GROUP BY exp_Region
HAVING COUNT(*) >= 20
ORDER BY n DESC
LIMIT 3;""",
    "inline_helpline_rounding": """@purpose policy
SELECT report_channel, caller_is_victim, COUNT(*) AS reports, SUM(victims_mentioned) AS mentioned
FROM helpline_reports
WHERE victims_mentioned NOT BETWEEN 40 AND 50
GROUP BY report_channel, caller_is_victim;""",
    "inline_receiver_no_groups": """@purpose research
@receivers police
SELECT COUNT(*) AS n, AVG(hours_worked_week) AS mean_hours, SUM(prs_Age) / COUNT(*) AS ratio
FROM police_victims
WHERE prs_Age BETWEEN 18 AND 30 AND exp_Type NOT IN ('Other');""",
}

FIVE_PARTY = ["inline_union_count_avg_sum", "inline_decimal_having_limit"]


def _sources() -> dict[str, str]:
    out = {p.stem: p.read_text(encoding="utf-8") for p in sorted(VALID.glob("*.iq"))}
    return {**out, **INLINE}


SOURCES = _sources()


def _compile(name: str, text: str, catalog):
    res = compile_source(text, f"{name}.iq", catalog)
    if res.plan is not None and res.plan["policy"].get("privacy"):  # noisy: tests/test_dp_e2e.py runs DP queries
        return None, "differential privacy: the values are noisy; tests/test_dp_e2e.py runs DP queries"
    if res.plan is not None:
        return res.plan, None
    not_yet = [d for d in res.diagnostics if d.code.startswith("IQ4")]
    if not_yet and len(not_yet) == len([d for d in res.diagnostics if d.severity.value == "error"]):
        return None, f"{not_yet[0].code}: {not_yet[0].message}"
    raise AssertionError(f"{name} does not compile:\n" + "\n".join(d.render() for d in res.diagnostics))


@pytest.fixture(scope="module")
def runs(request, corpus_data, mpc_pool):
    """Queue a run of parties for every query selected in this session: name -> (plan, future|skip)."""
    wanted = {(it.originalname, it.callspec.params.get("name")) for it in request.session.items
              if it.module is request.module and hasattr(it, "callspec")}
    out = {}
    for name, text in SOURCES.items():
        if ("test_corpus_query_matches_oracle", name) not in wanted:
            continue
        cat_path = catalog_of(text)
        try:
            plan, skip = _compile(name, text, load_catalog(cat_path))
        except AssertionError as e:
            out[name] = (None, e)
            continue
        out[name] = (plan, skip if skip else submit_mpc(mpc_pool, plan, corpus_data, catalog_path=cat_path))
    cat5 = load_catalog(CATALOG5)
    for name in FIVE_PARTY:
        if ("test_five_parties_match_oracle", name) in wanted:
            plan = compile_plan(INLINE[name], cat5, f"{name}.iq")
            out[("5", name)] = (plan, submit_mpc(mpc_pool, plan, corpus_data, catalog_path=CATALOG5))
    return out


@pytest.mark.mpc
@pytest.mark.parametrize("name", list(SOURCES))
def test_corpus_query_matches_oracle(name, runs, corpus_data):
    plan, pending = runs[name]
    if isinstance(pending, Exception):
        raise pending
    if isinstance(pending, str):
        pytest.skip(pending)
    got = pending.result()
    want = oracle_result(plan, load_catalog(catalog_of(SOURCES[name])), corpus_data)
    assert_same_result(plan, got, want)


@pytest.mark.mpc
@pytest.mark.parametrize("name", FIVE_PARTY)
def test_five_parties_match_oracle(name, runs, corpus_data):
    cat5 = load_catalog(CATALOG5)
    plan, pending = runs[("5", name)]
    assert len(plan["parties"]) == 5 and plan["parties"][-1] == "helper2"
    got = pending.result()
    assert_same_result(plan, got, oracle_result(plan, cat5, corpus_data))


def test_catalog5_is_the_corpus_catalog_plus_a_helper(corpus_catalog):
    cat5 = load_catalog(CATALOG5)
    assert cat5.party_names() == corpus_catalog.party_names() + ["helper2"]
    assert cat5.datasets == corpus_catalog.datasets


def test_catalog_fast_is_the_corpus_catalog_with_fast_linkage(corpus_catalog):
    fast = load_catalog(TESTS / "corpus" / "catalog_fast.toml")
    assert fast.parties == corpus_catalog.parties
    dumps = {n: d.model_dump() for n, d in fast.datasets.items()}
    assert {n for n, d in dumps.items() if d["policy"]["linkage"] == "fast"} == {"police_victims", "ngo_clients"}
    for d in dumps.values():
        d["policy"]["linkage"] = "oblivious"
    assert dumps == {n: d.model_dump() for n, d in corpus_catalog.datasets.items()}
