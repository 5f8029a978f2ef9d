"""guard.closure and the values other rules withhold (spec/disclosure.md 3.2): a value that counts.pair
withholds in a released cell must not come back as an earlier release's margin minus the released values.

Each case is two releases on the plaintext oracle (tests/redteam_data.py): a margin by region, then the
region by nationality, where a rule that is not about the cell being small withholds North x NG's value.
counts.pair (2.5): its two counts differ by 2 and the guard's tests on the remainder (each count >= k)
pass, so only the closure keeps them; `without_closure` shows the attack. filter.parts (2.15) and
sum.dominance (2.7): the guard's own tests on the remainder (the derived value class, guard.dominance)
withhold the margin's other values, with or without the closure. Controls: without a failing pair nothing
is withheld, and a value withheld by values.rows (too few rows with a value) does not close its component.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan import guard

from conftest import CATALOG
from redteam_data import NATIONS, block, cells, releases

STRICT = load_catalog(CATALOG.parent / "catalog_strict.toml")
MAIN = load_catalog(CATALOG)
P, S = "police_victims", "shelter_stays"
K = MAIN.datasets[P].policy.min_group_size
NAT = MAIN.datasets[P].columns["prs_Nationality"].domain


@pytest.fixture
def without_closure(monkeypatch):
    monkeypatch.setattr(guard, "close", lambda builder, before, after, what: after)


def two(cols: str, src: str, region: str, nat: str, where: str = "") -> list[str]:
    return [f"SELECT {region}, {cols} FROM {src} {where} GROUP BY {region};",
            f"SELECT {region}, {nat}, {cols} FROM {src} {where} GROUP BY {region}, {nat};"]


def run(queries: list[str], world, cat, folder: Path) -> list[dict]:
    return [cells(p, t) for p, _, t in releases(queries, world, cat, folder)]


def north(table: dict, col: str, nations: list[str]) -> list:
    return [table[("North", n)][col] for n in nations]


# -- counts.pair ---------------------------------------------------------------------------------------
PAIR = two("COUNT(*) AS n, COUNT(hours_worked_week) AS h, COUNT(debt_eur) AS d", P, "exp_Region", "prs_Nationality")


def victims(extra: list) -> list:
    """Per region and nationality 20 interviews with hours and debt and 10 with neither, plus `extra`."""
    return [*(b for r in ("North", "East") for n in NAT
              for b in (block(P, 20, exp_Region=r, prs_Nationality=n, hours_worked_week=40, debt_eur=100),
                        block(P, 10, exp_Region=r, prs_Nationality=n, hours_worked_week=None, debt_eur=None))),
            *extra]


def hours_only(nation: str, n: int) -> object:
    return block(P, n, exp_Region="North", prs_Nationality=nation, hours_worked_week=40, debt_eur=None)


PAIR_WORLD = victims([hours_only("NG", 2), hours_only("RO", 10)])  # NG: 22 hours, 20 debts


def test_a_value_counts_pair_withholds_closes_its_component(tmp_path):
    """North x NG's hours (22) and debts (20) differ by 2: counts.pair withholds both. The first's North
    joins every North cell, so every North h and d is withheld; the cells' counts and the East stay."""
    first, new = run(PAIR, PAIR_WORLD, MAIN, tmp_path)
    assert (first[("North",)]["h"], first[("North",)]["d"]) == (212, 200)
    assert north(new, "h", NAT) == north(new, "d", NAT) == [None] * len(NAT)
    assert north(new, "n", NAT) == [32, 40] + [30] * (len(NAT) - 2)
    assert [new[("East", n)]["h"] for n in NAT] == [20] * len(NAT)


