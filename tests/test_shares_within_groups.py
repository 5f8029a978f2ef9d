"""examples/shares_within_groups.iq end to end (issue 17, B): shares and percents within groups.

The released cells of the example, run on the shipped data (examples/data) by the plaintext oracle
and by real parties, equal the pooled plaintext answer computed here independently with the csv
module: per region and trafficking status, the rows of police and NGO together, the rows recruited
as minors, their share, and each released count's percent of the released counts of its region.
Suppressed or withheld cells are only checked to be shown as such, never compared.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.results import ResultTable, Suppressed

from conftest import compile_plan, oracle_result, run_mpc

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CATALOG_PATH = EXAMPLES / "catalog.toml"
QUERY = EXAMPLES / "shares_within_groups.iq"
DATASETS = ("police_victims", "ngo_clients")


def pooled() -> tuple[Counter, Counter]:
    """(rows, rows recruited as minors) per (region, status) over both CSV files, pooled."""
    rows, minors = Counter(), Counter()
    for d in DATASETS:
        with open(EXAMPLES / "data" / f"{d}.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                cell = (r["exp_Region"], r["vic_TraffickingStatus"])
                rows[cell] += 1
                minors[cell] += r["minor_at_recruitment"] == "true"
    return rows, minors


def assert_equals_pooled(table: ResultTable):
    rows, minors = pooled()
    col = {c: i for i, c in enumerate(table.columns)}
    got = {(r[0], r[1]): r for r in table.rows}
    assert set(rows) <= set(got), f"cells with rows missing from the table: {set(rows) - set(got)}"
    region_total = Counter()
    for (region, _), r in got.items():
        if not isinstance(r[col["victims"]], Suppressed):
            region_total[region] += r[col["victims"]]
    released = {"victims": 0, "recruited_as_minors": 0, "share_recruited_as_minors": 0}
    for cell, r in got.items():
        n = r[col["victims"]]
        if isinstance(n, Suppressed):
            assert isinstance(r[col["pct_of_region"]], Suppressed), cell
            continue
        released["victims"] += 1
        assert n == rows[cell], f"{cell}: {n} released, {rows[cell]} pooled"
        assert r[col["pct_of_region"]] == round(100 * rows[cell] / region_total[cell[0]], 1), cell
        if not isinstance(r[col["recruited_as_minors"]], Suppressed):
            released["recruited_as_minors"] += 1
            assert r[col["recruited_as_minors"]] == minors[cell], cell
        if not isinstance(r[col["share_recruited_as_minors"]], Suppressed):
            released["share_recruited_as_minors"] += 1
            assert r[col["share_recruited_as_minors"]] == pytest.approx(round(minors[cell] / rows[cell], 3)), cell
    for region in {c[0] for c in got}:  # the percents within each region add up to 100
        pcts = [r[col["pct_of_region"]] for c, r in got.items()
                if c[0] == region and not isinstance(r[col["pct_of_region"]], Suppressed)]
        assert sum(pcts) == pytest.approx(100, abs=0.05 * len(pcts)), region
    assert released["victims"] >= 12 and released["recruited_as_minors"] >= 8, released  # not vacuous


def plan_and_data():
    cat = load_catalog(CATALOG_PATH)
    plan = compile_plan(QUERY.read_text(encoding="utf-8"), cat, QUERY.name)
    return cat, plan, {d: str(EXAMPLES / "data" / f"{d}.csv") for d in DATASETS}


def test_oracle_on_the_shipped_data_equals_the_pooled_answer():
    cat, plan, data = plan_and_data()
    assert_equals_pooled(oracle_result(plan, cat, data))


@pytest.mark.mpc
def test_real_parties_on_the_shipped_data_equal_the_pooled_answer():
    cat, plan, data = plan_and_data()
    got = run_mpc(plan, data, catalog_path=CATALOG_PATH)
    assert_equals_pooled(got)
    assert got.rows == oracle_result(plan, cat, data).rows
