"""guard.dominance (spec/disclosure.md 3.2): the dominance rule on the difference of two released sums.

`SUM(support_eur)` per region, then the same query with a WHERE (or the reverse order): the two sums
differ by the sum over the difference's rows, which sum.dominance (2.7) withholds when the same group
is asked as a cell. catalog_strict.toml: shelter_stays (NGO, person key, k = 5, dominance (1, 60)) and
police_stays (police, the same schema, no dominance rule of its own; a UNION ALL takes the strictest).

Each attack has a control where the difference is not dominated and both sums are released. The
expected flags are restated from the spec in tests/rules_ref.py (`difference_dominated`), apart from
compiler/plan/guard_sums.py; the last test runs a guarded pair through real parties (and their ledgers)
and compares the MPC tables with the oracle's.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.plan.guard import signature_of_plan

from conftest import CATALOG, assert_same_result, load_tables, run_mpc
from redteam_data import block, cells, q, releases, world_rows, write_world
from rules_ref import difference_dominated

STRICT_PATH = CATALOG.parent / "catalog_strict.toml"
STRICT = load_catalog(STRICT_PATH)
S, PS = "shelter_stays", "police_stays"
BASE = "SELECT region, COUNT(*) AS n, SUM(support_eur) AS s FROM {src} {where} GROUP BY region;"
SHORT = "WHERE stay_days < 30"
RULE = (1, 60)


def query(where: str = "", src: str = S, cols: str = "COUNT(*) AS n, SUM(support_eur) AS s") -> str:
    return f"SELECT region, {cols} FROM {src} {where} GROUP BY region;"


def stays(long_support, long_persons=None, ds: str = S, short: int = 20, first: int = 1) -> list:
    """`short` stays of 10 days (1000 each, one person each) and five of 60 days in the North; East big."""
    return [block(ds, short, region="North", stay_days=10, support_eur=1000, person_id=lambda i: first + i),
            block(ds, 5, region="North", stay_days=60, support_eur=long_support,
                  person_id=long_persons or (lambda i: first + 600 + i)),
            block(ds, 30, region="East", stay_days=10, support_eur=500, person_id=lambda i: first + 900 + i)]


ONE_DOMINATES = [20000, 10, 10, 10, 10]  # 20000 of 20040


def north(world, queries, tmp_path, col="s") -> list:
    return [cells(p, t)[("North",)][col] for p, _, t in releases(queries, world, STRICT, tmp_path)]


# -- the attack in both orders, and its controls -----------------------------------------------------
def test_total_then_a_where_withholds_the_second_sum(tmp_path):
    total, short = north(stays(ONE_DOMINATES), [query(), query(SHORT)], tmp_path)
    assert total == 40040 and short is None


def test_a_where_then_the_total_withholds_the_total(tmp_path):
    """The other order: the earlier cell lies inside the new one (new minus earlier)."""
    short, total = north(stays(ONE_DOMINATES), [query(SHORT), query()], tmp_path)
    assert short == 20000 and total is None


@pytest.mark.parametrize("order", ["total_first", "where_first"])
def test_an_undominated_difference_is_released(tmp_path, order):
    """Control: five long stays of 4000 each (one person holds 20 % of the difference)."""
    queries = [query(), query(SHORT)] if order == "total_first" else [query(SHORT), query()]
    got = north(stays(4000), queries, tmp_path)
    assert sorted(got) == [20000, 40000]


def test_the_withheld_sum_says_why_and_the_count_stays(tmp_path):
    """Withheld, never dropped: the row is there, its count released, the sum marked with the rules
    that can have withheld it (guard.dominance among them); the plan's leakage report names it."""
    (p1, _, _), (p2, _, t2) = releases([query(), query(SHORT)], stays(ONE_DOMINATES), STRICT, tmp_path)
    row = next(r for r in t2.rows if r[0] == "North")
    assert row[1] == 20 and isinstance(row[2], Suppressed) and row[2].scope == "value"
    assert "guard.dominance" in row[2].rules
    item = next(i for i in p2["leakage"] if i["item"] == "output_flag" and i.get("column") == "s")
    assert "guard.dominance" in item["rules"]
    assert "guard.dominance" in next(i for i in p2["leakage"] if i["item"] == "guard_outcome")["rules"]
    assert "guard.dominance" not in str(p1["leakage"])  # no earlier release: no test


