"""Red team on guard.dominance's remaining gaps (spec/disclosure.md 6.14), on the plaintext oracle.

(a) the new sums' flags are read before the guard's own tests; (c) an earlier sum counted as surely
released by its cell and dominance rules, not by its own release's guard (closed since: the earlier
release's guard is recomputed, compiler/plan/guard_earlier.py); (e) a new query over
datasets without a dominance rule is not tested against an earlier release that had one.

What the attacks found (each test below states it):
* (a) and (c) leave no dominated difference of TWO releases: a sum withheld later is the
  receiver's difference plus that sum's rows, and sum.dominance already held on the sum (the
  dominance rule is subadditive: the n largest of a union are at most the sum of each part's n
  largest). What leaks is a sum withheld for a THIRD release, given back as a difference of the
  other two -- exactly as a cell the row guard withholds for one earlier release came back as a
  difference of >= k rows from another. Reading the final flags, or an earlier release's own guard,
  would not change a flag in these attacks. The forward order (a) is closed by guard.closure
  (tests/test_guard_closure.py): a sum the guard withholds takes its component's sums with it.
* (e) leaks nothing where the earlier release's own sum.dominance tested the rows the new query
  does not read (its receivers include the new query's owners, as by default): the difference
  always holds whole earlier cells of those rows.
* Found on the way, and closed: guard.dominance tested the complements of the LARGEST holdings only,
  as the row tests do; dominance is not monotone in the rows, so it now tests every holding, as
  sum.dominance does (test_the_difference_on_a_complement_that_is_not_the_smallest).
"""
from __future__ import annotations

from conftest import CATALOG
from redteam_data import NATIONS, block, cells, releases, stays_by_nationality
from insightql.compiler.check.catalog import load_catalog

STRICT = load_catalog(CATALOG.parent / "catalog_strict.toml")
S, PS = "shelter_stays", "police_stays"


def by(keys: str, where: str = "", src: str = S, cols: str = "SUM(support_eur) AS s") -> str:
    return f"SELECT {keys}, {cols} FROM {src} {where} GROUP BY {keys};"


def dominated(values: list[float], n: int = 1, k: int = 60) -> bool:
    """sum.dominance (n, k%) fails on these contributions (one person each)."""
    return 100 * sum(sorted(values, reverse=True)[:n]) > k * sum(values)


def others(cells_: dict) -> float:
    """The released North sums of the nationalities other than NG."""
    return sum(cells_[("North", n)]["s"] for n in NATIONS[1:])


ONE_DOMINATES = [20000, 10, 10, 10, 10]


# -- (a) the new flags read before the guard's tests -----------------------------------------------------
def test_a_the_receivers_difference_with_the_final_flags_is_not_dominated(tmp_path):
    """SUM by region; by region and nationality WHERE stay_days < 30; by region and nationality. The
    third's North x NG is withheld by the guard against the second, after the test against the first
    read it as released. The difference the receiver forms against the first with the FINAL flags is
    that sum's rows, which passed sum.dominance themselves (40040 of which 20000: 50 %): reading the
    final flags would release the same. What it gave back (spec 6.14 before guard.closure) is closed
    by guard.closure: the withheld sum takes the North's other sums with it, and the difference with
    the final flags is the whole North (tests/test_guard_closure.py)."""
    world = stays_by_nationality(ONE_DOMINATES)
    e1, e2, new = (cells(p, t) for p, _, t in releases(
        [by("region"), by("region, nationality", "WHERE stay_days < 30"), by("region, nationality")],
        world, STRICT, tmp_path))
    assert all(new[("North", n)]["s"] is None for n in NATIONS)
    rest = e1[("North",)]["s"]  # the difference with the final flags: nothing of the North released
    assert rest == 400040 and not dominated([1000] * 80 + ONE_DOMINATES + [10000] * 30)


# -- (c) "surely released" ignores the earlier release's own guard ---------------------------------------
def test_c_an_earlier_sum_withheld_by_its_own_guard(tmp_path):
    """The mirror order: by region and nationality WHERE stay_days < 30; by region and nationality (its
    North x NG withheld by the guard against the first); then by region. The third's North minus the
    second's other nationalities would be that sum's rows, 40040 with one stay of 20000 (50 %: not
    dominated), and minus the first's North x NG the dominated 20040. The third now recomputes the
    second's guard against the first (guard_earlier.own_sums): the North x NG sum may have been withheld
    by it, so the North, whose difference holds it, is withheld (tests/test_guard_earlier_outcome.py)."""
    world = stays_by_nationality(ONE_DOMINATES)
    e0, e1, new = (cells(p, t) for p, _, t in releases(
        [by("region, nationality", "WHERE stay_days < 30"), by("region, nationality"), by("region")],
        world, STRICT, tmp_path))
    assert e1[("North", "NG")]["s"] is None and others(e1) == 360000 and e0[("North", "NG")]["s"] == 20000
    assert new[("North",)]["s"] is None  # was 400040: 400040 - 360000 - 20000 = 20040, one stay's 20000


