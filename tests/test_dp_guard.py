"""A DP release against earlier EXACT releases (spec/privacy.md 5, spec/disclosure.md 6.15), on the
plaintext oracle (which adds no noise: a DP value is its exact value here, as at a very large epsilon).

police allows DP without requiring it (`require = false`), so its ledger can hold exact releases and
DP ones. A DP plan is compared by the differencing guard with the exact ones, as an exact query
would be; DP against DP stays unguarded (the budget bounds it). Each party rebuilds that guard from
its own ledger (runtime/governance/party_checks.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan.dp_lower import exact_releases
from insightql.compiler.plan.guard import signature_of_plan
from insightql.runtime.governance.party_checks import Governance, GovernanceOptions

from conftest import CATALOG, load_tables
from redteam_data import block, cells, compile_seq, q, releases, write_world
from test_redteam_session7 import AGE_77, BY_REGION, CAT, DP_CAT, N, P, _with_privacy

DP_CAT_PATH = CATALOG.parent / "catalog_dp.toml"

MIXED = _with_privacy(CAT, P, require=False, epsilon_budget=100)
TOTAL, BUT_77 = BY_REGION.format(frm=P, where=""), BY_REGION.format(frm=P, where="WHERE prs_Age <> 77")
UNDER_50 = BY_REGION.format(frm=P, where="WHERE prs_Age < 50")
HALF_OVER_50 = [block(P, 40, exp_Region=r, prs_Age=[30] * 20 + [60] * 20) for r in ("North", "East")]


def dp(text: str, epsilon: int = 100) -> str:
    return f"@epsilon {epsilon}\n" + text


def north(runs) -> list:
    return [cells(p, t)[("North",)]["n"] for p, _, t in runs]


def test_a_dp_count_minus_an_earlier_exact_one_is_withheld(tmp_path: Path):
    """The attack of 6.15: the exact count by region, then at epsilon 100 WHERE prs_Age <> 77. The DP plan
    carries the guard of the exact release and the North (40 against 39) is withheld."""
    runs = releases([TOTAL, dp(BUT_77)], AGE_77, MIXED, tmp_path)
    assert north(runs) == [40, None]
    assert [e["from"][0]["plan_hash"] for e in runs[1][0]["guard"]] == [runs[0][0]["hash"]]


def test_the_guard_decides_for_a_dp_release_as_for_an_exact_one(tmp_path: Path):
    """The same two queries with the second exact: every cell withheld or released alike (the zero rule
    withholds the East, 40 and 40, in both), and the plan's guard entries are the same; also for the rows
    with a value of a nullable column (COUNT(x): the guard on the subgroup, guard.apply_values)."""
    world = AGE_77 + [block(P, 20, exp_Region="South", prs_Age=[30] * 10 + [60] * 10)]
    halves = HALF_OVER_50 + [block(P, 40, exp_Region="South", prs_Age=[30] * 39 + [77])]
    hours = f"SELECT exp_Region, COUNT(hours_worked_week) AS n FROM {P} WHERE prs_Age < 50 GROUP BY exp_Region;"
    released = []
    for i, (blocks, second) in enumerate([(world, BUT_77), (world, UNDER_50), (halves, hours)]):
        (_, _, _), (pd, _, td) = releases([TOTAL, dp(second)], blocks, MIXED, tmp_path / "dp" / str(i))
        (_, _, _), (pe, _, te) = releases([TOTAL, second], blocks, MIXED, tmp_path / "exact" / str(i))
        masks = [{k: v["n"] is None for k, v in cells(p, t).items()} for p, t in ((pd, td), (pe, te))]
        assert masks[0] == masks[1], second
        assert pd["guard"] == pe["guard"]
        released.append(sorted(k for k, withheld in masks[0].items() if not withheld))
    assert released == [[], [("South",)], [("East",), ("North",)]]  # not only withheld cells compared


def test_control_an_honest_difference_is_released(tmp_path: Path):
    """Control: 20 of 40 in each region are under 50, a difference of 20 >= k: the DP release after the
    exact one is guarded and still shows every cell (20, the oracle adds no noise)."""
    runs = releases([TOTAL, dp(UNDER_50)], HALF_OVER_50, MIXED, tmp_path)
    assert runs[1][0].get("guard")
    assert [cells(p, t)[(r,)]["n"] for p, _, t in runs[1:] for r in ("North", "East")] == [20, 20]


def test_dp_after_dp_is_not_guarded(tmp_path: Path):
    """Two DP releases: no guard entry (the budget bounds their difference, spec/privacy.md 5), and both are
    released; an exact release after them is compared with both (the earlier rule, unchanged)."""
    runs = releases([dp(TOTAL, 1), dp(BUT_77, 1)], AGE_77, MIXED, tmp_path)
    assert [p.get("guard") for p, _, _ in runs] == [None, None]
    assert north(runs) == [40, 39]
    third = compile_seq([dp(TOTAL, 1), dp(BUT_77, 1), UNDER_50], MIXED)[2].plan
    assert sorted(o["plan_hash"] for e in third["guard"] for o in e["from"]) == sorted(p["hash"] for p, _, _ in runs)


def test_dp_releases_are_marked_in_their_signature():
    """`dp` in the ledger's signature is what exact_releases reads; an exact release has none (and an entry
    written before the mark reads as exact: the guard then also compares two DP releases, never fewer)."""
    exact, noisy = compile_seq([TOTAL, dp(BUT_77)], MIXED)
    assert "dp" not in signature_of_plan(exact.plan) and signature_of_plan(noisy.plan)["dp"] is True
    sigs = [signature_of_plan(exact.plan), signature_of_plan(noisy.plan)]
    assert exact_releases(sigs) == sigs[:1]


def _party(plan: dict, ledger: Path, signatures: list[dict]) -> Governance:
    gov = Governance(plan, "police", MIXED, GovernanceOptions(), ledger)
    for sig in signatures:
        gov.ledger.append("release", sig["plan_hash"], {"guard_signature": sig})
    return gov


def test_a_party_rebuilds_the_dp_plans_guard_from_its_ledger(tmp_path: Path):
    """The police's party, whose ledger holds an exact and a DP release, accepts the DP plan compiled against
    both (its own recompilation gives the same hash, the guard covers the exact one) and refuses, as a stale
    guard, the same DP query compiled without the ledger."""
    first, noisy, again = compile_seq([TOTAL, dp(TOTAL, 1), dp(BUT_77)], MIXED)
    ledger = [signature_of_plan(first.plan), signature_of_plan(noisy.plan)]
    gov = _party(again.plan, tmp_path / "a.ledger.jsonl", ledger)
    assert gov._guard_problems() == [] and gov._plan_problems() == []
    (unguarded,) = compile_seq([dp(BUT_77)], MIXED)
    gov = _party(unguarded.plan, tmp_path / "b.ledger.jsonl", ledger)
    problems = gov._guard_problems()
    assert len(problems) == 1 and "stale guard" in problems[0] and first.plan["hash"][:19] in problems[0]
    assert noisy.plan["hash"][:19] not in problems[0]


# -- through real parties ---------------------------------------------------------------------------
@pytest.mark.mpc
def test_mpc_withholds_what_the_oracle_withholds(tmp_path: Path):
    """catalog_dp.toml: the NGO allows DP without requiring it (epsilon 1 per query). The exact count by
    region, then the DP count WHERE prs_Age < 50, through real parties each with its own ledger: the North
    (40 against 39: the one person aged 77) withheld, the East (30 of 60 under 50) released, as on the
    oracle; the noisy East within 16 of 30 (the sum of up to four samples of scale 1 exceeds 16 with
    probability below 1e-5, and falls below the threshold's -20 below 1e-10)."""
    from conftest import run_mpc

    world = [block(N, 40, exp_Region="North", prs_Age=[30] * 39 + [77]),
             block(N, 60, exp_Region="East", prs_Age=[30] * 30 + [60] * 30)]
    data = write_world(tmp_path, DP_CAT, world)
    sigs, got = [], []
    queries = [BY_REGION.format(frm=N, where=""), dp(BY_REGION.format(frm=N, where="WHERE prs_Age < 50"), 1)]
    for i, text in enumerate(queries):
        plan = compile_source(q(text), f"q{i}", DP_CAT, earlier=list(sigs)).plan
        table = run_mpc(plan, data, catalog_path=DP_CAT_PATH, ledger_dir=tmp_path / "ledgers")
        oracle = cells(plan, run_plan_plaintext(plan, load_tables(plan, DP_CAT, data)))
        mine = cells(plan, table)
        assert {k: v["n"] is None for k, v in mine.items()} == {k: v["n"] is None for k, v in oracle.items()}
        sigs.append(signature_of_plan(plan))
        got.append(mine)
    assert [got[0][("North",)]["n"], got[0][("East",)]["n"]] == [40, 60]
    assert got[1][("North",)]["n"] is None and abs(got[1][("East",)]["n"] - 30) <= 16


def test_iq_check_warns_of_a_large_epsilon_per_query(tmp_path: Path):
    """spec/disclosure.md 6.15: DP minus DP is bounded only by the owner's per-query cap, so `iq check` warns
    (IQ006, at the cap's line) when a catalog it reads lets one query spend more than epsilon 1, and is
    silent at 1 (the shipped DP example). The catalog still loads: a warning, not an error."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    text = (root / "examples" / "dp" / "catalog.toml").read_text(encoding="utf-8")
    assert "max_epsilon_per_query = 1.0" in text
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "catalog.toml").write_text(text.replace("max_epsilon_per_query = 1.0",
                                                                "max_epsilon_per_query = 2.5"), encoding="utf-8")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "catalog.toml").write_text(text, encoding="utf-8")

    def check(folder: str):
        return subprocess.run([sys.executable, "-m", "insightql.runtime.cli", "check", "catalog.toml"],
                              cwd=tmp_path / folder, capture_output=True, text=True)

    big, ok = check("big"), check("ok")
    line = 1 + text[:text.index("max_epsilon_per_query")].count("\n")
    assert big.returncode == 1 and f"catalog.toml:{line}:1: IQ006 warning" in big.stdout, big.stdout
    assert big.stdout.count("IQ006") == 1  # once for the section, naming the NGO's dataset that inherits it
    assert "ngo_clients, police_victims may spend epsilon 2.5" in big.stdout and "6.15" in big.stdout
    assert ok.returncode == 0 and "IQ006" not in ok.stdout + ok.stderr, ok.stdout