def test_a_count_only_query_has_no_dominance_test():
    """Only a released SUM under a dominance rule gets the test: COUNT(*) alone, or a dataset without a
    dominance rule, keeps its plan."""
    first = compile_source(q(query()), "a", STRICT).plan
    for text, cat in [(query(SHORT, cols="COUNT(*) AS n"), STRICT), (query(SHORT, src=PS), STRICT)]:
        earlier = [signature_of_plan(compile_source(q(text.replace(SHORT, "")), "e", cat).plan)]
        plan = compile_source(q(text), "b", cat, earlier=earlier).plan
        assert not any(n["attrs"].get("rule") == "guard.dominance" for n in plan["nodes"]), text
    assert not any(n["attrs"].get("rule") == "guard.dominance" for n in first["nodes"])


# -- a mean: SUM / COUNT (AVG itself is refused under a dominance rule, IQ318) ----------------------
def test_a_mean_over_a_dominated_difference_is_withheld(tmp_path):
    cols = "COUNT(support_eur) AS c, SUM(support_eur) / COUNT(support_eur) AS mean"
    assert "IQ318" in [d.code for d in compile_source(q(query(cols="AVG(support_eur) AS a")), "q", STRICT).diagnostics]
    got = [cells(p, t)[("North",)] for p, _, t in releases([query(cols=cols), query(SHORT, cols=cols)],
                                                           stays(ONE_DOMINATES), STRICT, tmp_path / "a")]
    assert got[0]["mean"] is not None and got[1]["c"] == 20 and got[1]["mean"] is None
    got = [cells(p, t)[("North",)] for p, _, t in releases([query(cols=cols), query(SHORT, cols=cols)],
                                                           stays(4000), STRICT, tmp_path / "c")]
    assert got[1]["mean"] == 1000 and got[0]["mean"] == 1600


# -- persons: one person's four stays dominate a difference of five rows -----------------------------
def test_dominance_per_person_in_the_difference(tmp_path):
    """Five long stays of 4000: person 500 has four of them (16000 of 20000, 80 %). Per record no stay
    dominates; per person the difference is withheld, as the same group asked as a cell is."""
    world = stays(4000, [500, 500, 500, 500, 601])
    assert north(world, [query("WHERE stay_days >= 30")], tmp_path / "direct") == [None]
    assert north(world, [query(), query(SHORT)], tmp_path / "a")[1] is None
    assert north(stays(4000, [500, 500, 602, 603, 601]), [query(), query(SHORT)], tmp_path / "c")[1] == 20000


# -- an observer's own rows ---------------------------------------------------------------------------
UNION = f"{S} UNION ALL {PS}"


def test_the_complement_of_an_observers_rows_is_tested(tmp_path):
    """Over the NGO's and the police's stays: the difference holds the police's ten long stays of 20000
    (no one dominates it), but the police, a receiver, subtracts its own: the NGO's five long stays are
    one stay's 20000 of 20040. The control gives the NGO five long stays of 4000."""
    police = [block(PS, 20, region="North", stay_days=10, support_eur=1000, person_id=lambda i: 5001 + i),
              block(PS, 10, region="North", stay_days=60, support_eur=20000, person_id=lambda i: 5100 + i),
              block(PS, 30, region="East", stay_days=10, support_eur=500, person_id=lambda i: 5200 + i)]
    queries = [query(src=UNION), query(SHORT, src=UNION)]
    got = north(stays(ONE_DOMINATES) + police, queries, tmp_path / "a")
    assert got[0] == 40040 + 220000 and got[1] is None
    got = north(stays(4000) + police, queries, tmp_path / "c")
    assert got == [40000 + 220000, 40000]