# -- (e) a new query without a dominance rule after one with a rule -------------------------------------
def test_e_a_rule_free_query_after_a_union_with_a_rule(tmp_path):
    """SUM by region over the NGO's and the police's stays (the NGO's dominance rule applies to the
    union), then the police's stays alone (no rule, no guard.dominance). The difference is the NGO's
    part of the earlier cell, which the earlier release's own sum.dominance tested on the police's
    complement (the police may receive it): with one NGO stay dominating its part, the earlier sum is
    withheld, and there is nothing to subtract from; with an undominated NGO part both are released."""
    union = f"{S} UNION ALL {PS}"
    police = [block(PS, 20, region="North", stay_days=10, support_eur=5000)]
    for ngo_long, dominating in ((ONE_DOMINATES, True), ([4000] * 5, False)):
        world = police + [block(S, len(ngo_long), region="North", stay_days=60, support_eur=ngo_long)]
        e, new = (cells(p, t) for p, _, t in releases([by("region", src=union), by("region", src=PS)],
                                                      world, STRICT, tmp_path / str(dominating)))
        assert new[("North",)]["s"] == 100000
        if dominating:
            assert e[("North",)]["s"] is None  # the police's complement is dominated: nothing to subtract
        else:
            assert e[("North",)]["s"] - new[("North",)]["s"] == 20000 and not dominated(ngo_long)


# -- found here: the complements of every holding, not only the largest ----------------------------------
OWNERS = ["a", "x", "y", "z"]  # a and x receive; y and z do not; four parties: t = 1


def four_owners(tmp_path):
    """A catalog of four owners with one schema, the dominance rule (1, 60) on a's stays. The holdings an
    observer can have: every set with a or x and at most one of y, z; the largest are {a, x, y} and
    {a, x, z}, whose complements are z's and y's rows alone. x's rows are in no largest complement."""
    cols = ('person_id = { type = "key", bits = 48 }\n'
            'region = { type = "category", domain = ["North", "East"] }\n'
            'stay_days = { type = "integer", min = 0, max = 365, role = "measure", clamp = [0, 180] }\n'
            'support_eur = { type = "integer", min = 0, max = 100000, role = "measure", clamp = [0, 20000] }\n')
    text = 'name = "four"\n' + "".join(f"[parties.{o}]\n" for o in OWNERS)
    for o in OWNERS:
        text += (f'[datasets.{o}_stays]\nowner = "{o}"\nmax_rows = 1000\nperson_key = "person_id"\n'
                 f'[datasets.{o}_stays.policy]\nmin_group_size = 5\nreceivers = ["a", "x"]\npurposes = ["research"]\n'
                 + ('dominance = { n = 1, k = 60 }\n' if o == "a" else "")
                 + f"[datasets.{o}_stays.columns]\n{cols}")
    path = tmp_path / "four.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalog(path)


def test_the_difference_on_a_complement_that_is_not_the_smallest(tmp_path):
    """SUM by region over the four owners' stays, then WHERE stay_days < 30. The difference (the long
    stays): a's ten of 10000, x's one of 20000, y's and z's five of 10 each: 20000 of 120100 (17 %) in
    all, and y's or z's alone pass. a, a receiver, subtracts its own: 20000 of 20100, one of x's stays.
    sum.dominance tests every holding's complement; the guard tested the largest only (the rule is not
    monotone: a larger complement can be dominated where the smaller ones are not). Control: x's long
    stay of 10."""
    cat = four_owners(tmp_path)
    union = " UNION ALL ".join(f"{o}_stays" for o in OWNERS)
    for x_long, released in ((20000, False), (10, True)):
        world = [*(block(f"{o}_stays", 20, region="North", stay_days=10, support_eur=1000) for o in OWNERS),
                 block("a_stays", 10, region="North", stay_days=60, support_eur=10000),
                 block("x_stays", 1, region="North", stay_days=60, support_eur=x_long),
                 *(block(f"{o}_stays", 5, region="North", stay_days=60, support_eur=10) for o in ("y", "z"))]
        queries = [f"@receivers a, x\n{by('region', w, src=union)}" for w in ("", "WHERE stay_days < 30")]
        first, second = (cells(p, t) for p, _, t in releases(queries, world, cat, tmp_path / str(released)))
        assert first[("North",)]["s"] is not None and (second[("North",)]["s"] is not None) == released
