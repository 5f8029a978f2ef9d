"""Property tests of the runtime cell rules, on the plaintext oracle (no MPC, so fast).

The rules under test (spec/disclosure.md section 2), for every cell of the public group domain,
are applied by tests/rules_ref.py, written from the spec apart from the compiler: the cell rule
(>= k rows, some dataset with >= k distinct persons), the observer's complement (with police and
NGO both receiving, each organisation's own part of a cell must hold >= k rows and k persons),
and for an aggregate of a nullable column the own-count rule on the cell and on every complement.
Safety is also checked directly: a released cell always has >= k rows and >= k distinct persons
in the union.
"""
from __future__ import annotations

import csv
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed
from insightql.runtime.data.loader import load_dataset

from rules_ref import Cell, Rules, holdings
from tiers import examples

CATALOG = load_catalog(Path(__file__).resolve().parent / "corpus" / "catalog.toml")
K = 10  # police_victims and ngo_clients
REGIONS = ["North", "East"]  # of 4: data falls in few cells, so cell sizes straddle k
GENDERS = ["Feminine", "Masculine"]  # of 6
TYPES = ["SexualExploitation", "ForcedLabour", "Other"]
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])

# a row: (region, gender, minor, type, person, hours or None, age)
SIZES = st.sampled_from([0, 1, K - 1, K, K + 1, 2 * K]) | st.integers(0, 2 * K + 5)


@st.composite
def cell_rows(draw, org: int, region: str, gender: str) -> list[tuple]:
    """The rows of one (region, gender) block: its size, persons and nulls straddle k."""
    n = draw(SIZES)
    persons = draw(st.integers(min(n, max(1, n - 3)), max(n, 1)))
    nulls = draw(st.sampled_from([0, 1, K - 1, K, n]) | st.integers(0, n))
    first = 1000 * org + 100 * REGIONS.index(region) + 50 * GENDERS.index(gender)
    shared = draw(st.booleans())  # the same persons at both organisations (keys are keyed hashes)
    out = []
    for i in range(n):
        out.append((region, gender, draw(st.booleans()), draw(st.sampled_from(TYPES)),
                    (first % 1000 if shared else first) + i % persons,
                    None if i < nulls else draw(st.integers(0, 100)), draw(st.integers(0, 99))))
    return out


@st.composite
def org_rows(draw, org: int) -> list[tuple]:
    return [r for region in REGIONS for gender in GENDERS for r in draw(cell_rows(org, region, gender))]


def write(folder: Path, dataset: str, rows: list[tuple]) -> Path:
    ds = CATALOG.datasets[dataset]
    path = folder / f"{dataset}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ds.columns))
        w.writeheader()
        for region, gender, minor, typ, person, hours, age in rows:
            w.writerow({"person_id": person, "prs_Gender": gender, "prs_Age": age, "prs_Nationality": "NG",
                        "exp_Type": typ, "exp_Region": region, "identified_on": "2023-05-01",
                        "minor_at_recruitment": "true" if minor else "false",
                        "hours_worked_week": "" if hours is None else hours, "debt_eur": "", "interview_notes_len": 0})
    return path


def run(text: str, data: dict[str, list[tuple]]):
    res = compile_source(text, "q.iq", CATALOG)
    assert res.ok, "\n".join(d.render() for d in res.diagnostics)
    with tempfile.TemporaryDirectory() as tmp:
        tables = {}
        for n in res.plan["nodes"]:
            if n["op"] == "load":
                d = n["attrs"]["dataset"]
                path = write(Path(tmp), d, data.get(d, []))
                tables[d] = load_dataset(path, d, CATALOG.datasets[d], n["attrs"]["columns"])
        return run_plan_plaintext(res.plan, tables)


KEYS = {"exp_Region": 0, "prs_Gender": 1, "minor_at_recruitment": 2}


