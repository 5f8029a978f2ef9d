"""Red team: attacks on the release rules, end to end, each with a control (spec/disclosure.md 1.3).

The observer of spec/disclosure.md 1.1 knows its own organisations' rows, every earlier release
over the same datasets, the catalog and the plan, and the sizes record linkage reveals. Each case
below is one attack by such an observer:

* a small world (tests/redteam_data.py) in which a group of 1..k-1 rows or persons exists;
* the queries the observer runs, in order: each later query is compiled against the earlier
  releases (the ledger), exactly as `iq compile --ledger` / `iq run --ledger-dir` do;
* `derive`: what the observer computes from the released tables and its own rows (a released
  total minus its own rows, before minus after, rows minus distinct, ...). A needed value that is
  suppressed or withheld makes the derivation None. The test asserts that no derived number is a
  group of 1..k-1;
* where the spec claims indistinguishability (padding, `AND NOT` a person, rounding), a second
  world that differs only in the target: the two views (every value, suppression mark, reason and
  note) must be identical;
* a CONTROL: an honest query on data with big groups that must still release the expected values,
  so a rule that suppresses everything fails.

The attacks run on the plaintext oracle (fast); every class also runs through real parties
(`@pytest.mark.mpc`: `run_mpc`, or `iq run` / `iq party` with ledgers for the guard). A case whose
attack the code lets through although the spec says it is closed is a strict xfail whose reason
starts with "LEAK:" (the module's LEAKS list):

Closed since (the cases stay, as attacks with controls): under rounding, SUM of a measure that WHERE
fixes to 1 was an exact count (exact_count_beside_its_rounded_release,
exact_counts_through_sums_of_a_fixed_measure): sums are now rounded to b times one row's largest value;
the differencing guard tested a difference on all rows only (guard_difference_minus_own_rows,
union_release_then_one_owner_alone): it now tests every observer's complement too; guard.rows with
other group keys tested the WHERE difference in total only (fallback_guard_counts_the_difference_in_total):
it now tests each new cell's own difference as well; JOIN plans carried no guard at all: a JOIN whose
pair the ledger records with another WHERE or grouping is now refused (IQ409,
test_join_differencing_is_refused, test_join_differencing_through_iq_run_with_ledgers).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.guard import coverage, signature_of_plan
from insightql.compiler.plaintext.linkage_local import link_rows
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.runtime.governance.ledger import Ledger

from conftest import CATALOG, Parties, assert_same_result, load_tables, printed_lines, run_mpc
from redteam_data import Block, block, cells, count_rows, q, releases, view, write_world

CORPUS = CATALOG.parent
P, N, HL = "police_victims", "ngo_clients", "helpline_reports"
SH, PS, BK = "shelter_stays", "police_stays", "bank_victims"
REGIONS = ["North", "East", "South", "West"]


# -- catalogs ---------------------------------------------------------------------------------------
def _three_org_catalog() -> str:
    """catalog.toml plus `bank_victims` (owner bank, the NGO's schema, a non-unique person key),
    whose policy does not let the bank receive: a third data organisation, five computing parties."""
    text = CATALOG.read_text(encoding="utf-8")
    ngo = text[text.index("# ---------------------------------------------------------------- NGO"):
               text.index("# ---------------------------------------------------------------- helpline")]
    bank = (ngo.replace("ngo_clients", "bank_victims").replace('owner = "ngo"', 'owner = "bank"')
            .replace("bits = 48, unique = true", "bits = 48"))
    return text.replace("[parties.helper]", '[parties.bank]\ndescription = "A bank"\n[parties.helper]') + "\n" + bank


def _caller_age_catalog() -> str:
    """catalog.toml with a nullable measure `caller_age` in helpline_reports (rounded to 5, k = 5)."""
    return CATALOG.read_text(encoding="utf-8").replace(
        'caller_is_victim = { type = "boolean" }',
        'caller_is_victim = { type = "boolean" }\n'
        'caller_age = { type = "integer", min = 0, max = 99, nullable = true, role = "measure", clamp = [0, 99] }')


CATALOG_DIR = Path(tempfile.mkdtemp(prefix="iq-redteam-catalogs-"))
CATALOG_PATHS = {"main": CATALOG, "strict": CORPUS / "catalog_strict.toml"}
for _name, _text in (("three", _three_org_catalog()), ("caller_age", _caller_age_catalog())):
    CATALOG_PATHS[_name] = CATALOG_DIR / f"{_name}.toml"
    CATALOG_PATHS[_name].write_text(_text, encoding="utf-8")
CATALOGS = {name: load_catalog(path) for name, path in CATALOG_PATHS.items()}


# -- running a sequence of queries on the oracle ------------------------------------------------------
def vector_lengths(plan: dict, tables: dict) -> dict[str, int]:
    """The length of each owner's linked vector: what every computing party learns (linkage.sizes)."""
    out = {}
    for n in plan["nodes"]:
        if n["op"] == "link_rows":
            table, count = tables[n["attrs"]["dataset"]]
            out[n["attrs"]["dataset"]] = len(link_rows(n["attrs"], table, count))
    return out


@dataclass
class Obs:
    """The observer's material: the released tables (in order) and the world (for its own rows)."""
    cells: list[dict]
    tables: list
    world: list[Block]
    cat: object
    lengths: dict = field(default_factory=dict)
    plans: list = field(default_factory=list)

    def __call__(self, qi: int, key, col: str):
        key = key if isinstance(key, tuple) else (key,)
        return self.cells[qi][key][col]

    def own(self, dataset: str, **where) -> int:
        return count_rows(self.cat, self.world, dataset, **where)

    def released(self, qi: int, col: str) -> list:
        return [c[col] for c in self.cells[qi].values() if c[col] is not None]

    def total_released(self, qi: int, col: str):
        """Sum of the released values of a column, or None when nothing is released."""
        vals = self.released(qi, col)
        return sum(vals) if vals else None


def minus(*xs):
    """xs[0] - xs[1] - ...; None if any operand is suppressed (the observer cannot use it)."""
    if any(x is None for x in xs):
        return None
    return xs[0] - sum(xs[1:])


def quotient(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b)


def if_released(value, size: int):
    """A released value that is the value (or the count) of a group of `size`: the group, else None."""
    return None if value is None else size


def run_world(queries: list[str], world: list[Block], cat_name: str, folder: Path, guard: bool = True) -> Obs:
    cat = CATALOGS[cat_name]
    runs = releases(queries, world, cat, folder, guard)
    lengths = {}
    for plan, loaded, _ in runs:
        lengths.update(vector_lengths(plan, loaded))
    return Obs([cells(p, t) for p, _, t in runs], [t for _, _, t in runs], world, cat, lengths,
               [p for p, _, _ in runs])


def small(x, k: int) -> bool:
    """A derived number (or a derived range (lo, hi)) that pins a group of 1..k-1."""
    if x is None:
        return False
    if isinstance(x, tuple):
        lo, hi = x
        return lo >= 1 and hi <= k - 1
    return 1 <= x <= k - 1


# -- the cases ------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    cls: int  # class of spec/disclosure.md 1.3
    doc: str
    world: list[Block]
    queries: list[str]
    control_world: list[Block]
    control_queries: list[str]
    control_expect: dict  # {query index: {key: {column: value}}}
    derive: Callable[[Obs], list] | None = None
    alt_world: list[Block] | None = None  # the same view is required in this world (indistinguishability)
    rejected: str | None = None  # the attack is closed at compile time with this code
    truth: Callable[[list[Block]], int] | None = None  # size of the small group the attack targets
    baseline: bool = False  # without the guard, the derivation finds `truth` (the threat is real)
    catalog: str = "main"
    k: int = 10
    mpc: bool = False
    mpc_control: bool = False
    leak: str | None = None


def cnt(dataset: str, cat: str = "main", **where) -> Callable[[list[Block]], int]:
    return lambda world: count_rows(CATALOGS[cat], world, dataset, **where)


def by_region(where: str = "", frm: str = P, cols: str = "COUNT(*) AS n") -> str:
    return f"SELECT exp_Region, {cols} FROM {frm} {where} GROUP BY exp_Region;"


UNION_PN = f"{P} UNION ALL {N}"
JOIN = f"{P} p JOIN {N} n ON p.person_id = n.person_id"
LEFT_JOIN = f"{P} p LEFT JOIN {N} n ON p.person_id = n.person_id"


def guard_world() -> list[Block]:
    """120 police interviews, 30 per region, ages 20..59 and one person aged 77 (North); nationalities
    NG/RO and three BG nationals (North); types SexualExploitation/ForcedLabour and three
    ForcedCriminality (North, East, South)."""
    return [block(P, 120, exp_Region=lambda i: REGIONS[i % 4],
                  prs_Age=lambda i: 77 if i == 0 else 20 + i % 40,
                  prs_Nationality=lambda i: "BG" if i in (4, 8, 12) else ["NG", "RO"][i % 2],
                  exp_Type=lambda i: "ForcedCriminality" if i in (0, 5, 10) else
                  ["SexualExploitation", "ForcedLabour"][i % 2])]


def guard_world_without_77() -> list[Block]:
    return [block(P, 120, exp_Region=lambda i: REGIONS[i % 4], prs_Age=lambda i: 20 + i % 40)]


def big_world() -> list[Block]:
    """120 police interviews, 30 per region; in each region 15 recruited as minors and 15 not."""
    return [block(P, 120, exp_Region=lambda i: REGIONS[i % 4], prs_Age=lambda i: 20 + i % 40,
                  minor_at_recruitment=lambda i: (i // 4) % 2 == 1)]


ALL30 = {(r,): {"n": 30} for r in REGIONS}


def join_sides(matched_police: list[Block], matched_ngo: list[Block]) -> list[Block]:
    """A join world with 20 unmatched persons on each side, so that the unmatched-rows rules of
    linkage.unshared pass and only the rule under attack decides."""
    return matched_police + matched_ngo + [block(P, 20, exp_Region="East", person_id=range(500, 520)),
                                           block(N, 20, exp_Region="East", person_id=range(600, 620))]


JOIN_CONTROL = join_sides([block(P, 12, exp_Region="North", person_id=range(1, 13))],
                          [block(N, 12, exp_Region="North", person_id=range(1, 13))])

CASES: list[Case] = []


def case(**kw) -> None:
    CASES.append(Case(**kw))


# ---------------------------------------------------------------- class 1: multiplicity
case(name="union_of_a_dataset_with_itself", cls=1,
     doc="one record read twice would be released as a cell of 2, five as a cell of 10",
     world=[block(P, 5, exp_Region="North")], queries=[by_region(frm=f"{P} UNION ALL {P}")], rejected="IQ324",
     control_world=[block(P, 15, exp_Region="North"), block(N, 15, exp_Region="North")],
     control_queries=[by_region(frm=UNION_PN)], control_expect={0: {("North",): {"n": 30}}})
case(name="join_of_a_dataset_with_itself", cls=1, doc="a self-join under two aliases repeats every row",
     world=[block(P, 5, exp_Region="North")],
     queries=[f"SELECT p.exp_Region, COUNT(*) AS n FROM {P} p JOIN {P} o ON p.person_id = o.person_id "
              "GROUP BY p.exp_Region;"], rejected="IQ324",
     control_world=JOIN_CONTROL, control_queries=[f"SELECT COUNT(*) AS n FROM {JOIN};"],
     control_expect={0: {(): {"n": 12}}})
case(name="join_repeats_one_ngo_client", cls=1,
     doc="ten police interviews of one NGO client (plus five others): 15 joined rows, 6 persons",
     world=join_sides([block(P, 10, exp_Region="North", person_id=1),
                       block(P, 5, exp_Region="North", person_id=range(2, 7))],
                      [block(N, 6, exp_Region="North", person_id=range(1, 7))]),
     queries=[f"SELECT COUNT(*) AS n FROM {JOIN};"],
     derive=lambda o: [if_released(o(0, (), "n"), 6)], truth=lambda w: 6,
     control_world=JOIN_CONTROL, control_queries=[f"SELECT COUNT(*) AS n FROM {JOIN};"],
     control_expect={0: {(): {"n": 12}}}, mpc=True, mpc_control=True)
case(name="same_persons_in_both_datasets_of_a_union", cls=1,
     doc="six persons, each in the police data twice and at the NGO once: 18 rows, 6 persons",
     world=[block(P, 12, exp_Region="North", person_id=[1, 2, 3, 4, 5, 6]),
            block(N, 6, exp_Region="North", person_id=range(1, 7))],
     queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n")],
     derive=lambda o: [if_released(o(0, "North", "n"), 6)], truth=lambda w: 6,
     control_world=[block(P, 30, exp_Region="North", person_id=range(1, 31)),
                    block(N, 30, exp_Region="North", person_id=range(16, 46))],
     control_queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n, COUNT(DISTINCT person_id) AS d")],
     control_expect={0: {("North",): {"n": 60, "d": 45}}})

# ---------------------------------------------------------------- class 2: own contribution
UNION_BY_REGION = by_region(frm=UNION_PN)
case(name="receiver_subtracts_its_own_rows", cls=2,
     doc="police knows its 25 North rows; the NGO has 3 there: released total - 25 = 3",
     world=[block(P, 25, exp_Region="North"), block(N, 3, exp_Region="North"),
            block(P, 15, exp_Region="East"), block(N, 15, exp_Region="East")],
     queries=[UNION_BY_REGION],
     derive=lambda o: [minus(o(0, "North", "n"), o.own(P, exp_Region="North")),
                       minus(o(0, "North", "n"), o.own(N, exp_Region="North"))],
     truth=cnt(N, exp_Region="North"),
     control_world=[block(P, 25, exp_Region="North"), block(N, 15, exp_Region="North")],
     control_queries=[UNION_BY_REGION], control_expect={0: {("North",): {"n": 40}}})
PAD_QUERY = by_region("WHERE prs_Nationality = 'VN'", frm=UNION_PN)


def padded(ngo_vn_north: int) -> list[Block]:
    """The police pads (North, VN) with 12 invented rows; the NGO holds `ngo_vn_north` real ones.
    East holds 15 + 15 real VN rows (released: the run's own control)."""
    return [block(P, 12, exp_Region="North", prs_Nationality="VN"),
            block(N, ngo_vn_north, exp_Region="North", prs_Nationality="VN"),
            block(P, 15, exp_Region="East", prs_Nationality="VN"),
            block(N, 15, exp_Region="East", prs_Nationality="VN")]


case(name="owner_pads_a_rare_cell", cls=2,
     doc="the zero rule: with 12 invented rows, released vs suppressed must not tell 0 NGO rows from 1",
     world=padded(0), alt_world=padded(1), queries=[PAD_QUERY],
     derive=lambda o: [minus(o(0, "North", "n"), o.own(P, exp_Region="North", prs_Nationality="VN"))],
     control_world=padded(12), control_queries=[PAD_QUERY],
     control_expect={0: {("North",): {"n": 24}, ("East",): {"n": 30}}})
case(name="owner_pads_against_k_minus_1", cls=2, doc="0 NGO rows and k-1 NGO rows look the same",
     world=padded(0), alt_world=padded(9), queries=[PAD_QUERY],
     derive=lambda o: [minus(o(0, "North", "n"), o.own(P, exp_Region="North", prs_Nationality="VN"))],
     control_world=padded(10), control_queries=[PAD_QUERY],
     control_expect={0: {("North",): {"n": 22}, ("East",): {"n": 30}}})
THREE_UNION = by_region(frm=f"{P} UNION ALL {N} UNION ALL {BK}")
case(name="two_colluding_receivers_subtract_their_rows", cls=2, catalog="three",
     doc="police and NGO pool their 40 North rows; the bank (not a receiver) holds 3",
     world=[block(P, 20, exp_Region="North"), block(N, 20, exp_Region="North"), block(BK, 3, exp_Region="North")],
     queries=[THREE_UNION],
     derive=lambda o: [minus(o(0, "North", "n"), o.own(P, exp_Region="North"), o.own(N, exp_Region="North"))],
     truth=cnt(BK, cat="three", exp_Region="North"),
     control_world=[block(P, 20, exp_Region="North"), block(N, 20, exp_Region="North"),
                    block(BK, 12, exp_Region="North")],
     control_queries=[THREE_UNION], control_expect={0: {("North",): {"n": 52}}})
case(name="complement_of_few_persons", cls=2,
     doc="the NGO subtracts its 15 rows: the other 15 rows are 5 police persons (observer.persons)",
     world=[block(P, 15, exp_Region="North", person_id=[1, 2, 3, 4, 5]), block(N, 15, exp_Region="North")],
     queries=[UNION_BY_REGION], derive=lambda o: [if_released(o(0, "North", "n"), 5)], truth=lambda w: 5,
     control_world=[block(P, 15, exp_Region="North"), block(N, 15, exp_Region="North")],
     control_queries=[UNION_BY_REGION], control_expect={0: {("North",): {"n": 30}}})
case(name="own_nulls_subtracted_from_left_out_rows", cls=2,
     doc="police has 9 rows without hours, the NGO 1: (rows - with_hours) - 9 = 1",
     world=[block(P, 20, exp_Region="North", hours_worked_week=[None] * 9 + [40] * 11),
            block(N, 20, exp_Region="North", hours_worked_week=[None] + [40] * 19)],
     queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m")],
     derive=lambda o: [minus(o(0, "North", "n"), o(0, "North", "m"),
                             o.own(P, exp_Region="North", hours_worked_week=None))],
     truth=cnt(N, exp_Region="North", hours_worked_week=None),
     control_world=[block(P, 20, exp_Region="North", hours_worked_week=[None] * 10 + [40] * 10),
                    block(N, 20, exp_Region="North", hours_worked_week=[None] * 10 + [40] * 10)],
     control_queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m")],
     control_expect={0: {("North",): {"n": 40, "m": 20}}})
case(name="own_sum_subtracted_leaves_one_value", cls=2,
     doc="police subtracts its own hours: the rest is the one NGO row with a value (55 hours)",
     world=[block(P, 20, exp_Region="North", hours_worked_week=40),
            block(N, 12, exp_Region="North", hours_worked_week=[55] + [None] * 11)],
     queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n, SUM(hours_worked_week) AS s")],
     derive=lambda o: [if_released(o(0, "North", "s"), 1)], truth=lambda w: 1,
     control_world=[block(P, 20, exp_Region="North", hours_worked_week=40),
                    block(N, 12, exp_Region="North", hours_worked_week=30)],
     control_queries=[by_region(frm=UNION_PN, cols="COUNT(*) AS n, SUM(hours_worked_week) AS s")],
     control_expect={0: {("North",): {"n": 32, "s": 1160}}})
SUPPORT_UNION = f"SELECT region, COUNT(*) AS n, SUM(support_eur) AS s FROM {SH} UNION ALL {PS} GROUP BY region;"
case(name="dominance_on_the_complement", cls=2, catalog="strict", k=5,
     doc="the NGO subtracts its 30000: the police's 20090 is one placement of 20000 (rule (1, 60))",
     world=[block(SH, 30, region="North", support_eur=1000),
            block(PS, 1, region="North", support_eur=20000), block(PS, 9, region="North", support_eur=10)],
     queries=[SUPPORT_UNION],
     derive=lambda o: [if_released(o(0, "North", "s"), 1)], truth=lambda w: 1,
     control_world=[block(SH, 30, region="North", support_eur=1000), block(PS, 10, region="North", support_eur=2000)],
     control_queries=[SUPPORT_UNION],
     control_expect={0: {("North",): {"n": 40, "s": 50000.0}}})


# ---------------------------------------------------------------- class 3: two counts of one cell
case(name="rows_against_a_nullable_count", cls=3, doc="one row of 12 without hours: n - m = 1",
     world=[block(P, 12, exp_Region="North", hours_worked_week=[None] + [40] * 11)],
     queries=[by_region(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m")],
     derive=lambda o: [minus(o(0, "North", "n"), o(0, "North", "m"))],
     truth=cnt(P, exp_Region="North", hours_worked_week=None),
     control_world=[block(P, 20, exp_Region="North", hours_worked_week=[None] * 10 + [40] * 10)],
     control_queries=[by_region(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m")],
     control_expect={0: {("North",): {"n": 20, "m": 10}}})
case(name="two_nullable_columns", cls=3, doc="debt missing on one row that has hours: h - d = 1",
     world=[block(P, 20, exp_Region="North", hours_worked_week=40, debt_eur=[None] + [100] * 19)],
     queries=[by_region(cols="COUNT(hours_worked_week) AS h, COUNT(debt_eur) AS d")],
     derive=lambda o: [minus(o(0, "North", "h"), o(0, "North", "d"))], truth=lambda w: 1,
     control_world=[block(P, 20, exp_Region="North", hours_worked_week=40, debt_eur=[None] * 10 + [100] * 10)],
     control_queries=[by_region(cols="COUNT(hours_worked_week) AS h, COUNT(debt_eur) AS d")],
     control_expect={0: {("North",): {"h": 20, "d": 10}}})
case(name="rows_against_distinct_persons", cls=3, doc="one person interviewed twice: n - d = 1",
     world=[block(P, 11, exp_Region="North", person_id=[1] + list(range(1, 11)))],
     queries=[by_region(cols="COUNT(*) AS n, COUNT(DISTINCT person_id) AS d")],
     derive=lambda o: [minus(o(0, "North", "n"), o(0, "North", "d"))], truth=lambda w: 1,
     control_world=[block(P, 12, exp_Region="North")],
     control_queries=[by_region(cols="COUNT(*) AS n, COUNT(DISTINCT person_id) AS d")],
     control_expect={0: {("North",): {"n": 12, "d": 12}}})
case(name="sum_over_mean_is_the_count", cls=3, doc="SUM(x) / AVG(x) = COUNT(x): n - SUM/AVG = 1",
     world=[block(P, 12, exp_Region="North", hours_worked_week=[None] + [40, 41, 42] * 4)],
     queries=[by_region(cols="COUNT(*) AS n, SUM(hours_worked_week) AS s, AVG(hours_worked_week) AS a")],
     derive=lambda o: [minus(o(0, "North", "n"), quotient(o(0, "North", "s"), o(0, "North", "a")))],
     truth=lambda w: 1,
     control_world=[block(P, 12, exp_Region="North", hours_worked_week=[40, 41, 42])],
     control_queries=[by_region(cols="COUNT(*) AS n, SUM(hours_worked_week) AS s, AVG(hours_worked_week) AS a")],
     control_expect={0: {("North",): {"n": 12, "s": 492, "a": 41.0}}})
case(name="count_of_one_column_against_sum_over_mean_of_another", cls=3,
     doc="COUNT(hours) - SUM(debt)/AVG(debt) = the one row with hours and no debt",
     world=[block(P, 20, exp_Region="North", hours_worked_week=40, debt_eur=[None] + [100, 200] * 10)],
     queries=[by_region(cols="COUNT(hours_worked_week) AS h, SUM(debt_eur) AS s, AVG(debt_eur) AS a")],
     derive=lambda o: [minus(o(0, "North", "h"), quotient(o(0, "North", "s"), o(0, "North", "a")))],
     truth=lambda w: 1,
     control_world=[block(P, 20, exp_Region="North", hours_worked_week=40, debt_eur=[100, 200])],
     control_queries=[by_region(cols="COUNT(hours_worked_week) AS h, SUM(debt_eur) AS s, AVG(debt_eur) AS a")],
     control_expect={0: {("North",): {"h": 20, "s": 3000.0, "a": 150.0}}})
UNION_DISTINCT = by_region(frm=UNION_PN, cols="COUNT(*) AS n, COUNT(DISTINCT person_id) AS d")
case(name="membership_through_distinct_count_over_a_union", cls=3,
     doc="police knows its 12 persons: (n - 12) - (d - 12) = NGO clients also known to the police = 1",
     world=[block(P, 12, exp_Region="North", person_id=range(1, 13)),
            block(N, 12, exp_Region="North", person_id=[1] + list(range(100, 111)))],
     queries=[UNION_DISTINCT],
     derive=lambda o: [minus(minus(o(0, "North", "n"), 12), minus(o(0, "North", "d"), 12)),
                       minus(o(0, "North", "d"), 12)],
     truth=lambda w: 1,
     control_world=[block(P, 30, exp_Region="North", person_id=range(1, 31)),
                    block(N, 30, exp_Region="North", person_id=range(16, 46))],
     control_queries=[UNION_DISTINCT], control_expect={0: {("North",): {"n": 60, "d": 45}}},
     mpc=True, mpc_control=True)
JOIN_PAIR = f"SELECT COUNT(*) AS n, COUNT(DISTINCT p.person_id) AS d FROM {JOIN};"
case(name="join_rows_against_matched_persons", cls=3,
     doc="twelve matched persons, one interviewed twice: joined rows - persons = 1",
     world=join_sides([block(P, 13, exp_Region="North", person_id=[1] + list(range(1, 13)))],
                      [block(N, 12, exp_Region="North", person_id=range(1, 13))]),
     queries=[JOIN_PAIR], derive=lambda o: [minus(o(0, (), "n"), o(0, (), "d"))], truth=lambda w: 1,
     control_world=JOIN_CONTROL, control_queries=[JOIN_PAIR], control_expect={0: {(): {"n": 12, "d": 12}}})
JOIN_BY_P_REGION = f"SELECT p.exp_Region, COUNT(*) AS n FROM {JOIN} GROUP BY p.exp_Region;"
case(name="join_match_count_against_own_rows", cls=3,
     doc="police has 30 persons in the North, 29 of them NGO clients: 30 - n = 1 is not a client",
     world=[block(P, 30, exp_Region="North", person_id=range(1, 31)),
            block(N, 29, exp_Region="North", person_id=range(1, 30)), block(N, 20, exp_Region="East")],
     queries=[JOIN_BY_P_REGION], derive=lambda o: [minus(o.own(P, exp_Region="North"), o(0, "North", "n"))],
     truth=lambda w: 1,
     control_world=[block(P, 40, exp_Region="North", person_id=range(1, 41)),
                    block(N, 20, exp_Region="North", person_id=range(1, 21)),
                    block(N, 20, exp_Region="North", person_id=range(100, 120))],
     control_queries=[JOIN_BY_P_REGION], control_expect={0: {("North",): {"n": 20}}})
case(name="join_match_count_against_the_ngo_rows", cls=3,
     doc="the NGO has 13 clients, 12 known to the police: 13 - n = 1 client unknown to the police",
     world=[block(P, 20, exp_Region="East", person_id=range(500, 520)),
            block(P, 12, exp_Region="North", person_id=range(1, 13)),
            block(N, 13, exp_Region="North", person_id=range(1, 14))],
     queries=[f"SELECT COUNT(*) AS n FROM {JOIN};"], derive=lambda o: [minus(o.own(N), o(0, (), "n"))],
     truth=lambda w: 1,
     control_world=JOIN_CONTROL, control_queries=[f"SELECT COUNT(*) AS n FROM {JOIN};"],
     control_expect={0: {(): {"n": 12}}})
LEFT_PAIR = f"SELECT COUNT(*) AS n, COUNT(n.prs_Age) AS m FROM {LEFT_JOIN};"
case(name="left_join_unmatched_rows", cls=3,
     doc="a LEFT JOIN keeps the one police row without an NGO match: COUNT(*) - COUNT(n.prs_Age) = 1; "
         "a nullable count over a JOIN whose side repeats keys is refused (IQ406, spec 6.12)",
     world=[block(P, 20, exp_Region="North", person_id=range(1, 21)), block(P, 1, exp_Region="North"),
            block(N, 20, exp_Region="North", person_id=range(1, 21)), block(N, 20, exp_Region="East")],
     queries=[LEFT_PAIR], rejected="IQ406",
     control_world=[block(P, 20, exp_Region="North", person_id=range(1, 21)), block(P, 20, exp_Region="North"),
                    block(N, 20, exp_Region="North", person_id=range(1, 21)), block(N, 20, exp_Region="East")],
     control_queries=[f"SELECT COUNT(*) AS n FROM {LEFT_JOIN};"], control_expect={0: {(): {"n": 40}}})
TWO_Q_WORLD = [block(P, 30, exp_Region="North", person_id=[1] + list(range(1, 30)),
                     hours_worked_week=[None] + [40] * 29), block(P, 30, exp_Region="East")]
case(name="rows_and_distinct_persons_in_two_queries", cls=3,
     doc="COUNT(*) in one query, COUNT(DISTINCT person_id) of the same cells in the next: n - d = 1",
     world=TWO_Q_WORLD, queries=[by_region(), by_region(cols="COUNT(DISTINCT person_id) AS d")],
     derive=lambda o: [minus(o(0, "North", "n"), o(1, "North", "d"))], truth=lambda w: 1,
     control_world=[block(P, 30, exp_Region="North"), block(P, 30, exp_Region="East")],
     control_queries=[by_region(), by_region(cols="COUNT(DISTINCT person_id) AS d")],
     control_expect={0: {("North",): {"n": 30}}, 1: {("North",): {"d": 30}, ("East",): {"d": 30}}})
case(name="rows_and_a_nullable_count_in_two_queries", cls=3,
     doc="COUNT(*) in one query, COUNT(hours) of the same cells in the next: n - m = 1",
     world=TWO_Q_WORLD, queries=[by_region(), by_region(cols="COUNT(hours_worked_week) AS m")],
     derive=lambda o: [minus(o(0, "North", "n"), o(1, "North", "m"))], truth=lambda w: 1,
     # the control's difference holds k rows: a difference of 0 is released only where the definitions force
     # it (the zero rule, spec/disclosure.md 3.2), else released vs suppressed would tell whether a NULL exists
     control_world=[block(P, 30, exp_Region="North", hours_worked_week=40),
                    block(P, 10, exp_Region="North", hours_worked_week=None), block(P, 30, exp_Region="East")],
     control_queries=[by_region(), by_region(cols="COUNT(hours_worked_week) AS m")],
     control_expect={0: {("North",): {"n": 40}}, 1: {("North",): {"m": 30}}})

# ---------------------------------------------------------------- class 4: exact values behind rounding
BY_TYPE_HL = "SELECT exp_Type, COUNT(*) AS n FROM helpline_reports {where} GROUP BY exp_Type {tail};"


def hl(fl: int, other: int) -> list[Block]:
    return [block(HL, fl, exp_Type="ForcedLabour"), block(HL, other, exp_Type="Other")]


case(name="having_on_an_exact_count", cls=4, k=5,
     doc="HAVING COUNT(*) >= 12 under rounding to 5 would tell 12 from 10 inside one bucket",
     world=hl(12, 11), queries=[BY_TYPE_HL.format(where="", tail="HAVING COUNT(*) >= 12")], rejected="IQ320",
     control_world=hl(17, 11), control_queries=[BY_TYPE_HL.format(where="", tail="HAVING COUNT(*) >= 15")],
     control_expect={0: {("ForcedLabour",): {"n": 15}}})
case(name="having_reads_rounded_counts", cls=4, k=5,
     doc="16 vs 19 reports (both 15), 14 vs 11 (both 10): HAVING >= 15 keeps and drops the same rows",
     world=hl(16, 14), alt_world=hl(19, 11), queries=[BY_TYPE_HL.format(where="", tail="HAVING COUNT(*) >= 15")],
     control_world=hl(17, 21), control_queries=[BY_TYPE_HL.format(where="", tail="HAVING COUNT(*) >= 15")],
     control_expect={0: {("ForcedLabour",): {"n": 15}, ("Other",): {"n": 20}}})
case(name="order_by_reads_rounded_counts", cls=4, k=5,
     doc="11 and 14 reports, or 14 and 11: both rounded to 10, the order must not tell which is larger",
     world=hl(11, 14), alt_world=hl(14, 11), queries=[BY_TYPE_HL.format(where="", tail="ORDER BY n DESC")],
     control_world=hl(11, 21), control_queries=[BY_TYPE_HL.format(where="", tail="ORDER BY n DESC")],
     control_expect={0: {("ForcedLabour",): {"n": 10}, ("Other",): {"n": 20}}}, mpc=True)
case(name="count_arithmetic_under_rounding", cls=4, k=5, doc="COUNT(*) + 0 is not a bare count",
     world=hl(12, 11), queries=["SELECT exp_Type, COUNT(*) + 0 AS n FROM helpline_reports GROUP BY exp_Type;"],
     rejected="IQ321",
     control_world=hl(12, 21), control_queries=[BY_TYPE_HL.format(where="", tail="")],
     control_expect={0: {("ForcedLabour",): {"n": 10}, ("Other",): {"n": 20}}})
case(name="mean_under_rounding", cls=4, k=5, doc="SUM / AVG = the exact count",
     world=hl(12, 11),
     queries=["SELECT exp_Type, SUM(victims_mentioned) AS s, AVG(victims_mentioned) AS a FROM helpline_reports "
              "GROUP BY exp_Type;"], rejected="IQ321",
     control_world=[block(HL, 62, exp_Type="ForcedLabour", victims_mentioned=2)],
     control_queries=["SELECT exp_Type, COUNT(*) AS n, SUM(victims_mentioned) AS s FROM helpline_reports "
                      "GROUP BY exp_Type;"],
     control_expect={0: {("ForcedLabour",): {"n": 60, "s": 100}}})
CALLER_PAIR = "SELECT exp_Type, COUNT(*) AS n, COUNT(caller_age) AS m FROM helpline_reports GROUP BY exp_Type;"


def callers(with_age: int, without: int) -> list[Block]:
    return [block(HL, with_age, exp_Type="ForcedLabour", victims_mentioned=1, caller_age=1),
            block(HL, without, exp_Type="ForcedLabour", victims_mentioned=1, caller_age=None)]


case(name="two_sided_flag_reads_rounded_counts", cls=4, k=5, catalog="caller_age",
     doc="14 rows / 10 with an age, or 10 / 10: both show 10 and 10, the own-count flag alike",
     world=callers(10, 4), alt_world=callers(10, 0), queries=[CALLER_PAIR],
     control_world=callers(10, 10), control_queries=[CALLER_PAIR],
     control_expect={0: {("ForcedLabour",): {"n": 20, "m": 10}}})
case(name="exact_counts_through_sums_of_a_fixed_measure", cls=4, k=5, catalog="caller_age",
     doc="WHERE victims_mentioned = 1 makes SUM(victims_mentioned) the exact row count and, with "
         "caller_age = 1 OR NULL, SUM(caller_age) the exact COUNT(caller_age): rows without an age = 4, "
         "which the two-sided rule on rounded counts let through",
     world=callers(10, 4),
     queries=["SELECT exp_Type, COUNT(*) AS n, COUNT(caller_age) AS m, SUM(victims_mentioned) AS rows_exact, "
              "SUM(caller_age) AS m_exact FROM helpline_reports WHERE victims_mentioned = 1 AND "
              "(caller_age = 1 OR caller_age IS NULL) GROUP BY exp_Type;"],
     derive=lambda o: [minus(o(0, "ForcedLabour", "rows_exact"), o(0, "ForcedLabour", "m_exact"))],
     truth=lambda w: 4,
     control_world=callers(10, 10), control_queries=[CALLER_PAIR],
     control_expect={0: {("ForcedLabour",): {"n": 20, "m": 10}}})
case(name="exact_count_beside_its_rounded_release", cls=4, k=5,
     doc="13 reports with victims_mentioned = 1: COUNT(*) shows 10, SUM(victims_mentioned) 13; the "
         "remainder rounding hides (3) is read off",
     world=[block(HL, 13, exp_Type="ForcedLabour", victims_mentioned=1),
            block(HL, 4, exp_Type="ForcedLabour", victims_mentioned=2)],
     queries=["SELECT exp_Type, COUNT(*) AS n, SUM(victims_mentioned) AS s FROM helpline_reports "
              "WHERE victims_mentioned = 1 GROUP BY exp_Type;"],
     derive=lambda o: [minus(o(0, "ForcedLabour", "s"), o(0, "ForcedLabour", "n"))], truth=lambda w: 3,
     control_world=[block(HL, 62, exp_Type="ForcedLabour", victims_mentioned=2)],
     control_queries=["SELECT exp_Type, COUNT(*) AS n, SUM(victims_mentioned) AS s FROM helpline_reports "
                      "GROUP BY exp_Type;"],
     control_expect={0: {("ForcedLabour",): {"n": 60, "s": 100}}})  # a sum: to 5 x 20 (2.10)

# ---------------------------------------------------------------- class 5: differencing across queries
NAT = "SELECT prs_Nationality, COUNT(*) AS n FROM police_victims GROUP BY prs_Nationality;"
TYPE = "SELECT exp_Type, COUNT(*) AS n FROM police_victims GROUP BY exp_Type;"
MINOR = "SELECT minor_at_recruitment, COUNT(*) AS n FROM police_victims GROUP BY minor_at_recruitment;"
REGION_X_MINOR = ("SELECT exp_Region, minor_at_recruitment, COUNT(*) AS n FROM police_victims "
                  "GROUP BY exp_Region, minor_at_recruitment;")
TOTAL = "SELECT COUNT(*) AS n FROM police_victims {where};"
BAND = "SELECT bucket(prs_Age, [{edges}]) AS band, COUNT(*) AS n FROM police_victims GROUP BY band;"
REGION_X_TYPE = "SELECT exp_Region, exp_Type, COUNT(*) AS n FROM police_victims GROUP BY exp_Region, exp_Type;"
RELABEL = "SELECT region(prs_Nationality) AS r, COUNT(*) AS n FROM police_victims {where} GROUP BY r;"


def per_region_diff(o: Obs, a: int = 0, b: int = 1) -> list:
    return [minus(o(a, r, "n"), o(b, r, "n")) for r in REGIONS]


case(name="and_not_one_person", cls=5, doc="COUNT BY region, then the same AND NOT prs_Age = 77: before - after",
     world=guard_world(), alt_world=guard_world_without_77(),
     queries=[by_region(), by_region("WHERE NOT prs_Age = 77")], derive=per_region_diff,
     truth=cnt(P, prs_Age=77), baseline=True,
     control_world=guard_world(), control_queries=[by_region(), by_region("WHERE exp_Region <> 'North'")],
     control_expect={1: {("East",): {"n": 30}, ("South",): {"n": 30}, ("West",): {"n": 30}}})
case(name="breakdown_after_a_total", cls=5, doc="total minus the released nationalities = the 3 BG nationals",
     world=guard_world(), queries=[TOTAL.format(where=""), NAT],
     derive=lambda o: [minus(o(0, (), "n"), o.total_released(1, "n"))], truth=cnt(P, prs_Nationality="BG"),
     baseline=True,
     control_world=big_world(), control_queries=[TOTAL.format(where=""), by_region()], control_expect={1: ALL30})
case(name="total_after_a_breakdown", cls=5, doc="the same, the total asked second",
     world=guard_world(), queries=[NAT, TOTAL.format(where="")],
     derive=lambda o: [minus(o(1, (), "n"), o.total_released(0, "n"))], truth=cnt(P, prs_Nationality="BG"),
     baseline=True,
     control_world=big_world(), control_queries=[by_region(), TOTAL.format(where="")],
     control_expect={1: {(): {"n": 120}}})
case(name="category_dropped_from_an_in_list", cls=5, doc="IN ('NG','RO','BG') then IN ('NG','RO')",
     world=guard_world(),
     queries=[by_region("WHERE prs_Nationality IN ('NG', 'RO', 'BG')"),
              by_region("WHERE prs_Nationality IN ('NG', 'RO')")],
     derive=per_region_diff, truth=cnt(P, prs_Nationality="BG"), baseline=True,
     control_world=guard_world(),
     control_queries=[by_region("WHERE exp_Region IN ('North', 'East', 'South', 'West')"),
                      by_region("WHERE exp_Region IN ('East', 'South', 'West')")],
     control_expect={1: {("East",): {"n": 30}, ("South",): {"n": 30}}})
case(name="category_added_to_an_in_list", cls=5, doc="IN ('NG','RO') then IN ('NG','RO','BG')",
     world=guard_world(),
     queries=[by_region("WHERE prs_Nationality IN ('NG', 'RO')"),
              by_region("WHERE prs_Nationality IN ('NG', 'RO', 'BG')")],
     derive=lambda o: per_region_diff(o, 1, 0), truth=cnt(P, prs_Nationality="BG"), baseline=True,
     control_world=guard_world(),
     control_queries=[by_region("WHERE exp_Region IN ('East', 'South')"),
                      by_region("WHERE exp_Region IN ('East', 'South', 'West')")],
     control_expect={1: {("East",): {"n": 30}, ("South",): {"n": 30}, ("West",): {"n": 30}}})
case(name="recoded_age_bands", cls=5, doc="bands split at 30, then at 31: the 30-year-olds (3)",
     world=guard_world(), queries=[BAND.format(edges=30), BAND.format(edges=31)],
     derive=lambda o: [minus(o(1, c1, "n"), o(0, c0, "n")) for c0 in o.cells[0] for c1 in o.cells[1]],
     truth=cnt(P, prs_Age=30), baseline=True,
     control_world=guard_world(), control_queries=[BAND.format(edges=30), BAND.format(edges="30, 40")],
     control_expect={1: {("<30",): {"n": 29}, ("[30,40)",): {"n": 30}, ("40+",): {"n": 61}}})
case(name="relabelled_grouping", cls=5,
     doc="region(nationality) before and after dropping BG: Europe differs by the 3 BG nationals",
     world=guard_world(), queries=[RELABEL.format(where=""), RELABEL.format(where="WHERE prs_Nationality <> 'BG'")],
     derive=lambda o: [minus(o(0, "Europe", "n"), o(1, "Europe", "n"))], truth=cnt(P, prs_Nationality="BG"),
     baseline=True,
     control_world=guard_world(),
     control_queries=[RELABEL.format(where=""), RELABEL.format(where="WHERE prs_Nationality <> 'NG'")],
     control_expect={0: {("Africa",): {"n": 57}, ("Europe",): {"n": 63}}, 1: {("Europe",): {"n": 63}}})
case(name="roll_up_of_a_finer_grouping", cls=5,
     doc="region x type, then region: the margin minus the released cells is the small cells",
     world=guard_world(), queries=[REGION_X_TYPE, by_region()],
     derive=lambda o: [minus(o(1, r, "n"), sum(v for (rr, _), c in o.cells[0].items() if rr == r
                                               for v in [c["n"]] if v is not None)) for r in REGIONS],
     truth=lambda w: 1, baseline=True,
     control_world=big_world(), control_queries=[REGION_X_MINOR, by_region()], control_expect={1: ALL30})
case(name="finer_grouping_after_its_margin", cls=5,
     doc="region, then region x type: the region minus the released types is the small cell",
     world=guard_world(), queries=[by_region(), REGION_X_TYPE],
     derive=lambda o: [minus(o(0, r, "n"), sum(v for (rr, _), c in o.cells[1].items() if rr == r
                                               for v in [c["n"]] if v is not None)) for r in REGIONS],
     truth=lambda w: 1, baseline=True,
     control_world=big_world(), control_queries=[by_region(), REGION_X_MINOR],
     control_expect={1: {("North", True): {"n": 15}, ("North", False): {"n": 15}}})
case(name="crossing_margins", cls=5,
     doc="by region, then by type: the regions' total minus the released types = ForcedCriminality (3)",
     world=guard_world(), queries=[by_region(), TYPE],
     derive=lambda o: [minus(o.total_released(0, "n"), o.total_released(1, "n"))],
     truth=cnt(P, exp_Type="ForcedCriminality"), baseline=True,
     control_world=big_world(), control_queries=[by_region(), MINOR],
     control_expect={1: {(True,): {"n": 60}, (False,): {"n": 60}}})
case(name="dataset_added_to_a_union", cls=5, doc="police by region, then police + NGO: the NGO's 3 North rows",
     world=guard_world() + [block(N, 3, exp_Region="North")], queries=[by_region(), UNION_BY_REGION],
     derive=lambda o: per_region_diff(o, 1, 0), truth=cnt(N, exp_Region="North"),
     control_world=guard_world() + [block(N, 60, exp_Region=lambda i: REGIONS[i % 4])],
     control_queries=[by_region(), UNION_BY_REGION], control_expect={1: {(r,): {"n": 45} for r in REGIONS}})
case(name="range_narrowed", cls=5, doc="ages <= 80, then <= 76: the one person aged 77",
     world=guard_world(), queries=[by_region("WHERE prs_Age <= 80"), by_region("WHERE prs_Age <= 76")],
     derive=per_region_diff, truth=cnt(P, prs_Age=77), baseline=True,
     control_world=guard_world(), control_queries=[by_region("WHERE prs_Age <= 80"), by_region("WHERE prs_Age < 40")],
     control_expect={1: {("North",): {"n": 14}, ("East",): {"n": 15}, ("South",): {"n": 15}}})
case(name="several_earlier_releases", cls=5,
     doc="a total and a breakdown released, then the breakdown AND NOT one person",
     world=guard_world(), queries=[TOTAL.format(where=""), by_region(), by_region("WHERE NOT prs_Age = 77")],
     derive=lambda o: per_region_diff(o, 1, 2) + [minus(o(0, (), "n"), o.total_released(2, "n"))],
     truth=cnt(P, prs_Age=77), baseline=True,
     control_world=big_world(), control_queries=[TOTAL.format(where=""), by_region(), MINOR],
     control_expect={1: ALL30, 2: {(True,): {"n": 60}, (False,): {"n": 60}}})


def aged_77(ngo_77: int) -> list[Block]:
    """police: 13 North rows aged 30 and its own 12 aged 77; NGO: 25 North rows, `ngo_77` of them 77."""
    return [block(P, 13, exp_Region="North", prs_Age=30), block(P, 12, exp_Region="North", prs_Age=77),
            block(N, 25 - ngo_77, exp_Region="North", prs_Age=30), block(N, ngo_77, exp_Region="North", prs_Age=77),
            block(P, 25, exp_Region="East", prs_Age=30), block(N, 25, exp_Region="East", prs_Age=30)]


case(name="guard_difference_minus_own_rows", cls=5,
     doc="the union before and after AND NOT prs_Age = 77 differs by 13 >= k, but 12 of them are the "
         "police's own rows: (before - after) - 12 = 1 NGO client aged 77 in the North",
     world=aged_77(1), queries=[UNION_BY_REGION, by_region("WHERE NOT prs_Age = 77", frm=UNION_PN)],
     derive=lambda o: [minus(o(0, "North", "n"), o(1, "North", "n"), o.own(P, exp_Region="North", prs_Age=77))],
     truth=cnt(N, exp_Region="North", prs_Age=77),
     control_world=aged_77(12),
     control_queries=[UNION_BY_REGION, by_region("WHERE NOT prs_Age = 77", frm=UNION_PN)],
     control_expect={0: {("North",): {"n": 50}, ("East",): {"n": 50}}, 1: {("North",): {"n": 26}}})
case(name="union_release_then_one_owner_alone", cls=5,
     doc="the union by region, then the NGO alone AND NOT prs_Age = 77: police derives "
         "union - own - NGO = 1 NGO client aged 77",
     world=[block(P, 25, exp_Region="North", prs_Age=30), block(N, 24, exp_Region="North", prs_Age=30),
            block(N, 1, exp_Region="North", prs_Age=77),
            block(P, 25, exp_Region="East", prs_Age=30), block(N, 25, exp_Region="East", prs_Age=30)],
     queries=[UNION_BY_REGION, by_region("WHERE NOT prs_Age = 77", frm=N)],
     derive=lambda o: [minus(o(0, "North", "n"), o.own(P, exp_Region="North"), o(1, "North", "n"))],
     truth=cnt(N, exp_Region="North", prs_Age=77),
     control_world=[block(P, 25, exp_Region=["North", "East"]), block(N, 50, exp_Region=["North", "East"])],
     control_queries=[UNION_BY_REGION, by_region(frm=N)],
     control_expect={0: {("North",): {"n": 38}}, 1: {("North",): {"n": 25}, ("East",): {"n": 25}}})

WIDE_BAND = "WHERE debt_eur - hours_worked_week < {limit}"  # a wide column in arithmetic: the fallback, guard.rows
WIDE_1 = by_region(WIDE_BAND.format(limit=800))
WIDE_2 = ("SELECT exp_Region, minor_at_recruitment, COUNT(*) AS n FROM police_victims "
          f"{WIDE_BAND.format(limit=700)} GROUP BY exp_Region, minor_at_recruitment;")


def wide_band(in_band, rows: int = 120) -> list[Block]:
    """`rows` rows, a quarter per region, half recruited as minors; debt - hours = 750 on the rows
    `in_band` picks (inside the first query's WHERE, outside the second's), 60 elsewhere."""
    return [block(P, rows, exp_Region=lambda i: REGIONS[i % 4], hours_worked_week=40,
                  debt_eur=lambda i: "790.00" if in_band(i) else "100.00",
                  minor_at_recruitment=lambda i: (i // 4) % 2 == 1)]


case(name="fallback_guard_counts_the_difference_in_total", cls=5,
     doc="undecidable WHEREs (guard.rows) and other group keys: the rows in one WHERE but not the other "
         "are counted in total (11: 1 North, 10 East) and copied to every cell; North minus its new cells = 1",
     world=wide_band(lambda i: i == 0 or i in range(1, 40, 4)), queries=[WIDE_1, WIDE_2],
     derive=lambda o: [minus(o(0, r, "n"), o(1, (r, True), "n"), o(1, (r, False), "n")) for r in REGIONS],
     truth=lambda w: 1, baseline=True,
     # control: the fallback tests each new cell's own difference (it cannot tell how the cells
     # nest), so an honest second query is released where each of its cells differs by >= k
     control_world=wide_band(lambda i: i < 80, rows=240), control_queries=[WIDE_1, WIDE_2],
     control_expect={0: {(r,): {"n": 60} for r in REGIONS},
                     1: {(r, m): {"n": 20} for r in REGIONS for m in (True, False)}})
JOIN_BY_REGION = f"SELECT p.exp_Region, COUNT(*) AS n FROM {JOIN} {{where}} GROUP BY p.exp_Region;"


def join_ages(ages: list[int]) -> list[Block]:
    """30 persons in the North known to both, aged `ages` at the police; 20 more on each side unmatched."""
    return [block(P, 30, exp_Region="North", person_id=range(1, 31), prs_Age=ages),
            block(P, 20, exp_Region="North", person_id=range(100, 120)),
            block(N, 30, exp_Region="North", person_id=range(1, 31)),
            block(N, 20, exp_Region="North", person_id=range(200, 220))]


def test_join_differencing_is_refused(tmp_path):
    """A JOIN by region, then the same JOIN AND NOT p.prs_Age = 77 (class 5): the guard cannot compare
    two JOINs yet, so the second is not planned (IQ409) rather than released unguarded; repeating the
    first exactly is allowed (control)."""
    cat = CATALOGS["main"]
    base = compile_source(q(JOIN_BY_REGION.format(where="")), "base.iq", cat).plan
    attack = compile_source(q(JOIN_BY_REGION.format(where="WHERE NOT p.prs_Age = 77")), "attack.iq", cat,
                            earlier=[signature_of_plan(base)])
    assert attack.plan is None and "IQ409" in {d.code for d in attack.diagnostics}
    again = compile_source(q(JOIN_BY_REGION.format(where="")), "base.iq", cat, earlier=[signature_of_plan(base)])
    assert again.plan is not None and again.plan["hash"] == base["hash"]
    obs = run_world([JOIN_BY_REGION.format(where="")], join_ages([77] + [30] * 29), "main", tmp_path)
    assert obs(0, "North", "n") == 30  # the control releases


# ---------------------------------------------------------------- class 6: sizes revealed by linkage


def linked(extra_ngo: int, each: int = 40) -> list[Block]:
    """`each` police persons and `each` NGO clients in the North, half of them shared; `extra_ngo` NGO
    clients in the East (a suppressed cell): with exact vector lengths, each + 1 - each released would
    give the 1."""
    return [block(P, each, exp_Region="North", person_id=range(1, each + 1)),
            block(N, each, exp_Region="North", person_id=range(each // 2 + 1, each // 2 + each + 1)),
            block(N, extra_ngo, exp_Region="East", person_id=range(900, 900 + extra_ngo))]


def outside_released(o: Obs) -> list:
    """The NGO's rows outside the released cells, as the lengths and the released cells bound them:
    a length L says L/2 < n <= L (or 0 <= n <= L at the floor 2k rounded up to a power of two); the police
    knows its own 40 rows, so the NGO's released rows are n(North) - 40."""
    floor = 1 << (2 * 10 - 1).bit_length()
    length = o.lengths[N]
    lo, hi = (0 if length == floor else length // 2 + 1), length
    released = minus(o(0, "North", "n"), o.own(P))
    assert length & (length - 1) == 0 and length >= floor
    if released is None:
        return [None]
    return [(max(lo - released, 0), hi - released)]


LINKED_QUERY = by_region(frm=UNION_PN, cols="COUNT(*) AS n, COUNT(DISTINCT person_id) AS d")
case(name="vector_lengths_with_released_cells", cls=6,
     doc="the computing parties learn each linked vector's length; with the released cells it must not "
         "bound the unreleased rows inside 1..k-1",
     world=linked(1), alt_world=linked(0), queries=[LINKED_QUERY], derive=outside_released, truth=lambda w: 1,
     control_world=linked(0), control_queries=[LINKED_QUERY],
     control_expect={0: {("North",): {"n": 80, "d": 60}}}, mpc=True)
case(name="vector_lengths_at_the_floor", cls=6,
     doc="21 NGO rows, 20 of them in the released cell: the floor length 32 (2k = 20 rounded up to a power "
         "of two) says 0..32 rows, so the rest is 0..12, never pinned inside 1..k-1",
     world=linked(1, each=20), alt_world=linked(0, each=20), queries=[LINKED_QUERY], derive=outside_released,
     truth=lambda w: 1,
     control_world=linked(0, each=20), control_queries=[LINKED_QUERY],
     control_expect={0: {("North",): {"n": 40, "d": 30}}})

# ---------------------------------------------------------------- class 7: guard integrity (oracle part)


def exactly_k_north(with_77: bool) -> list[Block]:
    return [block(P, 10, exp_Region="North", prs_Age=[77 if with_77 else 30] + [30] * 9),
            block(P, 30, exp_Region="East", prs_Age=30)]


case(name="guard_outcome_is_no_oracle", cls=7,
     doc="a North cell of exactly k, then AND NOT prs_Age = 77: 'too few rows' (the person is there) "
         "and 'guard' (nobody is 77) must look the same",
     world=exactly_k_north(True), alt_world=exactly_k_north(False),
     queries=[by_region(), by_region("WHERE NOT prs_Age = 77")], derive=per_region_diff,
     control_world=exactly_k_north(True), control_queries=[by_region(), by_region("WHERE exp_Region <> 'North'")],
     control_expect={0: {("North",): {"n": 10}}, 1: {("East",): {"n": 30}}})

# ---------------------------------------------------------------- class 8: persons with many records
case(name="one_person_many_records", cls=8, doc="12 interviews of one person are one person, not a cell of 12",
     world=[block(P, 12, exp_Region="North", person_id=7), block(P, 12, exp_Region="East")], queries=[by_region()],
     derive=lambda o: [if_released(o(0, "North", "n"), 1)], truth=lambda w: 1,
     control_world=[block(P, 12, exp_Region="North"), block(P, 12, exp_Region="East")], control_queries=[by_region()],
     control_expect={0: {("North",): {"n": 12}, ("East",): {"n": 12}}})


def heavy_median(value: int) -> list[Block]:
    """North: nine persons aged 20..28 and one person with ten records aged `value` (19 rows, 10
    persons); East: twelve persons aged 30..41 (the run's own control)."""
    return [block(P, 9, exp_Region="North", prs_Age=range(20, 29)),
            block(P, 10, exp_Region="North", prs_Age=value, person_id=999),
            block(P, 12, exp_Region="East", prs_Age=range(30, 42))]


MEDIAN_Q = by_region(cols="COUNT(*) AS n, MEDIAN(prs_Age) AS med")
case(name="one_person_sets_the_median", cls=8,
     doc="ten of nineteen records are one person's: the median must not be that person's age",
     world=heavy_median(50), alt_world=heavy_median(90), queries=[MEDIAN_Q],
     derive=lambda o: [if_released(o(0, "North", "med"), 1) if o(0, "North", "med") in (50, 90) else None],
     control_world=[block(P, 10, exp_Region="North", prs_Age=range(20, 30))], control_queries=[MEDIAN_Q],
     control_expect={0: {("North",): {"n": 10, "med": 24}}}, mpc=True)
SUM_DAYS = "SELECT region, COUNT(*) AS n, SUM(stay_days) AS days FROM shelter_stays GROUP BY region;"
case(name="one_person_dominates_a_sum_over_several_records", cls=8, catalog="strict", k=5,
     doc="three stays of 180 days of one person among nine of 1 day: 33% per record, 98% per person",
     world=[block(SH, 3, region="North", person_id=1, stay_days=180), block(SH, 9, region="North", stay_days=1)],
     queries=[SUM_DAYS], derive=lambda o: [if_released(o(0, "North", "days"), 1)], truth=lambda w: 1,
     control_world=[block(SH, 12, region="North", stay_days=30)], control_queries=[SUM_DAYS],
     control_expect={0: {("North",): {"n": 12, "days": 360}}}, mpc=True)
case(name="one_record_dominates_a_sum", cls=8, catalog="strict", k=5,
     doc="the spec's example: 180 days and nine times 1 day",
     world=[block(SH, 1, region="North", stay_days=180), block(SH, 9, region="North", stay_days=1)],
     queries=[SUM_DAYS], derive=lambda o: [if_released(o(0, "North", "days"), 1)], truth=lambda w: 1,
     control_world=[block(SH, 10, region="North", stay_days=[20, 30])], control_queries=[SUM_DAYS],
     control_expect={0: {("North",): {"n": 10, "days": 250}}})

LEAKS = [c for c in CASES if c.leak]


def _param(c: Case, leak_marks: bool = True):
    marks = [pytest.mark.xfail(strict=True, reason=c.leak)] if c.leak and leak_marks else []
    return pytest.param(c, id=f"c{c.cls}-{c.name}", marks=marks)


# -- the tests -------------------------------------------------------------------------------------------
def test_the_table_covers_every_class():
    assert {c.cls for c in CASES} == set(range(1, 9))
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    for c in CASES:
        assert c.rejected or c.derive or c.alt_world, c.name
        assert c.control_expect, c.name


@pytest.mark.parametrize("c", [_param(c) for c in CASES if c.rejected])
def test_attack_is_rejected(c: Case):
    cat = CATALOGS[c.catalog]
    for text in c.queries:
        res = compile_source(q(text), "attack.iq", cat)
        assert res.plan is None and c.rejected in {d.code for d in res.diagnostics}, \
            [d.render() for d in res.diagnostics]


@pytest.mark.parametrize("c", [_param(c) for c in CASES if not c.rejected])
def test_attack(c: Case, tmp_path):
    if c.truth is not None:  # the world really holds a group the rules must protect
        assert 1 <= c.truth(c.world) <= c.k - 1, c.truth(c.world)
    obs = run_world(c.queries, c.world, c.catalog, tmp_path / "a")
    for table in obs.tables:  # suppressed cells are shown, never dropped
        assert table.rows
    if c.derive is not None:
        derived = c.derive(obs)
        assert not any(small(x, c.k) for x in derived), \
            f"{c.name}: the observer derives {derived}\n" + "\n\n".join(t.render() for t in obs.tables)
    if c.alt_world is not None:
        alt = run_world(c.queries, c.alt_world, c.catalog, tmp_path / "b")
        for i, (t, u) in enumerate(zip(obs.tables, alt.tables)):
            assert view(t) == view(u), f"{c.name}: query {i} tells the worlds apart\n{t.render()}\n\n{u.render()}"
        assert obs.lengths == alt.lengths


@pytest.mark.parametrize("c", [_param(c, leak_marks=False) for c in CASES if c.baseline])
def test_attack_works_without_the_guard(c: Case, tmp_path):
    """The threat is real: without the earlier releases in the ledger, the derivation finds the group."""
    obs = run_world(c.queries, c.world, c.catalog, tmp_path, guard=False)
    assert c.truth(c.world) in c.derive(obs), c.derive(obs)


@pytest.mark.parametrize("c", [_param(c, leak_marks=False) for c in CASES])
def test_control(c: Case, tmp_path):
    obs = run_world(c.control_queries, c.control_world, c.catalog, tmp_path)
    for qi, want in c.control_expect.items():
        for key, values in want.items():
            for col, v in values.items():
                got = obs(qi, key, col)
                assert got == v, f"{c.name}: control query {qi} {key} {col} = {got!r}, want {v!r}\n" \
                                 + obs.tables[qi].render()


def test_padding_at_the_vector_floor_is_a_power_of_two_of_2k():
    """linkage.sizes as the plan states it: every link_rows node pads to a power of two >= 2k."""
    plan = compile_source(q(LINKED_QUERY), "q", CATALOGS["main"]).plan
    nodes = [n for n in plan["nodes"] if n["op"] == "link_rows"]
    assert nodes and all(n["attrs"]["min_size"] == 20 and n["attrs"]["size_rule"] == "pow2" for n in nodes)


# -- through real parties -------------------------------------------------------------------------------
def mpc_world(queries, world, cat_name, folder) -> tuple[list, list]:
    """Each (single, unguarded) query through real parties; the MPC table must equal the oracle's."""
    cat = CATALOGS[cat_name]
    data = write_world(folder, cat, world)
    got = []
    for text in queries:
        plan = compile_source(q(text), "q.iq", cat).plan
        assert plan is not None and "guard" not in plan
        table = run_mpc(plan, data, catalog_path=CATALOG_PATHS[cat_name])
        assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, cat, data)))
        got.append((plan, table))
    return got, data


@pytest.mark.mpc
@pytest.mark.parametrize("c", [_param(c) for c in CASES if c.mpc])
def test_attack_mpc(c: Case, tmp_path):
    assert len(c.queries) == 1
    runs, data = mpc_world(c.queries, c.world, c.catalog, tmp_path / "a")
    plan, table = runs[0]
    if c.derive is not None:
        cat = CATALOGS[c.catalog]
        obs = Obs([cells(plan, table)], [table], c.world, cat, vector_lengths(plan, load_tables(plan, cat, data)))
        derived = c.derive(obs)
        assert not any(small(x, c.k) for x in derived), derived
    if c.mpc_control:
        (cplan, ctable), = mpc_world(c.control_queries, c.control_world, c.catalog, tmp_path / "c")[0]
        got = cells(cplan, ctable)
        for key, values in c.control_expect[0].items():
            assert {col: got[key][col] for col in values} == values, ctable.render()


@pytest.mark.mpc
def test_padding_a_rare_cell_reveals_nothing(tmp_path):
    """spec/disclosure.md 2.3: the police pads (North, VN) with 12 invented rows. Whether the NGO has
    no VN client there or one, every party's view through real MPC is the same (North suppressed);
    East, 15 + 15 real rows, is released (the control)."""
    views = []
    for ngo in (0, 1):
        (plan, table), = mpc_world([PAD_QUERY], padded(ngo), "main", tmp_path / str(ngo))[0]
        views.append(view(table))
        got = cells(plan, table)
        assert got[("North",)]["n"] is None and got[("East",)]["n"] == 30
    assert views[0] == views[1]


# -- class 5 through `iq run` with ledgers -----------------------------------------------------------------
def iq(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insightql.runtime.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def iq_run_sequence(tmp_path: Path, world: list[Block], steps: dict[str, str], datasets: list[str]) -> dict[str, dict]:
    """`iq run --ledger-dir` once per step, in order, on one ledger folder: each run compiles against the
    releases the parties' ledgers record. {step: {region: released n, or {"suppressed": true, ...}}}."""
    data = write_world(tmp_path / "data", CATALOGS["main"], world)
    led = tmp_path / "ledgers"
    got = {}
    for name, text in steps.items():
        src = tmp_path / f"{name}.iq"
        src.write_text(f"@name {name}\n" + q(text), encoding="utf-8")
        out = tmp_path / f"{name}.json"
        proc = iq("run", src, "--catalog", CATALOG, *[x for d in datasets for x in ("--data", f"{d}={data[d]}")],
                  "--ledger-dir", led, "--quiet", "--timeout", "120", "--out", out)
        assert proc.returncode == 0, proc.stderr
        got[name] = {r["exp_Region"]: r["n"] for r in json.loads(out.read_text())["rows"]}
    return got


@pytest.mark.mpc
def test_differencing_through_iq_run_with_ledgers(tmp_path):
    """`iq run --ledger-dir`: the base release, then the control (other regions unchanged by
    definition: released), then the attack AND NOT prs_Age = 77 (compared with both: every region
    suppressed, the person's among them). Each run compiles against the parties' own ledgers."""
    steps = {"base": by_region(), "control": by_region("WHERE exp_Region <> 'North'"),
             "attack": by_region("WHERE NOT prs_Age = 77")}
    got = iq_run_sequence(tmp_path, guard_world(), steps, [P])
    assert got["base"] == {r: 30 for r in REGIONS}
    assert got["control"]["East"] == got["control"]["South"] == got["control"]["West"] == 30
    assert all(isinstance(v, dict) and v["suppressed"] for v in got["attack"].values()), got["attack"]
    reasons = {v["reason"] for v in got["attack"].values()}
    assert len(reasons) == 1  # one reason for every cell: the guard's outcome is not told apart
    derived = [got["base"][r] - got["attack"][r] for r in REGIONS if not isinstance(got["attack"][r], dict)]
    assert not any(small(x, 10) for x in derived)


@pytest.mark.mpc
def test_join_differencing_through_iq_run_with_ledgers(tmp_path):
    """The JOIN attack through `iq run` and the parties' ledgers: the base is released, the same JOIN
    AND NOT p.prs_Age = 77 compiled against the ledger is refused (IQ409) before any party starts."""
    join = f"SELECT p.exp_Region, COUNT(*) AS n FROM {JOIN} {{where}} GROUP BY p.exp_Region;"
    got = iq_run_sequence(tmp_path, join_ages([77] + [30] * 29), {"base": join.format(where="")}, [P, N])
    assert got["base"]["North"] == 30
    data = write_world(tmp_path / "data", CATALOGS["main"], join_ages([77] + [30] * 29))
    src = tmp_path / "attack.iq"
    src.write_text("@name attack\n" + q(join.format(where="WHERE NOT p.prs_Age = 77")), encoding="utf-8")
    proc = iq("run", src, "--catalog", CATALOG, *[x for d in (P, N) for x in ("--data", f"{d}={data[d]}")],
              "--ledger-dir", tmp_path / "ledgers", "--quiet", "--timeout", "120", "--out", tmp_path / "attack.json")
    assert proc.returncode != 0 and "IQ409" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    assert not (tmp_path / "attack.json").exists()


# -- class 7 through `iq party` with ledgers ----------------------------------------------------------------
class LedgerParties(Parties):
    def __init__(self, *a, ledgers: Path | None, **kw):
        super().__init__(*a, **kw)
        self.ledgers = ledgers

    def cmd(self, name: str) -> list[str]:
        led = self.ledgers or self.workdir / "no-ledger"
        return super().cmd(name) + ["--ledger", str(led / f"{name}.ledger.jsonl")]


def record_release(ledgers: Path, plan: dict) -> None:
    for name in plan["parties"]:
        Ledger(ledgers / f"{name}.ledger.jsonl").append("release", plan["hash"],
                                                          {"guard_signature": signature_of_plan(plan)})


def refused_by_all(plan: dict, data: dict, workdir: Path, ledgers: Path | None, reason: str) -> None:
    parties = LedgerParties(plan, data, workdir, ledgers=ledgers)
    codes = parties.run_to_end(timeout=90)
    for name in plan["parties"]:
        err = parties.stderr(name)
        assert codes[name] in (4, 7), (name, codes, err)
        assert reason in err and "no data was shared" in err, err
        assert "secure steps" not in err and printed_lines(parties.out[name]) == [], err
        assert not parties.result_path(name).exists()
    assert any(codes[n] == 7 for n in plan["parties"])


def plan_text(name: str, where: str = "") -> str:
    return f"@name {name}\n" + q(by_region(where))


RELEASES = {"base": "", "probe": "WHERE prs_Age = 77", "older": "WHERE prs_Age > 30"}
# (case, releases the parties' ledgers record (None: no ledger at all), releases the analyst's guard
#  names, the attack's WHERE, the refusal, the guard's coverage: (missing, unknown) against the ledger)
INTEGRITY = [
    ("invented_guard_entry_probes_a_predicate", ["base"], ["base", "probe"], "WHERE exp_Region <> 'North'",
     "names release(s) its ledger does not record", ([], ["probe"])),
    ("guarded_plan_at_parties_without_a_ledger", None, ["base"], "WHERE NOT prs_Age = 77", "keeps no ledger", None),
    ("guard_skips_one_of_two_releases", ["base", "older"], ["older"], "WHERE NOT prs_Age = 77", "stale guard",
     (["base"], [])),
]


@pytest.mark.mpc
@pytest.mark.parametrize("recorded, named, where, reason, cover", [pytest.param(*c[1:], id=f"c7-{c[0]}")
                                                                   for c in INTEGRITY])
def test_guard_integrity(recorded, named, where, reason, cover, tmp_path):
    """spec/disclosure.md 3.4 through `iq party`: an analyst who invents an earlier release (to probe
    prs_Age = 77 through the guard's outcome), skips one, or brings a guarded plan to parties that
    keep no ledger is refused by the parties before any data is read. The control, a plan compiled
    from the parties' own ledgers, runs: test_differencing_through_iq_run_with_ledgers."""
    cat = CATALOGS["main"]
    data = write_world(tmp_path / "data", cat, guard_world())
    plans = {n: compile_source(plan_text(n, w), f"{n}.iq", cat).plan for n, w in RELEASES.items()}
    ledgers = None if recorded is None else tmp_path / "ledgers"
    for n in recorded or []:
        record_release(ledgers, plans[n])
    attack = compile_source(plan_text("attack", where), "attack.iq", cat,
                            earlier=[signature_of_plan(plans[n]) for n in named]).plan
    if cover is not None:
        missing, unknown = coverage(attack["guard"], signature_of_plan(attack),
                                    [signature_of_plan(plans[n]) for n in recorded])
        by_hash = {p["hash"]: n for n, p in plans.items()}
        assert ([by_hash[m["plan_hash"]] for m in missing], [by_hash[u["plan_hash"]] for u in unknown]) == cover
    refused_by_all(attack, data, tmp_path, ledgers, reason)
