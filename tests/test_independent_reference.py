"""Compiler results against an independent reference (issue 15, item 7).

The reference (tests/independent_ref.py) shares nothing with the compiler or the runtime: SQLite on
the pooled CSV rows, the release rules of spec/disclosure.md applied by tests/rules_ref.py and by
the few rules written there. Every aggregate kind is compared with it: COUNT(*), COUNT(x), SUM,
AVG, VAR, STDDEV, MEDIAN, MIN, MAX, PERCENTILE, COUNT(DISTINCT person_id), with HAVING, ORDER BY,
LIMIT and the dominance rule. The corpus catalog is tests/corpus/catalog_percentile.toml: the
corpus catalog where prs_Age also allows the opt-in PERCENTILE.

1. the plaintext oracle (compiler/plaintext/oracle.py) on many seeded random cases (fast, no parties);
2. real parties (`run_mpc`) on a fixed handful of small cases, compared with the reference directly;
3. mutations: a plan broken the way a compiler bug would break it (a threshold one too low, a
   dropped test of a value flag), its hash recomputed so it looks valid: the reference catches the
   oracle's result on data built for it, and real parties refuse the plan (their own compilation
   gives another hash);
4. a control: enough cells are released, and every aggregate kind is both released and withheld
   somewhere, so the comparisons above are not comparisons of suppression marks only.
"""
from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_io import plan_hash
from insightql.compiler.plaintext.results import ResultTable, Suppressed

from conftest import AVG_REL, CATALOG, compile_plan, oracle_result, run_mpc
from independent_ref import QUOTIENTS, Agg, Expected, QuerySpec, Reference, Withheld
from randdata import random_rows, write_csv

STRICT = CATALOG.parent / "catalog_strict.toml"
CORPUS = CATALOG.parent / "catalog_percentile.toml"  # the corpus catalog, PERCENTILE allowed on prs_Age
CAT, CAT_STRICT = load_catalog(CORPUS), load_catalog(STRICT)
REF, REF_STRICT = Reference(CORPUS), Reference(STRICT)
POLICE, NGO, SHELTER = "police_victims", "ngo_clients", "shelter_stays"
N_CASES = 320  # oracle cases; about 0.03 s each
ORACLE_REL = 1e-9  # the oracle divides in floating point, like the reference


# -- comparison -----------------------------------------------------------------------------------
REASON = {"cell": "fewer than k=", "value": "value withheld"}  # the table's reasons (results.py)


def differences(got: ResultTable, want: Expected, qs: QuerySpec, cols, rel: float) -> list[str]:
    """Every cell where the compiler's table and the reference differ (empty: they agree). Counts,
    integer sums, MEDIAN, MIN and MAX exactly; AVG, VAR, STDDEV within `rel`; decimal sums within
    1e-9; suppressed and withheld marks by their reason."""
    if got.columns != want.columns:
        return [f"columns {got.columns} != {want.columns}"]
    out = []
    if len(got.rows) != len(want.rows):
        out.append(f"{len(got.rows)} rows, the reference has {len(want.rows)}:\n  got  {got.rows}\n  want {want.rows}")
    nk = len(qs.keys)
    for r, (g, w) in enumerate(zip(got.rows, want.rows)):
        if list(g[:nk]) != list(w[:nk]):
            out.append(f"row {r}: keys {g[:nk]} != {w[:nk]}")
            continue
        for i, a in enumerate(qs.aggs):
            gv, wv = g[nk + i], w[nk + i]
            if isinstance(wv, Withheld):
                ok = isinstance(gv, Suppressed) and gv.reason.startswith(REASON[wv.kind])
            elif isinstance(gv, Suppressed) or gv is None or wv is None:
                ok = False
            elif a.func in QUOTIENTS:
                ok = math.isclose(gv, wv, rel_tol=rel, abs_tol=1e-6 if a.func != "stddev" else 1e-3)
            elif a.func == "sum" and cols[a.column].type == "decimal":
                ok = math.isclose(gv, wv, rel_tol=1e-12, abs_tol=1e-9)
            else:
                ok = gv == wv
            if not ok:
                out.append(f"row {r} {w[:nk]} a{i}={a.iq()}: compiler {gv!r}, reference {wv!r}")
    return out


def check(got: ResultTable, want: Expected, qs: QuerySpec, cols, rel: float, data: str = "") -> None:
    diff = differences(got, want, qs, cols, rel)
    cells = "\n".join(f"  {key}: {cell}" for key, cell in want.detail.items()
                      if any(repr(list(key)) in d for d in diff))
    assert not diff, "the compiler's result differs from the independent reference\n" + qs.iq() + "\n" + \
        "\n".join(diff[:12]) + (f"\n{data}" if data else "") + (f"\nthe reference's cells:\n{cells}" if cells else "")