def reference(data: dict[str, list[tuple]], keys: list[str], types: list[str] | None) -> dict:
    """Per cell and dataset, computed directly from the rows (not from the plan)."""
    def new():
        return {"rows": defaultdict(int), "persons": defaultdict(set), "nonnull": defaultdict(int), "hours": 0,
                "ages": [], "with": defaultdict(set), "without": defaultdict(set), "records": defaultdict(int)}
    cells = defaultdict(new)
    for org, rows in data.items():
        for r in rows:
            if types is not None and r[3] not in types:
                continue
            c = cells[tuple(r[KEYS[k]] for k in keys)]
            c["rows"][org] += 1
            c["persons"][org].add(r[4])
            c["records"][(org, r[4])] += 1
            c["ages"].append(r[6])
            (c["with"] if r[5] is not None else c["without"])[org].add(r[4])
            if r[5] is not None:
                c["nonnull"][org] += 1
                c["hours"] += r[5]
    return cells


def as_cell(c, datasets: list[str]) -> Cell:
    return Cell({d: c["rows"][d] for d in datasets}, {d: CATALOG.datasets[d].owner for d in datasets},
                {d: len(c["persons"][d]) for d in datasets}, {"hours": {d: c["nonnull"][d] for d in datasets}},
                with_value={"hours": {d: len(c["with"][d]) for d in datasets}},
                without_value={"hours": {d: len(c["without"][d]) for d in datasets}},
                repeaters={d: sum(1 for (o, _), n in c["records"].items() if o == d and n >= 2) for d in datasets})


def rules_for(datasets: list[str]) -> Rules:
    owners = {CATALOG.datasets[d].owner for d in datasets}
    return Rules(K, 1, holdings(owners, {"police", "ngo", "helpline"}, len(CATALOG.party_names())))


@st.composite
def query_and_data(draw):
    source = draw(st.sampled_from(["police_victims", "ngo_clients", "police_victims UNION ALL ngo_clients"]))
    orgs = source.split(" UNION ALL ")
    keys = draw(st.lists(st.sampled_from(list(KEYS)), unique=True, max_size=2))
    types = draw(st.none() | st.lists(st.sampled_from(TYPES), min_size=1, unique=True))
    outputs = ["COUNT(*) AS n", "COUNT(hours_worked_week) AS h", "SUM(hours_worked_week) AS s",
               "AVG(prs_Age) AS a"] + ([] if len(orgs) > 1 else ["COUNT(DISTINCT person_id) AS d"])
    data = {o: draw(org_rows(i)) for i, o in enumerate(orgs)}
    text = (f"@purpose research\nSELECT {', '.join(keys + outputs)}\nFROM {source}"
            + (f"\nWHERE exp_Type IN ({', '.join(repr(t) for t in types)})" if types else "")
            + (f"\nGROUP BY {', '.join(keys)}" if keys else "") + ";")
    return text, data, keys, types


@SETTINGS
@given(query_and_data())
def test_cell_rule_on_random_queries(case):
    text, data, keys, types = case
    table = run(text, data)
    cells = reference(data, keys, types)
    datasets = list(data)
    rules = rules_for(datasets)
    col = {c: i for i, c in enumerate(table.columns)}
    domain = {"exp_Region": 4, "prs_Gender": 6, "minor_at_recruitment": 2}
    expected_rows = 1
    for k in keys:
        expected_rows *= domain[k]
    assert len(table.rows) == expected_rows, "every cell is shown, suppressed or not"
    for row in table.rows:
        c = cells[tuple(row[col[k]] for k in keys)]
        cell = as_cell(c, datasets)
        n = row[col["n"]]
        total = sum(c["rows"].values())
        union_persons = len(set().union(*c["persons"].values())) if c["persons"] else 0
        if not isinstance(n, Suppressed):  # safety, directly
            assert total >= K and union_persons >= K, (text, c)
            assert n == total
        assert isinstance(n, Suppressed) != rules.cell(cell), (text, c)  # exactly the rules
        ok = rules.value(cell, "hours", ["hours"])
        for name in ("h", "s"):
            assert isinstance(row[col[name]], Suppressed) != ok, (text, name, c)
        if ok:
            assert (row[col["h"]], row[col["s"]]) == (sum(c["nonnull"].values()), c["hours"])
        a = row[col["a"]]
        assert isinstance(a, Suppressed) != rules.cell(cell)
        if rules.cell(cell):
            assert a == pytest.approx(sum(c["ages"]) / len(c["ages"]))
        if "d" in col:
            d = row[col["d"]]
            assert isinstance(d, Suppressed) != rules.distinct(cell, union_persons), (text, c)
            if not isinstance(d, Suppressed):
                assert d == union_persons


