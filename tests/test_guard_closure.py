"""guard.closure (spec/disclosure.md 3.2): what the differencing guard withholds takes its component
with it, so it cannot come back from another earlier release (before this rule: spec 6.1 and 6.14).

Each attack is three releases on the plaintext oracle (tests/redteam_data.py), the last compared with
both earlier ones: the guard withholds one of its cells (a value, a sum) against one, and without
the closure the other gives it back as a difference that its own tests allowed. The tests assert the
component is withheld and the derivation no longer works, and, with the closure switched off
(`without_closure`), that the world really is the attack. Controls: the closure does not fire where
the guard withheld nothing, nor for a cell the cell rule suppressed; a query without guard entries
gets no closure node. One real-party run checks MPC against the oracle.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan import guard

from conftest import CATALOG, assert_same_result, load_tables, run_mpc
from redteam_data import NATIONS, block, cells, compile_seq, q, releases, signature_of_plan, write_world

STRICT_PATH = CATALOG.parent / "catalog_strict.toml"
STRICT = load_catalog(STRICT_PATH)
K = STRICT.datasets["shelter_stays"].policy.min_group_size
S, PS = "shelter_stays", "police_stays"
REGIONS = ["North", "East", "South", "West"]
BY = "SELECT {k}, {c} FROM {s} {w} GROUP BY {k};"


def three(cols: str, src: str = S, short: str = "WHERE stay_days < 30") -> list[str]:
    """By region; by region and nationality WHERE `short`; by region and nationality."""
    return [BY.format(k="region", c=cols, s=src, w=""), BY.format(k="region, nationality", c=cols, s=src, w=short),
            BY.format(k="region, nationality", c=cols, s=src, w="")]


def stays(ng_long: list[int], ds: str = S) -> list:
    """North: per nationality 20 short stays (10 days, 1000 each); NG's long stays (60 days) of
    `ng_long`, the other nationalities' ten of 10000. East: per nationality 20 short stays of 500 and
    five long ones of 2000, so each East cell differs from its short stays by k rows."""
    return [*(block(ds, 20, region="North", nationality=n, stay_days=10, support_eur=1000) for n in NATIONS),
            block(ds, len(ng_long), region="North", nationality="NG", stay_days=60, support_eur=ng_long),
            *(block(ds, 10, region="North", nationality=n, stay_days=60, support_eur=10000) for n in NATIONS[1:]),
            *(block(ds, 20, region="East", nationality=n, stay_days=10, support_eur=500) for n in NATIONS),
            *(block(ds, 5, region="East", nationality=n, stay_days=60, support_eur=2000) for n in NATIONS)]


@pytest.fixture
def without_closure(monkeypatch):
    """Compile with the closure switched off (the guard's tests alone), to show the attack works."""
    monkeypatch.setattr(guard, "close", lambda builder, before, after, what: after)


def run(queries: list[str], world, folder: Path) -> list[dict]:
    return [cells(p, t) for p, _, t in releases(queries, world, STRICT, folder)]


def column(table: dict, col: str, region: str) -> list:
    return [table[(region, n)][col] for n in NATIONS]


def closure_nodes(plan: dict) -> list[dict]:
    return [n for n in plan["nodes"] if n["attrs"].get("rule") == "guard.closure"]


# -- the attacks of spec 6.1 and 6.14, closed ----------------------------------------------------------
def test_a_withheld_cell_takes_its_component_with_it(tmp_path):
    """The third's North x NG differs from the second's by NG's two long stays (guard.contains). The
    first's North joins the four North cells: all four are withheld, so the first's North minus the
    third's other nationalities no longer gives it back; the East keeps its cells."""
    e1, e2, new = run(three("COUNT(*) AS n"), stays([1000, 1000]), tmp_path)
    assert e1[("North",)]["n"] == 112 and e2[("North", "NG")]["n"] == 20
    assert column(new, "n", "North") == [None] * 4
    assert column(new, "n", "East") == [25] * 4


def test_without_the_closure_the_cell_comes_back(tmp_path, without_closure):
    """The same releases with the closure switched off: the leak the closure closes (spec 6.1 before it)."""
    e1, e2, new = run(three("COUNT(*) AS n"), stays([1000, 1000]), tmp_path)
    assert new[("North", "NG")]["n"] is None
    back = e1[("North",)]["n"] - sum(new[("North", x)]["n"] for x in NATIONS[1:])
    assert back == 22 and back - e2[("North", "NG")]["n"] == 2 < K


ONE_DOMINATES = [20000, 10, 10, 10, 10]  # NG's long stays: 20000 of 20040


def test_a_withheld_sum_takes_the_sums_of_its_component_with_it(tmp_path):
    """SUM(support_eur): the third's North x NG minus the second's is 20000 of 20040 (guard.dominance
    withholds it); every North sum is withheld with it, the counts and the East's sums stay."""
    e1, e2, new = run(three("COUNT(*) AS n, SUM(support_eur) AS s"), stays(ONE_DOMINATES), tmp_path)
    assert e1[("North",)]["s"] == 80000 + 20040 + 300000 and e2[("North", "NG")]["s"] == 20000
    assert column(new, "s", "North") == [None] * 4
    assert column(new, "n", "North") == [25, 30, 30, 30]
    assert column(new, "s", "East") == [20000] * 4


def test_without_the_closure_the_sum_comes_back(tmp_path, without_closure):
    e1, e2, new = run(three("COUNT(*) AS n, SUM(support_eur) AS s"), stays(ONE_DOMINATES), tmp_path)
    assert new[("North", "NG")]["s"] is None
    back = e1[("North",)]["s"] - sum(new[("North", x)]["s"] for x in NATIONS[1:])
    assert back == 40040 and back - e2[("North", "NG")]["s"] == 20040  # one stay's 20000: 99.8 %


def test_a_later_query_with_the_same_cells_after_a_closed_release(tmp_path):
    """A fourth release with the third's cells by definition (stay_days <= 365 is every stay): the
    recomputation of the third's guard (guard_earlier) reruns its tests, not its closure, so the third's
    North x RO may read as surely released there; the fourth's own tests against the second and its
    own closure withhold its North again, and the East stays."""
    queries = three("COUNT(*) AS n") + [BY.format(k="region, nationality", c="COUNT(*) AS n", s=S,
                                                 w="WHERE stay_days <= 365")]
    *_, third, fourth = run(queries, stays([1000, 1000]), tmp_path)
    assert column(third, "n", "North") == column(fourth, "n", "North") == [None] * 4
    assert column(fourth, "n", "East") == [25] * 4


# -- groups that cross (guard.margin): the component is every region ----------------------------------
CROSS = ["SELECT nationality, COUNT(*) AS n FROM shelter_stays GROUP BY nationality;",
         "SELECT region, COUNT(*) AS n FROM shelter_stays WHERE stay_days < 30 GROUP BY region;",
         "SELECT region, COUNT(*) AS n FROM shelter_stays GROUP BY region;"]


def regions_world() -> list:
    """Every region 20 short stays per nationality; the North two long ones (NG), the others five each."""
    return [*(block(S, 20, region=r, nationality=n, stay_days=10) for r in REGIONS for n in NATIONS),
            block(S, 2, region="North", nationality="NG", stay_days=60),
            *(block(S, 5, region=r, nationality="RO", stay_days=60) for r in REGIONS[1:])]


def test_cells_that_cross_join_one_component(tmp_path):
    """By nationality, by region WHERE stay_days < 30, by region: the North differs from the second's by
    two long stays; every nationality crosses every region, so all regions are one component and all
    are withheld (else the nationalities' sum minus three regions is the North)."""
    by_nat, _, new = run(CROSS, regions_world(), tmp_path)
    assert all(by_nat[(n,)]["n"] is not None for n in NATIONS)
    assert [new[(r,)]["n"] for r in REGIONS] == [None] * 4


def test_cells_that_cross_without_the_closure(tmp_path, without_closure):
    by_nat, short, new = run(CROSS, regions_world(), tmp_path)
    assert new[("North",)]["n"] is None and all(new[(r,)]["n"] is not None for r in REGIONS[1:])
    north = sum(by_nat[(n,)]["n"] for n in NATIONS) - sum(new[(r,)]["n"] for r in REGIONS[1:])
    assert north - short[("North",)]["n"] == 2 < K


# -- a subgroup (FILTER) value -----------------------------------------------------------------------
LONG = "COUNT(*) AS n, COUNT(*) FILTER (WHERE stay_days >= 30) AS long"
FILTERED = [BY.format(k="region", c=LONG, s=S, w=""),
            BY.format(k="region, nationality", c="COUNT(*) AS n", s=S, w="WHERE stay_days >= 30 AND stay_days < 50"),
            BY.format(k="region, nationality", c=LONG, s=S, w="")]


def filter_world() -> list:
    """North: 20 short stays per nationality; NG ten of 40 days and two of 60; the others ten of 60.
    East: 20 short, five of 40 and five of 60 days per nationality."""
    return [*(block(S, 20, region=r, nationality=n, stay_days=10) for r in ("North", "East") for n in NATIONS),
            block(S, 10, region="North", nationality="NG", stay_days=40),
            block(S, 2, region="North", nationality="NG", stay_days=60),
            *(block(S, 10, region="North", nationality=n, stay_days=60) for n in NATIONS[1:]),
            *(block(S, 5, region="East", nationality=n, stay_days=d) for n in NATIONS for d in (40, 60))]


def test_a_withheld_subgroup_takes_the_subgroups_of_its_component_with_it(tmp_path):
    """The third's North x NG long stays (12) minus the second's 30-49 days (10) are two: that value is
    withheld (the subgroup against an earlier cell), and so is every North long count; the counts of the
    cells stay, as do the East's long counts."""
    e1, e2, new = run(FILTERED, filter_world(), tmp_path)
    assert e1[("North",)]["long"] == 42 and e2[("North", "NG")]["n"] == 10
    assert column(new, "long", "North") == [None] * 4
    assert column(new, "n", "North") == [32, 30, 30, 30]
    assert column(new, "long", "East") == [10] * 4


def test_a_withheld_subgroup_without_the_closure(tmp_path, without_closure):
    e1, e2, new = run(FILTERED, filter_world(), tmp_path)
    assert new[("North", "NG")]["long"] is None
    back = e1[("North",)]["long"] - sum(new[("North", x)]["long"] for x in NATIONS[1:])
    assert back == 12 and back - e2[("North", "NG")]["n"] == 2 < K


# -- an observer's complement ---------------------------------------------------------------------------
UNION = f"{S} UNION ALL {PS}"


def union_world() -> list:
    """Per region and nationality, the NGO's 20 short and 10 long stays and the police's 5 short and
    10 long; but in the North x NG the NGO has two long stays only."""
    out = []
    for r in ("North", "East"):
        for n in NATIONS:
            out += [block(S, 20, region=r, nationality=n, stay_days=10),
                    block(S, 2 if (r, n) == ("North", "NG") else 10, region=r, nationality=n, stay_days=60),
                    block(PS, 5, region=r, nationality=n, stay_days=10),
                    block(PS, 10, region=r, nationality=n, stay_days=60)]
    return out


def test_a_cell_withheld_on_an_observers_complement_closes_too(tmp_path):
    """North x NG differs from the second's by 12 long stays, 10 of them the police's own: the test on
    the police's complement (the NGO's two) withholds it, and the closure reads that flag: every North
    cell is withheld."""
    _, e2, new = run(three("COUNT(*) AS n", UNION), union_world(), tmp_path)
    assert e2[("North", "NG")]["n"] == 25
    assert column(new, "n", "North") == [None] * 4
    assert column(new, "n", "East") == [45] * 4


def test_an_observers_complement_without_the_closure(tmp_path, without_closure):
    e1, e2, new = run(three("COUNT(*) AS n", UNION), union_world(), tmp_path)
    assert new[("North", "NG")]["n"] is None
    back = e1[("North",)]["n"] - sum(new[("North", x)]["n"] for x in NATIONS[1:])
    police_long = 10  # the police's own long stays in North x NG
    assert back - e2[("North", "NG")]["n"] - police_long == 2 < K


# -- controls: the closure fires only on what the guard withheld ----------------------------------------
def everyone(n: int = 20) -> list:
    """Every region x nationality 20 short and 20 long stays, of each dataset."""
    return [block(ds, n, region=r, nationality=x, stay_days=d)
            for ds in (S, PS) for r in REGIONS for x in NATIONS for d in (10, 60)]


TOTAL = f"SELECT COUNT(*) AS n FROM {PS};"  # the police allow a total (the NGO does not: IQ323)
WORKFLOWS = {
    "total_then_breakdown": [TOTAL, BY.format(k="region", c="COUNT(*) AS n", s=PS, w="")],
    "breakdown_then_total": [BY.format(k="region", c="COUNT(*) AS n", s=PS, w=""), TOTAL],
    "second_breakdown": [TOTAL, BY.format(k="region", c="COUNT(*) AS n", s=PS, w=""),
                         BY.format(k="region, nationality", c="COUNT(*) AS n, SUM(support_eur) AS s", s=PS, w="")],
    "three_releases": three("COUNT(*) AS n, SUM(support_eur) AS s"),
}


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_nothing_withheld_by_the_guard_nothing_closed(tmp_path, name, monkeypatch):
    """Where the guard withholds nothing, every cell, value and sum of the last release is released,
    and the tables equal those compiled without the closure."""
    queries = WORKFLOWS[name]
    (*_, (plan, _, table)) = releases(queries, everyone(), STRICT, tmp_path / "on")
    got = cells(plan, table)
    assert all(v is not None for cell in got.values() for v in cell.values()), got
    if name != "breakdown_then_total":  # a total is one cell: no component of two
        assert closure_nodes(plan), "the last release has a component of cells: the test is not vacuous"
    monkeypatch.setattr(guard, "close", lambda builder, before, after, what: after)
    (*_, (_, _, off)) = releases(queries, everyone(), STRICT, tmp_path / "off")
    assert cells(plan, off) == got


def test_a_cell_the_cell_rule_suppressed_does_not_close(tmp_path):
    """By region, then by region and nationality: North x VN and x OTHER hold 3 rows each (cell.rows);
    the first's North minus the released NG and RO is their 6 >= k rows, so the guard withholds
    nothing and the closure leaves NG and RO released."""
    world = [block(S, 20, region="North", nationality="NG"), block(S, 20, region="North", nationality="RO"),
             block(S, 3, region="North", nationality="VN"), block(S, 3, region="North", nationality="OTHER")]
    (_, _, _), (plan, _, table) = releases(three("COUNT(*) AS n")[::2], world, STRICT, tmp_path)
    assert closure_nodes(plan)
    assert column(cells(plan, table), "n", "North") == [20, 20, None, None]


def test_no_guard_entry_no_closure_node():
    """A first query, and a query whose guard relates every new cell to its own earlier cell only
    (components of one cell), compile without a closure node: their plans are as before."""
    first = compile_source(q(three("COUNT(*) AS n")[2]), "q0", STRICT).plan
    assert "guard" not in first and not closure_nodes(first)
    res = compile_seq(three("COUNT(*) AS n")[1:], STRICT)
    assert res[1].plan["guard"] and not closure_nodes(res[1].plan)


def test_the_rule_is_reported():
    """The closure's test is a release rule: named in the plan's leakage report of a guarded query."""
    res = compile_seq(three("COUNT(*) AS n"), STRICT)
    plan = res[2].plan
    assert closure_nodes(plan)
    item = next(i for i in plan["leakage"] if i["item"] == "guard_outcome")
    assert "guard.closure" in item["rules"]


# -- through real parties ---------------------------------------------------------------------------------
@pytest.mark.mpc
def test_mpc_equals_the_oracle_on_the_closed_attack(tmp_path):
    """The three releases of the cell attack through real parties, each party with its ledger: each table
    equals the oracle's, and the third withholds every North cell."""
    data = write_world(tmp_path / "world", STRICT, stays([1000, 1000]))
    sigs = []
    for i, text in enumerate(three("COUNT(*) AS n")):
        plan = compile_source(q(text), f"q{i}", STRICT, earlier=list(sigs)).plan
        table = run_mpc(plan, data, catalog_path=STRICT_PATH, ledger_dir=tmp_path / "ledgers")
        assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, STRICT, data)))
        sigs.append(signature_of_plan(plan))
    assert column(cells(plan, table), "n", "North") == [None] * 4
    assert column(cells(plan, table), "n", "East") == [25] * 4
