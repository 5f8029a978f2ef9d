"""filter.parts (spec/disclosure.md 2.15): which unions of atoms the revealed counts determine.

`derivable` is checked against brute force: a union is determined by the cell's rows and the
parts' counts exactly when no two fillings of the atoms with the same revealed counts give it
different sizes. The end-to-end attacks and their controls are in tests/test_redteam_session6.py.
"""
from __future__ import annotations

from itertools import product

from hypothesis import given, settings, strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.partition import derivable, part_rows

from conftest import CATALOG
from tiers import examples

CAT = load_catalog(CATALOG)


def _determined(atoms, nparts: int, u: frozenset, top: int = 2) -> bool:
    """Brute force over fillings with 0..top rows per atom."""
    seen: dict[tuple, int] = {}
    for sizes in product(range(top + 1), repeat=len(atoms)):
        counts = (sum(sizes),) + tuple(sum(s for a, s in zip(atoms, sizes) if a[i]) for i in range(nparts))
        size = sum(s for a, s in zip(atoms, sizes) if a in u)
        if seen.setdefault(counts, size) != size:
            return False
    return True


@settings(max_examples=examples(60), deadline=None)
@given(st.integers(2, 3).flatmap(lambda j: st.tuples(
    st.just(j), st.lists(st.sampled_from(list(product((0, 1), repeat=j))), min_size=2, unique=True, max_size=6))))
def test_derivable_matches_brute_force(case):
    j, atoms = case
    atoms = sorted(atoms)
    found = set(derivable(atoms, *part_rows(atoms, j), []))
    parts = {frozenset(a for a in atoms if a[i] == side) for i in range(j) for side in (0, 1)}
    for mask in range(1, 2 ** len(atoms) - 1):
        u = frozenset(a for i, a in enumerate(atoms) if mask >> i & 1)
        if u in parts:
            continue
        if u in found:
            assert _determined(atoms, j, u), sorted(u)
        elif _determined(atoms, j, u):  # left out only as a superset of a smaller union found
            assert any(f < u for f in found), sorted(u)


def test_two_disjoint_conditions_determine_the_rest():
    atoms = [(1, 0), (0, 1), (0, 0)]  # young, mid, neither (young and mid is empty by definition)
    assert set(derivable(atoms, *part_rows(atoms, 2), [])) == {frozenset({(0, 0)}), frozenset({(1, 0), (0, 1)})}
    # with young and mid tested (filter.rows), their union holds >= k' anyway: only the rest is left
    assert derivable(atoms, *part_rows(atoms, 2), [frozenset({(1, 0)}), frozenset({(0, 1)})]) == [frozenset({(0, 0)})]


def test_overlapping_parts_determine_nothing_new():
    """Two nullable columns: every atom possible; n, COUNT(x), COUNT(y) leave a free direction."""
    atoms = list(product((0, 1), repeat=2))
    assert derivable(atoms, *part_rows(atoms, 2), []) == []


def _rules(text: str) -> list[str]:
    plan = compile_source(text, "q.iq", CAT).plan
    return [n["attrs"]["rule"] for n in plan["nodes"] if n["attrs"].get("rule") == "filter.parts"]


HEAD = "@purpose research\nSELECT exp_Region, COUNT(*) AS n, {} FROM police_victims GROUP BY exp_Region;"


def test_rule_only_where_a_new_group_is_determined():
    assert _rules(HEAD.format("COUNT(*) FILTER (WHERE prs_Age < 40) AS a, "
                              "COUNT(*) FILTER (WHERE prs_Age >= 40 AND prs_Age < 77) AS b"))
    assert not _rules(HEAD.format("COUNT(*) FILTER (WHERE prs_Age < 40) AS a"))  # 2.13 alone
    assert not _rules(HEAD.format("COUNT(hours_worked_week) AS h, COUNT(debt_eur) AS d"))  # counts.pair alone
    assert not _rules(HEAD.format("AVG(minor_at_recruitment) AS s"))


def test_a_where_that_empties_the_rest_needs_no_test():
    """WHERE prs_Age < 77 AND prs_Age IS NOT NULL leaves no row outside young and mid: nothing to test."""
    text = HEAD.format("COUNT(*) FILTER (WHERE prs_Age < 40) AS a, COUNT(*) FILTER (WHERE prs_Age >= 40) AS b")
    text = text.replace("GROUP BY", "WHERE prs_Age < 77 AND prs_Age IS NOT NULL GROUP BY")
    assert not _rules(text)


def test_sums_over_few_values_are_counts():
    """SUM/AVG beside COUNT over two values of a column (VAR over three) determine each value's rows:
    tested; over the column's whole domain nothing is (and the column is not even analysed)."""
    two = HEAD.format("SUM(prs_Age) AS s").replace("GROUP BY", "WHERE prs_Age IN (20, 77) GROUP BY")
    three = HEAD.format("AVG(prs_Age) AS a, VAR(prs_Age) AS v").replace("GROUP BY", "WHERE prs_Age IN (20, 50, 77) GROUP BY")
    wide = HEAD.format("SUM(prs_Age) AS s, VAR(prs_Age) AS v")
    assert _rules(two) and _rules(three)
    assert not _rules(wide)
    assert not _rules(HEAD.format("SUM(prs_Age) AS s").replace("GROUP BY", "WHERE prs_Age >= 20 GROUP BY"))


def test_huge_coefficients_take_the_exact_rational_path():
    """Rows whose scaled entries could overflow int64 are searched in rationals, with the same answers."""
    from insightql.compiler.plan.partition import _rref, _zero_one_combinations
    assert sorted(_zero_one_combinations(_rref([[1, 0, 1], [0, 1, 1]]), 3)) == [[0, 0, 0], [0, 1, 1], [1, 0, 1]]
    huge = 2 ** 70  # entries past int64 once scaled: searched in rationals; no 0/1 choice but none meets them
    assert _zero_one_combinations(_rref([[1, huge]]), 2) == [[0, 0]]
    assert _zero_one_combinations(_rref([[huge, 1]]), 2) == [[0, 0]]  # 1/huge: a huge common denominator
    assert _zero_one_combinations(_rref([[2, 0, 2], [0, 3, 3]]), 3) == [[0, 0, 0], [0, 1, 1], [1, 0, 1]]