# -- the rule restated (tests/rules_ref.py), on random worlds ----------------------------------------
def _parts(rows: list[dict], in_new, in_old) -> dict[str, tuple[int, int]]:
    """(n largest person totals, sum of absolute values) in cents of the North's rows in both queries,
    the new one's only and the earlier one's only, from the rows themselves."""
    out = {}
    for part, keep in (("both", lambda r: in_new(r) and in_old(r)), ("new_only", lambda r: in_new(r) and not in_old(r)),
                       ("old_only", lambda r: in_old(r) and not in_new(r))):
        per: dict[str, int] = {}
        absolute = 0
        for r in rows:
            if r["region"] == "North" and keep(r):
                cents = round(min(float(r["support_eur"]), 20000) * 100)
                per[r["person_id"]] = per.get(r["person_id"], 0) + cents
                absolute += cents
        out[part] = (sum(sorted(per.values(), reverse=True)[:RULE[0]]), absolute)
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("order", ["total_first", "where_first"])
def test_the_oracle_follows_the_restated_rule(tmp_path, seed, order):
    """Random long stays (values, persons) beside twenty short ones: the second sum is released exactly
    when the restated rules say so: its cell's own dominance, and the dominance of the difference."""
    rnd = random.Random(seed)
    values = [rnd.choice([10, 500, 3000, 8000, 20000]) for _ in range(6)]
    persons = [rnd.choice([500, 501, 600 + i]) for i in range(6)]
    world = [block(S, 20, region="North", stay_days=10, support_eur=1000, person_id=lambda i: i + 1),
             block(S, 6, region="North", stay_days=60, support_eur=values, person_id=persons)]
    queries = [query(), query(SHORT)] if order == "total_first" else [query(SHORT), query()]
    got = north(world, queries, tmp_path)
    rows = world_rows(STRICT, world)[S]
    short, every = (lambda r: int(r["stay_days"]) < 30), (lambda r: True)
    in_new, in_old = (short, every) if order == "total_first" else (every, short)
    own = _parts(rows, in_new, lambda r: True)["both"]  # the second query's cell
    assert got[0] is not None  # the first sum (20 stays of 1000 beside the six) is released in every world
    expected = 100 * own[0] <= RULE[1] * own[1] and not difference_dominated(_parts(rows, in_new, in_old), RULE,
                                                                            new_released=True, old_certain=True)
    assert (got[1] is not None) == expected, (values, persons, got)


# -- through real parties ---------------------------------------------------------------------------
BY_NATIONALITY = "SELECT nationality, COUNT(*) AS n, SUM(support_eur) AS s FROM shelter_stays {} GROUP BY nationality;"


@pytest.mark.mpc
def test_mpc_equals_the_oracle_on_a_guarded_pair(tmp_path):
    """The attack and its control through real parties, each party with its ledger: the second sum
    withheld (attack) or released (control), the tables equal to the oracle's; and the fallback with
    other keys (the rows in one WHERE only, in total: every nationality's sum withheld)."""
    runs = [("attack", stays(ONE_DOMINATES), [query(), query(SHORT)], ("North",), [40040, None]),
            ("control", stays(4000), [query(), query(SHORT)], ("North",), [40000, 20000]),
            ("fallback", stays(ONE_DOMINATES), [query(), BY_NATIONALITY.format(WIDE)], ("NG",), [None, None])]
    for name, world, queries, key, want in runs:
        data = write_world(tmp_path / name, STRICT, world)
        sigs, got = [], []
        for i, text in enumerate(queries):
            plan = compile_source(q(text), f"q{i}", STRICT, earlier=list(sigs)).plan
            table = run_mpc(plan, data, catalog_path=STRICT_PATH, ledger_dir=tmp_path / name / "ledgers")
            assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, STRICT, data)))
            sigs.append(signature_of_plan(plan))
            got.append(cells(plan, table).get(key, {}).get("s"))
        assert got[1] == want[1] and (want[0] is None or got[0] == want[0]), (name, got)


# -- the fallback (guard.rows, 3.3): the relation cannot be decided ---------------------------------
WIDE = "WHERE stay_days - payment_eur < 30"  # payment_eur is 0 on every row: the short stays, by the data


@pytest.mark.parametrize("order", ["total_first", "where_first"])
def test_the_fallback_tests_the_rows_in_one_where_only(tmp_path, order):
    """stay_days - payment_eur < 30 relates to no WHERE over the public domain (a wide decimal in
    arithmetic): the guard counts the rows in exactly one of the two WHEREs, and their contributions."""
    queries = [query(), query(WIDE)] if order == "total_first" else [query(WIDE), query()]
    plans = [p for p, _, _ in releases(queries, stays(4000, ds=S), STRICT, tmp_path / "c")]
    assert [e["mode"] for e in plans[1]["guard"]] == ["rows"]
    world = [*stays(ONE_DOMINATES)]
    assert north(world, queries, tmp_path / "a")[1] is None
    assert north(stays(4000), queries, tmp_path / "c2")[1] is not None