# -- random cases ---------------------------------------------------------------------------------
SOURCES = [(POLICE,), (NGO,), (POLICE, NGO), (POLICE, NGO)]
KEYS = {"exp_Region": 4, "exp_Type": 5, "minor_at_recruitment": 2, "prs_Gender": 6, "prs_Nationality": 10}
AGGS = ([Agg("count_rows"), Agg("count_distinct", "person_id")]
        + [Agg(f, "prs_Age") for f in ("count", "sum", "avg", "var", "stddev", "median", "min", "max")]
        + [Agg("percentile", "prs_Age", p) for p in (10, 50, 90)]
        + [Agg(f, "hours_worked_week") for f in ("count", "sum", "avg", "var", "stddev", "median")]
        + [Agg(f, "debt_eur") for f in ("count", "sum", "avg", "var", "stddev")]
        + [Agg("count_if", cond=(c, c)) for c in ("prs_Age >= 30", "hours_worked_week > 40")]  # 2.13
        + [Agg("share_if", cond=(c, c)) for c in ("minor_at_recruitment", "prs_Age >= 45")])
COLS = CAT.datasets[POLICE].columns  # ngo_clients declares the same columns
# catalog_strict.toml: the dominance rule (1, 60), k = 5; police_stays declares another clamp for
# stay_days (IQ322 over the UNION ALL), so only support_eur is summed there
STRICT_SOURCES = [(SHELTER,), (SHELTER,), ("police_stays", SHELTER)]
STRICT_KEYS = {"region": 4, "nationality": 4}
STRICT_AGGS = [Agg("count_rows"), Agg("count_distinct", "person_id"), Agg("count", "support_eur"),
               Agg("sum", "support_eur"), Agg("count", "payment_eur")]
SHELTER_AGGS = STRICT_AGGS + [Agg("count", "stay_days"), Agg("sum", "stay_days"), Agg("median", "stay_days")]
STRICT_COLS = CAT_STRICT.datasets[SHELTER].columns


def exact_order(a: Agg, mpc: bool) -> bool:
    """Outputs an ORDER BY may use in a case: exact values (near-ties of fixed-point quotients may
    swap under MPC); the oracle and the reference divide alike, so AVG of an integer column too."""
    if a.func in ("count_rows", "count", "count_distinct", "count_if", "median", "percentile", "min", "max", "sum"):
        return True
    return a.func == "avg" and not mpc and COLS[a.column].type == "integer"


def random_where(rng: np.random.Generator) -> tuple[str, str] | None:
    """(iq, sql): one or two conditions, or None."""
    def one():
        kind = int(rng.integers(0, 8))
        if kind == 0:
            a, b = sorted(int(x) for x in rng.integers(0, 100, 2))
            t = f"prs_Age BETWEEN {a} AND {b + 30}"
            return t, t
        if kind == 1:
            vals = rng.choice(COLS["exp_Type"].domain, size=int(rng.integers(1, 4)), replace=False)
            t = f"exp_Type {'NOT ' if rng.random() < 0.4 else ''}IN ({', '.join(repr(str(v)) for v in vals)})"
            return t, t
        if kind == 2:
            t = f"hours_worked_week IS {'NOT ' if rng.random() < 0.7 else ''}NULL"
            return t, t
        if kind == 3:  # NULL hours: the condition is NULL, and NOT NULL is NULL, so the row is dropped
            t = f"NOT (hours_worked_week > {int(rng.integers(20, 100))})"
            return t, t
        if kind == 4:
            d = f"202{int(rng.integers(0, 5))}-0{int(rng.integers(1, 10))}-15"
            return f"identified_on >= DATE '{d}'", f"identified_on >= '{d}'"
        if kind == 5:
            t = f"debt_eur < {int(rng.integers(1000, 90000))}.50"
            return t, t
        if kind == 6:
            t = "prs_Gender <> 'Feminine'"
            return t, t
        t = f"prs_Age >= {int(rng.integers(0, 40))}"
        return t, t

    return _conditions(rng, one)


def strict_where(rng: np.random.Generator) -> tuple[str, str] | None:
    def one():
        kind = int(rng.integers(0, 3))
        if kind == 0:
            t = f"stay_days >= {int(rng.integers(0, 40))}"
        elif kind == 1:
            vals = rng.choice(STRICT_COLS["region"].domain, size=int(rng.integers(1, 4)), replace=False)
            t = f"region IN ({', '.join(repr(str(v)) for v in vals)})"
        else:
            t = f"support_eur < {int(rng.integers(500, 30000))}.50"
        return t, t

    return _conditions(rng, one)


