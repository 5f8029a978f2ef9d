"""The differencing guard's triple tests (compiler/plan/guard_split.py, spec/disclosure.md 3.2): a
cell split by two earlier releases. On the plaintext oracle, and once through real parties."""
from __future__ import annotations

import itertools

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan.guard import signature_of_plan

from conftest import CATALOG, assert_same_result, load_tables, run_mpc
from redteam_data import block, cells, q, releases, write_world

CAT = load_catalog(CATALOG)
K = CAT.datasets["police_victims"].policy.min_group_size
P = "police_victims"
REGIONS = ["North", "East", "South", "West"]
NATIONS = ["NG", "RO", "BG", "VN", "UA", "AL", "CN", "BR", "NL", "OTHER"]  # the whole domain
TOTAL = "SELECT COUNT(*) AS n FROM police_victims;"
SE = "SELECT COUNT(*) AS n FROM police_victims WHERE exp_Type = 'SexualExploitation';"
OTHER_BY_REGION = "SELECT exp_Region, COUNT(*) AS n FROM police_victims WHERE exp_Type <> 'SexualExploitation' " \
                  "GROUP BY exp_Region;"
SPLIT = [TOTAL, SE, OTHER_BY_REGION]


def run(queries, world, folder) -> list[dict]:
    return [cells(plan, table) for plan, _, table in releases(queries, world, CAT, folder)]


def split_world(east: int) -> list:
    """30 sexual exploitation in the North; other types: North 40, East `east`, South and West 15."""
    return [block(P, 30, exp_Region="North", exp_Type="SexualExploitation"),
            block(P, 40, exp_Region="North", exp_Type="Other"), block(P, east, exp_Region="East", exp_Type="Other"),
            block(P, 15, exp_Region="South", exp_Type="Other"), block(P, 15, exp_Region="West", exp_Type="Other")]


def derivable(got: list[dict], order) -> list[int]:
    """The values of the total, the SE total and the released regions, by query."""
    total, se, other = (got[order.index(i)] for i in range(3))
    return [total[()]["n"], se[()]["n"], *(other[(r,)]["n"] for r in REGIONS)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_total_split_by_two_releases_is_closed(order, tmp_path):
    """East holds 3: total - SE - North - South - West would be 3. Whichever comes last is withheld
    (or the East's region cells are), so the sum is never known."""
    got = run([SPLIT[i] for i in order], split_world(3), tmp_path)
    values = derivable(got, order)
    assert values[3] is None  # East: 3 rows, suppressed
    assert None in values[:3] + values[4:]  # something else withheld too: 3 is not derivable


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_the_control_is_released(order, tmp_path):
    """East 12 (>= k): every cell released in every order; the arithmetic only repeats the East."""
    got = run([SPLIT[i] for i in order], split_world(12), tmp_path)
    assert derivable(got, order) == [112, 30, 40, 12, 15, 15]


def test_total_then_regions_then_nationalities(tmp_path):
    """A total, by region, by nationality (the region and nationality cells cross: no triple test)."""
    world = [block(P, 12, exp_Region=r, prs_Nationality=n, exp_Type="Other") for r in REGIONS for n in NATIONS]
    total, region, nation = run([TOTAL, "SELECT exp_Region, COUNT(*) AS n FROM police_victims GROUP BY exp_Region;",
                                 "SELECT prs_Nationality, COUNT(*) AS n FROM police_victims GROUP BY prs_Nationality;"],
                                world, tmp_path)
    assert total[()]["n"] == 12 * 4 * len(NATIONS)
    assert all(c["n"] == 12 * len(NATIONS) for c in region.values())
    assert all(c["n"] == 12 * 4 for c in nation.values()) and len(nation) == len(NATIONS)


def test_total_then_one_type_then_its_regions(tmp_path):
    """A total, WHERE type = SE, by region WHERE type = SE: every cell released."""
    world = [block(P, 12, exp_Region=r, exp_Type=t) for r in REGIONS for t in ("SexualExploitation", "Other")]
    total, se, regions = run([TOTAL, SE, "SELECT exp_Region, COUNT(*) AS n FROM police_victims WHERE exp_Type = "
                              "'SexualExploitation' GROUP BY exp_Region;"], world, tmp_path)
    assert (total[()]["n"], se[()]["n"]) == (96, 48)
    assert [regions[(r,)]["n"] for r in REGIONS] == [12] * 4


@pytest.mark.mpc
def test_mpc_equals_the_oracle_on_the_closed_split(tmp_path):
    """The leak's three releases through real parties, each with its ledger, the split last: each
    table equals the oracle's, and the regions inside the total are withheld."""
    data = write_world(tmp_path / "world", CAT, split_world(3))
    sigs = []
    for i, text in enumerate(SPLIT):
        plan = compile_source(q(text), f"q{i}", CAT, earlier=list(sigs)).plan
        table = run_mpc(plan, data, catalog_path=CATALOG, ledger_dir=tmp_path / "ledgers")
        assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, CAT, data)))
        sigs.append(signature_of_plan(plan))
    assert [cells(plan, table)[(r,)]["n"] for r in REGIONS] == [None] * 4