def test_the_fallback_with_other_keys_tests_the_total(tmp_path):
    """By region, then by nationality WHERE stay_days - payment_eur < 30: the rows in one WHERE only are
    tested per new cell and in total (the earlier cells are sums of new ones): every sum is withheld."""
    for world, released in ((stays(ONE_DOMINATES), False), (stays(4000), True)):
        _, (p2, _, t2) = releases([query(), BY_NATIONALITY.format(WIDE)], world, STRICT, tmp_path / str(released))
        assert [(e["mode"], e["scope"]) for e in p2["guard"]] == [("rows", "all")]
        got = cells(p2, t2)[("NG",)]
        assert got["n"] == 50 and (got["s"] == 35000 if released else got["s"] is None)


# -- a margin minus sums withheld for dominance ------------------------------------------------------
def test_a_total_after_a_breakdown_with_a_dominated_cell(tmp_path):
    """SUM by region with the North withheld (one stay of 20000 beside five of 100: sum.dominance), then the
    total: total minus the three released regions would be the North's sum, so the total is withheld.
    Control: a North of six stays of 1000 is released, and so is the total (an empty difference)."""
    others = [block(S, 30, region=r, stay_days=10, support_eur=500, person_id=lambda i, j=j: 1000 * j + i)
              for j, r in enumerate(["East", "South", "West"], 1)]
    total = "SELECT SUM(support_eur) AS s FROM shelter_stays;"  # (the owner allows no row count of all rows)
    for north_support, released in (([20000] + [100] * 5, False), (1000, True)):
        world = others + [block(S, 6, region="North", stay_days=60, support_eur=north_support,
                                person_id=lambda i: 9000 + i)]
        (p1, _, t1), (p2, _, t2) = releases([query(), total], world, STRICT, tmp_path / str(released))
        assert (cells(p1, t1)[("North",)]["s"] is not None) == released
        assert isinstance(t2.rows[0][0], Suppressed) != released
        (_, _, alone), = releases([total], world, STRICT, tmp_path / f"alone{released}")
        assert not isinstance(alone.rows[0][0], Suppressed)  # asked without the earlier release: released


# -- a nullable column: its rows with a value ----------------------------------------------------------
def test_a_nullable_column_under_a_dominance_rule(tmp_path):
    """catalog.toml with a dominance rule (1, 60) on police_victims (k = 10): SUM(debt_eur) by region, then
    WHERE prs_Age < 60. The difference is the ten persons aged 60, one of whom owes 50000 beside nine debts
    of 10 (and ten aged 61 without a debt): withheld; with ten debts of 5000 it is released."""
    text = CATALOG.read_text(encoding="utf-8").replace(
        "[datasets.police_victims.policy]\n", "[datasets.police_victims.policy]\ndominance = { n = 1, k = 60 }\n", 1)
    path = tmp_path / "catalog_dominance.toml"
    path.write_text(text, encoding="utf-8")
    cat = load_catalog(path)
    sums = "SELECT exp_Region, COUNT(debt_eur) AS c, SUM(debt_eur) AS s FROM police_victims {} GROUP BY exp_Region;"
    for old_debts, released in (([50000] + [10] * 9, False), ([5000] * 10, True)):
        world = [block("police_victims", 30, exp_Region="North", prs_Age=30, debt_eur=2000),
                 block("police_victims", 10, exp_Region="North", prs_Age=60, debt_eur=old_debts),
                 block("police_victims", 10, exp_Region="North", prs_Age=61, debt_eur=None)]
        runs = releases([sums.format(""), sums.format("WHERE prs_Age < 60")], world, cat, tmp_path / str(released))
        first, second = (cells(p, t)[("North",)] for p, _, t in runs)
        assert first["s"] is not None and second["c"] == 30
        assert (second["s"] is not None) == released, (first, second)