def rows_for(n: int, persons: int, region="North", hours=40, first_person=1) -> list[tuple]:
    return [(region, "Feminine", False, "Other", first_person + i % persons, hours, 30) for i in range(n)]


COUNT_BY_REGION = "@purpose research\nSELECT exp_Region, COUNT(*) AS n, COUNT(hours_worked_week) AS h\n" \
                  "FROM {src}\nGROUP BY exp_Region;"


def north(table) -> list:
    return next(r for r in table.rows if r[0] == "North")


@pytest.mark.parametrize("n", [K - 1, K, K + 1])
def test_off_by_one_rows(n):
    r = north(run(COUNT_BY_REGION.format(src="police_victims"), {"police_victims": rows_for(n, n)}))
    assert isinstance(r[1], Suppressed) == (n < K)
    if n >= K:
        assert r[1] == n


@pytest.mark.parametrize("p", [K - 1, K, K + 1])
def test_off_by_one_persons(p):
    r = north(run(COUNT_BY_REGION.format(src="police_victims"), {"police_victims": rows_for(K + 5, p)}))
    assert isinstance(r[1], Suppressed) == (p < K)


@pytest.mark.parametrize("gap, released", [(0, True), (1, False), (K - 1, False), (K, True), (K + 1, True)])
def test_off_by_one_own_count(gap, released):
    data = rows_for(K, K) + rows_for(gap, gap, hours=None, first_person=100)
    r = north(run(COUNT_BY_REGION.format(src="police_victims"), {"police_victims": data}))
    assert r[1] == K + gap
    assert isinstance(r[2], Suppressed) != released


@pytest.mark.parametrize("police, ngo, released", [
    (K - 1, K - 1, False),  # 18 distinct persons in the union, but no organisation sees k: conservative
    (K, K - 1, False),  # police, receiving, subtracts its own rows: the NGO's part holds K - 1 persons
    (K - 1, K, False),
    (K, K, True),
])
def test_persons_in_every_observers_complement(police, ngo, released):
    data = {"police_victims": rows_for(police + 3, police), "ngo_clients": rows_for(ngo + 3, ngo, first_person=500)}
    r = north(run(COUNT_BY_REGION.format(src="police_victims UNION ALL ngo_clients"), data))
    assert isinstance(r[1], Suppressed) != released


@pytest.mark.parametrize("n", [4, 5, 6, 9, 10, 11])
def test_helpline_k5_and_rounding(n):
    """helpline_reports: k = 5, no person key, counts rounded down to multiples of 5."""
    ds = CATALOG.datasets["helpline_reports"]
    text = "@purpose research\nSELECT exp_Region, COUNT(*) AS n FROM helpline_reports GROUP BY exp_Region;"
    res = compile_source(text, "q.iq", CATALOG)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ds.columns))
            w.writeheader()
            for _ in range(n):
                w.writerow({"report_channel": "Phone", "exp_Type": "Other", "exp_Region": "North",
                            "reported_on": "2023-01-01", "victims_mentioned": 1, "caller_is_victim": "false"})
        load = next(x for x in res.plan["nodes"] if x["op"] == "load")
        table = run_plan_plaintext(res.plan, {"helpline_reports": load_dataset(path, "helpline_reports", ds,
                                                                               load["attrs"]["columns"])})
    r = north(table)
    assert isinstance(r[1], Suppressed) == (n < 5)
    if n >= 5:
        assert r[1] == n - n % 5