def _conditions(rng, one) -> tuple[str, str] | None:
    if rng.random() < 0.35:
        return None
    conds = [one() for _ in range(int(rng.integers(1, 3)))]
    glue = " AND " if rng.random() < 0.7 else " OR "
    return glue.join(f"({c[0]})" for c in conds), glue.join(f"({c[1]})" for c in conds)


def random_query(rng: np.random.Generator, strict: bool = False, mpc: bool = False) -> QuerySpec:
    sources, key_sizes = (STRICT_SOURCES, STRICT_KEYS) if strict else (SOURCES, KEYS)
    datasets = sources[int(rng.integers(0, len(sources)))]
    aggs_from = (SHELTER_AGGS if datasets == (SHELTER,) else STRICT_AGGS) if strict else AGGS
    n_keys = int(rng.choice([0, 1, 1, 1, 2]))
    while True:
        keys = tuple(str(k) for k in rng.choice(list(key_sizes), size=n_keys, replace=False)) if n_keys else ()
        if math.prod(key_sizes[k] for k in keys) <= 24:
            break
    idx = rng.choice(len(aggs_from), size=int(rng.integers(1, 5)), replace=False)
    aggs = tuple(aggs_from[i] for i in sorted(idx))
    where = (strict_where if strict else random_where)(rng)
    if strict and not keys and not where:  # IQ323: shelter_stays may not be counted as a whole
        where = ("stay_days >= 1", "stay_days >= 1")
    cells = math.prod(key_sizes[k] for k in keys)
    k = 5 if strict else 10
    having = int(rng.integers(k, 6 * k)) if rng.random() < 0.25 else None
    orderable = [i for i, a in enumerate(aggs) if exact_order(a, mpc)]
    order = (int(rng.choice(orderable)), bool(rng.random() < 0.6)) if orderable and rng.random() < 0.45 else None
    limit = int(rng.integers(1, cells + 1)) if rng.random() < 0.3 else None
    return QuerySpec(datasets, aggs, keys, where[0] if where else None, where[1] if where else None,
                     having, order, limit)