def test_without_the_closure_the_pair_comes_back(tmp_path, without_closure):
    """The same releases with the closure off: the first's North minus the other nationalities is NG's
    two counts, 2 < k apart (the guard's tests on each count's remainder, 22 and 20 rows, pass)."""
    first, new = run(PAIR, PAIR_WORLD, MAIN, tmp_path)
    assert new[("North", "NG")]["h"] is None and new[("North", "NG")]["d"] is None
    h, d = (first[("North",)][c] - sum(new[("North", n)][c] for n in NAT[1:]) for c in ("h", "d"))
    assert (h, d) == (22, 20) and 0 < h - d < K


def test_no_failing_pair_nothing_closed(tmp_path):
    """The same releases where every pair passes (RO's ten hours-only interviews, no NG ones): every
    value is released, so the closure's trigger is the pair, not the earlier release."""
    _, new = run(PAIR, victims([hours_only("RO", 10)]), MAIN, tmp_path)
    assert all(v is not None for key, cell in new.items() if key[0] in ("North", "East") for v in cell.values())


def test_a_value_withheld_by_values_rows_does_not_close(tmp_path):
    """North x NG and x RO have 5 debts each (values.rows withholds them: 1..k-1 rows with a value);
    their remainder is 10 >= k debts, so the guard allows the other nationalities' debts, and the closure
    (whose trigger is taken after values.rows) leaves them released."""
    world = [*(b for n in NAT for b in (
        block(P, 20, exp_Region="North", prs_Nationality=n, hours_worked_week=40,
              debt_eur=(lambda i: 100 if i < 5 else None) if n in ("NG", "RO") else 100),
        block(P, 10, exp_Region="North", prs_Nationality=n, hours_worked_week=None, debt_eur=None)))]
    first, new = run(two("COUNT(debt_eur) AS d", P, "exp_Region", "prs_Nationality"), world, MAIN, tmp_path)
    assert first[("North",)]["d"] == 20 * (len(NAT) - 2) + 10
    assert north(new, "d", NAT) == [None, None] + [20] * (len(NAT) - 2)


# -- filter.parts and sum.dominance: the guard's own tests close them --------------------------------------
def test_filter_parts_sum_is_held_by_the_guard(tmp_path, without_closure):
    """WHERE stay_days IN (10, 60): North x NG's COUNT and SUM give its two 60-day stays, so filter.parts
    withholds its SUM. Even with the closure off, the guard's test on the derived value class against
    the first's North (32 - 30 released = 2 < k) withholds every North SUM: the margin gives nothing back."""
    world = [*(block(S, 20, region=r, nationality=n, stay_days=10) for r in ("North", "East") for n in NATIONS),
             block(S, 2, region="North", nationality="NG", stay_days=60),
             *(block(S, 10, region="North", nationality=n, stay_days=60) for n in NATIONS[1:]),
             *(block(S, 10, region="East", nationality=n, stay_days=60) for n in NATIONS)]
    cols = "COUNT(*) AS n, SUM(stay_days) AS s"
    first, new = run(two(cols, S, "region", "nationality", "WHERE stay_days IN (10, 60)"), world, STRICT, tmp_path)
    assert first[("North",)] == {"n": 112, "s": 2720}
    assert north(new, "s", NATIONS) == [None] * 4 and north(new, "n", NATIONS) == [22, 30, 30, 30]
    assert [new[("East", n)]["s"] for n in NATIONS] == [800] * 4


def test_sum_dominance_is_held_by_the_guard(tmp_path, without_closure):
    """North x NG's SUM is one stay's 20000 of 22000 (sum.dominance withholds it). With the closure off,
    guard.dominance on the remainder (the first's North minus the released sums) withholds every North SUM."""
    world = [*(block(S, 20, region=r, nationality=n, support_eur=100 if n == "NG" else 10000)
               for r in ("North", "East") for n in NATIONS),
             block(S, 1, region="North", nationality="NG", support_eur=20000)]
    first, new = run(two("COUNT(*) AS n, SUM(support_eur) AS s", S, "region", "nationality"), world, STRICT, tmp_path)
    assert first[("North",)]["s"] == 622000
    assert north(new, "s", NATIONS) == [None] * 4 and north(new, "n", NATIONS) == [21, 20, 20, 20]