def random_data(rng: np.random.Generator, datasets: tuple[str, ...]) -> dict[str, list[dict]]:
    """Rows per dataset: sizes from empty to a few hundred, NULLs, repeated persons at the police,
    values at and beyond the clamp bounds."""
    out = {}
    for d in datasets:
        ds = CAT.datasets[d]
        n = int(rng.choice([0, 12, 40, 90, 150, 250, 250, 400, 400]))
        pool = None if d == NGO else rng.choice([None, n // 4 + 1, n // 2 + 1])
        rows = random_rows(ds, n, rng, null_rate=float(rng.choice([0.0, 0.03, 0.2, 0.5])),
                           key_pool=int(pool) if pool else None)
        for r in rows:  # edges: the declared bounds (hours and debt go beyond their clamps by themselves)
            if rng.random() < 0.1:
                r["prs_Age"] = str(rng.choice([0, 99]))
            if r["hours_worked_week"] != "" and rng.random() < 0.1:
                r["hours_worked_week"] = str(rng.choice([0, 100, 101, 120]))
        out[d] = rows
    return out


def strict_data(rng: np.random.Generator, datasets: tuple[str, ...]) -> dict[str, list[dict]]:
    """Stays; in most datasets one person (the first row's) has 15% of the rows, each of 365 days
    (clamped to 180 at shelter_stays) and 99999 EUR (clamped to 20000), beside short, cheap stays:
    some cells have a dominant person, others not."""
    out = {}
    for d in datasets:
        n = int(rng.choice([0, 8, 20, 40, 80, 150, 150]))
        pool = rng.choice([None, n // 2 + 1, n // 4 + 1])
        rows = random_rows(CAT_STRICT.datasets[d], n, rng, key_pool=int(pool) if pool else None)
        if rows and rng.random() < 0.7:
            whale = rows[0]["person_id"]
            for r in rows:
                if rng.random() < 0.15:
                    r.update(person_id=whale, stay_days="365", support_eur="99999.00")
                else:
                    r.update(stay_days=str(int(rng.integers(0, 30))), support_eur=f"{rng.uniform(0, 3000):.2f}")
        out[d] = rows
    return out


@lru_cache(maxsize=None)
def case(seed: int) -> tuple[QuerySpec, dict[str, list[dict]], bool]:
    """(query, rows per dataset, whether on catalog_strict.toml): every fourth case is a strict one."""
    rng = np.random.default_rng([15, 7, seed])
    strict = seed % 4 == 3
    qs = random_query(rng, strict)
    return qs, (strict_data if strict else random_data)(rng, qs.datasets), strict


def catalogs(strict: bool):
    """(compiler's catalog, reference, catalog path, the columns of the first dataset)."""
    return (CAT_STRICT, REF_STRICT, STRICT, STRICT_COLS) if strict else (CAT, REF, CORPUS, COLS)


def write(folder: Path, rows: dict[str, list[dict]], cat=CAT) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {d: str(write_csv(folder / f"{d}.csv", cat.datasets[d], r)) for d, r in rows.items()}


def compile_spec(qs: QuerySpec, cat=CAT) -> dict:
    res = compile_source(qs.iq(), "q.iq", cat)
    assert res.plan is not None, "generated query does not compile:\n" + qs.iq() + \
        "\n".join(d.render() for d in res.diagnostics)
    return res.plan


@pytest.fixture(scope="module")
def case_files(tmp_path_factory) -> dict[int, dict[str, str]]:
    root = tmp_path_factory.mktemp("independent-ref")
    return {s: write(root / f"case{s}", case(s)[1], catalogs(case(s)[2])[0]) for s in range(N_CASES)}


# -- 1. the oracle against the reference, many cases ----------------------------------------------
@pytest.mark.parametrize("chunk", range(8))
def test_oracle_matches_independent_reference(chunk, case_files):
    for seed in range(chunk, N_CASES, 8):
        qs, _, strict = case(seed)
        cat, ref, _, cols = catalogs(strict)
        paths = case_files[seed]
        plan = compile_spec(qs, cat)
        check(oracle_result(plan, cat, paths), ref.expected(qs, paths), qs, cols, ORACLE_REL, f"seed {seed}")


def test_random_cases_release_enough_and_cover_every_aggregate(case_files):
    """A control: the comparisons above mean something only if cells are released (>= 20% of them),
    every aggregate kind is released in some cell and withheld in another, SUM is withheld for
    dominance (a released cell of catalog_strict.toml, where nothing else withholds a SUM) and
    released beside it, and HAVING, ORDER BY, LIMIT and UNION ALL each occur."""
    cells = released = 0
    shown, withheld = set(), set()
    dominance = {"released": 0, "withheld": 0}
    for seed in range(N_CASES):
        qs, _, strict = case(seed)
        want = catalogs(strict)[1].expected(qs, case_files[seed])
        cells, released = cells + want.cells, released + want.released
        nk = len(qs.keys)
        for row in want.rows:
            for a, v in zip(qs.aggs, row[nk:]):
                (withheld if isinstance(v, Withheld) else shown).add(a.func)
                if strict and a.func == "sum" and v != Withheld("cell"):
                    dominance["withheld" if v == Withheld("value") else "released"] += 1
    assert released >= 0.2 * cells, f"only {released} of {cells} cells released"
    kinds = {a.func for a in AGGS}
    assert shown == kinds, f"never released: {kinds - shown}"
    assert withheld == kinds, f"never withheld: {kinds - withheld}"
    assert min(dominance.values()) >= 5, dominance
    specs = [case(s)[0] for s in range(N_CASES)]
    assert sum(q.having_min_rows is not None for q in specs) >= 20
    assert sum(q.order_by is not None for q in specs) >= 40
    assert sum(q.limit is not None for q in specs) >= 30
    assert sum(len(q.datasets) == 2 for q in specs) >= 60


# -- data with planted cells ------------------------------------------------------------------------
def planted(ds_name: str, key: str, sizes: dict, seed: int, cat=CAT, persons: dict | None = None,
            nulls: dict | None = None, **kw) -> list[dict]:
    """Random rows with exactly `sizes[v]` rows where `key` = v (other columns random); `persons[v]`:
    the person ids of those rows, in order; `nulls[(column, v)]`: how many of them have no value."""
    rng = np.random.default_rng(seed)
    rows = random_rows(cat.datasets[ds_name], sum(sizes.values()), rng, **kw)
    labels = [v for v, n in sizes.items() for _ in range(n)]
    seen: dict = {}
    for r, v in zip(rows, labels):
        r[key] = str(v).lower() if isinstance(v, bool) else v
        j = seen[v] = seen.get(v, -1) + 1
        if persons and v in persons:
            r["person_id"] = str(persons[v][j])
        for (col, at), n in (nulls or {}).items():
            if at == v and j < n:
                r[col] = ""
    return rows


def ids(start: int, n: int, step: int = 1) -> list[int]:
    return list(range(start, start + step * n, step))


def shelter_rows() -> list[dict]:
    """shelter_stays (catalog_strict.toml, dominance (1, 60), k = 5): North is spec 2.7's example (one
    person 180 days, nine 1 day each: SUM withheld, COUNT 10 released); South: one person's three
    stays of 150 days hold 450 of 720 (62.5%) although no single stay holds more than 21%: withheld
    because contributions are persons; East: balanced; West: 4 rows, suppressed."""
    rng = np.random.default_rng(2)
    out, pid = [], 100

    def stay(region, days, person=None):
        nonlocal pid
        if person is None:
            pid += 1
        out.append({"person_id": str(person if person is not None else pid), "region": region,
                    "nationality": str(rng.choice(["NG", "RO", "VN", "OTHER"])), "stay_days": str(days),
                    "support_eur": f"{rng.uniform(0, 25000):.2f}", "payment_eur": f"{rng.uniform(0, 900):.2f}",
                    "case_notes_len": str(int(rng.integers(0, 500)))})

    stay("North", 365)  # clamped to 180
    for _ in range(9):
        stay("North", 1)
    for _ in range(3):
        stay("South", 150, person=7)
    for _ in range(9):
        stay("South", 30)
    for d in rng.integers(20, 60, 12):
        stay("East", int(d))
    for d in rng.integers(20, 60, 4):
        stay("West", int(d))
    return out


# -- 2. real parties against the reference ---------------------------------------------------------
def a(func, col=None, p=None):
    return Agg(func, col, p)


MPC_CASES = {
    # one dataset with repeated persons: per-person MEDIAN; SUM, AVG, MIN, MAX; ORDER BY + LIMIT
    "police_median_min_max": (
        QuerySpec((POLICE,), (a("count_rows"), a("sum", "prs_Age"), a("avg", "prs_Age"), a("median", "prs_Age"),
                              a("min", "prs_Age"), a("max", "prs_Age")), ("exp_Region",),
                  order_by=(3, True), limit=3),
        lambda: {POLICE: planted(POLICE, "exp_Region", {"North": 34, "East": 16, "South": 10, "West": 9}, 11,
                                 key_pool=30)}),
    # UNION ALL of two receiving owners: observer complements; VAR, STDDEV, nullable columns, pairs.
    # False: 12 police rows (12 persons) without hours: the rows without a value are 0 or >= k in the
    # cell and in both complements, so the hours values are released; True: 3 police rows without
    # hours: withheld (values.left_out, on the complement the NGO does not hold)
    "union_var_stddev": (
        QuerySpec((POLICE, NGO), (a("count_rows"), a("count", "hours_worked_week"), a("avg", "hours_worked_week"),
                                  a("var", "prs_Age"), a("stddev", "hours_worked_week"), a("count", "debt_eur")),
                  ("minor_at_recruitment",), "identified_on >= DATE '2020-03-01'", "identified_on >= '2020-03-01'"),
        lambda: {POLICE: planted(POLICE, "minor_at_recruitment", {False: 50, True: 22}, 12, null_rate=0.0,
                                 persons={False: ids(1, 50), True: ids(101, 22)},
                                 nulls={("hours_worked_week", False): 12, ("hours_worked_week", True): 3}),
                 NGO: planted(NGO, "minor_at_recruitment", {False: 44, True: 14}, 13, null_rate=0.0)}),
    # linked distinct persons across owners, MEDIAN of a clamped column, HAVING, ORDER BY + LIMIT.
    # SexualExploitation: 12 persons in both, 28 only at the police, 18 only at the NGO: the
    # distinct count is released; ForcedLabour: 5 in both (rows - distinct = 5, linkage.shared):
    # withheld; ForcedCriminality: released, 23 rows, dropped by HAVING; DomesticServitude (5
    # police rows) and Other (4 NGO rows): suppressed, sorted last, Other cut by LIMIT
    "union_distinct_having": (
        QuerySpec((POLICE, NGO), (a("count_rows"), a("count_distinct", "person_id"), a("median", "hours_worked_week")),
                  ("exp_Type",), having_min_rows=25, order_by=(0, True), limit=3),
        lambda: {POLICE: planted(POLICE, "exp_Type", {"SexualExploitation": 40, "ForcedLabour": 24,
                                                      "ForcedCriminality": 13, "DomesticServitude": 5, "Other": 12},
                                 14, null_rate=0.0,
                                 persons={"SexualExploitation": ids(1, 40), "ForcedLabour": ids(101, 24),
                                          "ForcedCriminality": ids(201, 13), "DomesticServitude": ids(301, 5),
                                          "Other": ids(401, 12)}),
                 NGO: planted(NGO, "exp_Type", {"SexualExploitation": 30, "ForcedLabour": 12, "ForcedCriminality": 10,
                                                "DomesticServitude": 15, "Other": 4}, 15, null_rate=0.0,
                              persons={"SexualExploitation": ids(29, 30), "ForcedLabour": ids(120, 12),
                                       "ForcedCriminality": ids(1001, 10), "DomesticServitude": ids(2001, 15),
                                       "Other": ids(3001, 4)})}),
    # decimals: SUM, AVG, VAR of a scaled, clamped, nullable column; WHERE with OR and IS NOT NULL
    "ngo_decimals": (
        QuerySpec((NGO,), (a("count_rows"), a("sum", "debt_eur"), a("avg", "debt_eur"), a("var", "debt_eur"),
                           a("max", "prs_Age")), ("exp_Type",),
                  "debt_eur IS NOT NULL OR prs_Age < 30", "debt_eur IS NOT NULL OR prs_Age < 30", order_by=(4, False)),
        lambda: {NGO: planted(NGO, "exp_Type", {"SexualExploitation": 36, "ForcedLabour": 25, "ForcedCriminality": 12,
                                                "DomesticServitude": 9, "Other": 18}, 16, null_rate=0.1)}),
    # PERCENTILE beside MEDIAN, persons with several rows: p5 needs 21 values (percentile.rank), so
    # North (40 rows of 30 persons) releases it, East (20 persons) and South (12) withhold it, West (6
    # rows) is suppressed; p90 needs 10 values: released in every released cell
    "police_percentiles": (
        QuerySpec((POLICE,), (a("count_rows"), a("percentile", "prs_Age", 5), a("median", "prs_Age"),
                              a("percentile", "prs_Age", 90)), ("exp_Region",)),
        lambda: {POLICE: planted(POLICE, "exp_Region", {"North": 40, "East": 20, "South": 12, "West": 6}, 18,
                                 persons={"North": [1 + i % 30 for i in range(40)], "East": ids(101, 20),
                                          "South": ids(201, 12), "West": ids(301, 6)})}),
    # the dominance rule per person (catalog_strict.toml): see shelter_rows
    "shelter_dominance": (
        QuerySpec((SHELTER,), (a("count_rows"), a("sum", "stay_days"), a("sum", "support_eur"),
                               a("median", "stay_days")),
                  ("region",)),
        lambda: {SHELTER: shelter_rows()}),
    # HAVING that drops released cells and keeps suppressed ones, WHERE on the measure, MIN/MAX,
    # STDDEV; COUNT(DISTINCT) withheld where persons repeat (Feminine), released where not (Masculine)
    "police_having": (
        QuerySpec((POLICE,), (a("count_rows"), a("min", "prs_Age"), a("max", "prs_Age"), a("stddev", "prs_Age"),
                              a("count_distinct", "person_id")), ("prs_Gender",),
                  "prs_Age BETWEEN 12 AND 70", "prs_Age BETWEEN 12 AND 70", having_min_rows=20),
        lambda: {POLICE: planted(POLICE, "prs_Gender", {"Feminine": 40, "Masculine": 45, "TransgenderFeminine": 14,
                                                        "NonConforming": 6, "NonSpecifiedUnknown": 16}, 17,
                                 persons={"Feminine": [1 + i % 33 for i in range(40)], "Masculine": ids(101, 45),
                                          "TransgenderFeminine": ids(201, 14), "NonConforming": ids(301, 6),
                                          "NonSpecifiedUnknown": ids(401, 16)})}),
}


@pytest.mark.parametrize("name", list(MPC_CASES))
def test_mpc_cases_match_reference_in_the_oracle(name, tmp_path):
    """The fixed MPC cases through the oracle too (fast), and what each is built to show."""
    qs, rows = MPC_CASES[name]
    cat, ref, _, cols = catalogs(name == "shelter_dominance")
    paths = write(tmp_path, rows(), cat)
    want = ref.expected(qs, paths)
    check(oracle_result(compile_spec(qs, cat), cat, paths), want, qs, cols, ORACLE_REL)
    shown = [v for r in want.rows for v in r[len(qs.keys):]]
    assert any(isinstance(v, Withheld) for v in shown) and any(not isinstance(v, Withheld) for v in shown), \
        "each case shows released and suppressed values"
    if name == "shelter_dominance":
        by = {r[0]: r[1:] for r in want.rows}
        assert by["North"][0] == 10 and by["North"][1] == Withheld("value")  # spec 2.7's example
        assert by["South"][0] == 12 and by["South"][1] == Withheld("value")  # a person, not a row, dominates
        assert by["East"][0] == 12 and not isinstance(by["East"][1], Withheld)
        assert by["West"][0] == Withheld("cell")
    if name == "police_having":
        assert len(want.rows) < want.cells, "HAVING removes a released cell"
    if name == "police_percentiles":
        by = {r[0]: r[1:] for r in want.rows}
        assert not isinstance(by["North"][1], Withheld)  # 30 persons: rank ceil(5 * 30 / 100) = 2
        assert by["East"][1] == Withheld("value") and by["South"][1] == Withheld("value")
        assert not isinstance(by["East"][3], Withheld) and by["West"][0] == Withheld("cell")


@pytest.mark.mpc
@pytest.mark.parametrize("name", list(MPC_CASES))
def test_real_parties_match_independent_reference(name, tmp_path):
    qs, rows = MPC_CASES[name]
    cat, ref, cat_path, cols = catalogs(name == "shelter_dominance")
    paths = write(tmp_path, rows(), cat)
    got = run_mpc(compile_spec(qs, cat), paths, catalog_path=cat_path)
    check(got, ref.expected(qs, paths), qs, cols, AVG_REL)


# -- 3. mutations: a broken plan that still looks valid --------------------------------------------
MUTATION_QUERY = QuerySpec((POLICE,), (a("count_rows"), a("avg", "prs_Age")), ("exp_Region",))


def nine_row_cell(seed: int = 21) -> list[dict]:
    """A cell of exactly 9 rows and 9 persons (East) beside cells of 10, 25 and 30."""
    rows = planted(POLICE, "exp_Region", {"North": 30, "East": 9, "South": 10, "West": 25}, seed)
    for i, r in enumerate(rows):
        r["person_id"] = str(1000 + i)  # one row per person
    return rows


def with_hash(plan: dict) -> dict:
    plan["hash"] = plan_hash(plan)
    return plan


def lower_threshold(plan: dict, rules: tuple[str, ...], new: int) -> dict:
    """The bug `k - 1`: every ge_const test of `rules` against k gets `new`; the hash recomputed."""
    p = copy.deepcopy(plan)
    k = p["policy"]["min_group_size"]
    hit = [n for n in p["nodes"]
           if n["op"] == "ge_const" and n["attrs"].get("rule") in rules and n["attrs"]["const"] == k]
    assert hit, f"no ge_const node of {rules}"
    for n in hit:
        n["attrs"]["const"] = new
    return with_hash(p)


def drop_flag_input(plan: dict, rules: tuple[str, ...]) -> dict:
    """The bug 'a value flag forgets a test': the nodes of `rules` are removed from the inputs of the
    `and` nodes that combine a value's flag (those without a rule of their own); hash recomputed."""
    p = copy.deepcopy(plan)
    gone = {n["id"] for n in p["nodes"] if n["attrs"].get("rule") in rules}
    assert gone, f"no node of {rules}"
    dropped = 0
    for n in p["nodes"]:
        if n["op"] == "and" and "rule" not in n["attrs"] and gone & set(n["inputs"]):
            n["inputs"] = [i for i in n["inputs"] if i not in gone]
            dropped += 1
    assert dropped and all(n["inputs"] for n in p["nodes"] if n["op"] == "and")
    return with_hash(p)


def no_person_key_catalog(folder: Path) -> Path:
    """The corpus catalog with police_victims declared without a person key: there, `cell.rows` is the
    only test of a cell's size (with one, `cell.persons` also asks for k persons, which a cell of
    k-1 rows cannot hold)."""
    text = CATALOG.read_text(encoding="utf-8")
    head, sep, tail = text.partition("[datasets.police_victims]")
    tail = tail.replace('person_key = "person_id"\n', "", 1)
    path = folder / "catalog_no_person_key.toml"
    path.write_text(head + sep + tail, encoding="utf-8")
    return path


def test_mutation_threshold_is_caught_by_the_reference(tmp_path):
    """A plan whose cell.rows test asks for 9 rows instead of 10 (hash recomputed): its oracle result
    releases the 9-row cell, the reference suppresses it, and the comparison says so. With a person
    key, the same mutation alone changes nothing (cell.persons still asks for 10 persons), so the
    reference agrees there; lowering both tests is caught again."""
    cat_path = no_person_key_catalog(tmp_path)
    cat, ref = load_catalog(cat_path), Reference(cat_path)
    paths = write(tmp_path / "data", {POLICE: nine_row_cell()}, cat)
    qs = MUTATION_QUERY
    plan = compile_spec(qs, cat)
    want = ref.expected(qs, paths)
    assert {r[0]: r[1] for r in want.rows}["East"] == Withheld("cell")
    check(oracle_result(plan, cat, paths), want, qs, COLS, ORACLE_REL)  # the intact plan agrees

    bad = lower_threshold(plan, ("cell.rows",), 9)
    got = oracle_result(bad, cat, paths)
    assert {r[0]: r[1] for r in got.rows}["East"] == 9  # the broken plan releases the cell of 9
    diff = differences(got, want, qs, COLS, ORACLE_REL)
    assert diff and all("'East'" in d for d in diff), diff

    # with the person key (corpus catalog): cell.rows alone is masked by cell.persons ...
    paths_pk = write(tmp_path / "data_pk", {POLICE: nine_row_cell()})
    plan_pk = compile_spec(qs)
    want_pk = REF.expected(qs, paths_pk)
    masked = oracle_result(lower_threshold(plan_pk, ("cell.rows",), 9), CAT, paths_pk)
    assert not differences(masked, want_pk, qs, COLS, ORACLE_REL)
    # ... and k - 1 in both tests of the cell is caught
    both = oracle_result(lower_threshold(plan_pk, ("cell.rows", "cell.persons"), 9), CAT, paths_pk)
    assert differences(both, want_pk, qs, COLS, ORACLE_REL)


def three_without_hours() -> list[dict]:
    """Police rows, one per person: North has 3 of its 30 rows without hours (a group of 1..k-1 the
    own-count rule protects: AVG withheld), South none of 20 (AVG released)."""
    return planted(POLICE, "exp_Region", {"North": 30, "South": 20, "East": 4}, 23, null_rate=0.0,
                   persons={"North": ids(1, 30), "South": ids(101, 20), "East": ids(201, 4)},
                   nulls={("hours_worked_week", "North"): 3})


MUTATIONS = {
    # SUM under catalog_strict.toml's (1, 60) rule, its flag without sum.dominance: North (spec 2.7's
    # example) and South (a person with three stays) are released by the broken plan
    "dominance": (MPC_CASES["shelter_dominance"][0], True, lambda: {SHELTER: shelter_rows()},
                  ("sum.dominance",), {"North", "South"}),
    # AVG of a nullable column, its flag without the tests of the rows lacking a value (in rows and
    # in persons): North's 3 rows without hours go unnoticed by the broken plan
    "own_count": (QuerySpec((POLICE,), (a("count_rows"), a("avg", "hours_worked_week")), ("exp_Region",)), False,
                  lambda: {POLICE: three_without_hours()}, ("values.left_out", "values.persons"), {"North"}),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_dropped_flag_test_is_caught_by_the_reference(name, tmp_path):
    """A value flag that lost a test (hash recomputed): the broken plan releases the value in the
    cells built for it; the intact plan agrees with the reference, the broken one differs exactly there."""
    qs, strict, rows, rules, where = MUTATIONS[name]
    cat, ref, _, cols = catalogs(strict)
    paths = write(tmp_path, rows(), cat)
    plan = compile_spec(qs, cat)
    want = ref.expected(qs, paths)
    check(oracle_result(plan, cat, paths), want, qs, cols, ORACLE_REL)
    got = oracle_result(drop_flag_input(plan, rules), cat, paths)
    diff = differences(got, want, qs, cols, ORACLE_REL)
    assert diff, f"the reference did not notice a flag without {rules}"
    cells = {str(r[0]) for r in want.rows}
    assert {c for d in diff for c in cells if f"'{c}'" in d} == where, diff


@pytest.mark.mpc
def test_mutated_plan_through_real_parties(tmp_path):
    """Real parties recompile the plan's source with their own catalog: a plan broken after compilation
    (hash recomputed) is refused by every party before any share is sent. That refusal is one outcome;
    if the parties ever ran it, the reference must catch the result."""
    from insightql.runtime.launch.launcher import LaunchError
    from insightql.runtime.launch.party import EXIT_REFUSED

    cat_path = no_person_key_catalog(tmp_path)
    cat, ref = load_catalog(cat_path), Reference(cat_path)
    paths = write(tmp_path / "data", {POLICE: nine_row_cell()}, cat)
    qs = MUTATION_QUERY
    bad = lower_threshold(compile_spec(qs, cat), ("cell.rows",), 9)
    try:
        got = run_mpc(bad, paths, catalog_path=cat_path)
    except LaunchError as e:
        assert e.code == EXIT_REFUSED, e
        assert "refused the plan: recompiling the source with" in str(e), e
        assert "(differs in: nodes)" in str(e) and "no data was shared" in str(e), e
        # the same plan through the oracle path, which does not recompile: caught by the reference
        assert differences(oracle_result(bad, cat, paths), ref.expected(qs, paths), qs, COLS, ORACLE_REL)
    else:
        assert differences(got, ref.expected(qs, paths), qs, COLS, AVG_REL), \
            "parties ran a broken plan and the reference did not notice"
