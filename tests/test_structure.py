"""Structural relation between the cells of two queries (compiler/plan/structure.py): fast, no parties.

Hand-checked relations on the corpus catalog, then a randomized check against brute force over
EVERY domain value (the proof that the critical-value reduction is exact): random small queries
over a small catalog, each domain point written to CSV, loaded by the owners' own loader and
evaluated with their own predicate_mask / cell_index.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import time
import tomllib

import networkx as nx
import numpy as np
import pytest

from insightql.compiler.check.catalog import Catalog, load_catalog
from insightql.compiler.plan.guard import signature_of_plan
from insightql.compiler.plaintext.local_eval import predicate_mask
from insightql.compiler.plaintext.partials import cell_index
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.structure import relate
from insightql.runtime.data.loader import load_dataset

from conftest import CATALOG

CAT = load_catalog(CATALOG)
HEAD = "@purpose research\n"


def plan_of(text: str, cat: Catalog = CAT) -> dict:
    r = compile_source(HEAD + text, "q", cat)
    assert r.ok, [d.message for d in r.diagnostics]
    return r.plan


def query(text: str, cat: Catalog = CAT) -> dict:
    """{datasets, where, keys} of a compiled query, as its `partials` node carries them."""
    plan = plan_of(text, cat)
    attrs = next(n for n in plan["nodes"] if n["op"] == "partials")["attrs"]
    return {"datasets": list(plan["datasets"]), "where": attrs["where"], "keys": attrs["keys"]}


def by_region(where: str = "", frm: str = "police_victims") -> dict:
    return query(f"SELECT exp_Region, COUNT(*) AS n FROM {frm} {where} GROUP BY exp_Region;")


def total(where: str = "", frm: str = "police_victims") -> dict:
    return query(f"SELECT COUNT(*) AS n FROM {frm} {where};")


def grouped(key: str, where: str = "", frm: str = "police_victims") -> dict:
    return query(f"SELECT {key}, COUNT(*) AS n FROM {frm} {where} GROUP BY {key};")


EYE4 = np.eye(4, dtype=bool)
T4, F4 = np.ones(4, dtype=bool), np.zeros(4, dtype=bool)


def test_same_query_is_identity():
    q = by_region("WHERE prs_Age >= 18")
    r = relate(CAT, q, q)
    assert np.array_equal(r.possible, EYE4) and np.array_equal(r.new_inside_old, EYE4)
    assert np.array_equal(r.old_inside_new, EYE4) and np.array_equal(r.same, EYE4)
    assert r.covered_old.all() and r.covered_new.all()
    assert not r.new_outside.any() and not r.old_outside.any()
    assert r.components == [((i,), (i,)) for i in range(4)]
    assert all(r.component_closed(i) == (True, True) for i in range(4))
    plan = plan_of("SELECT exp_Region, COUNT(*) AS n FROM police_victims WHERE prs_Age >= 18 GROUP BY exp_Region;")
    earlier = signature_of_plan(plan)  # what a ledger records for a release
    assert np.array_equal(relate(CAT, q, earlier).same, EYE4)


def test_total_against_breakdown_both_ways():
    r = relate(CAT, total(), by_region())
    assert r.possible.shape == (1, 4) and r.possible.all()
    assert not r.new_inside_old.any() and r.old_inside_new.all()  # every region inside the total
    assert r.covered_new.all() and not r.covered_old.any()  # the total is the union of the regions
    assert r.components == [((0,), (0, 1, 2, 3))] and r.component_closed(0) == (True, True)
    back = relate(CAT, by_region(), total())
    assert back.new_inside_old.all() and not back.old_inside_new.any()
    assert back.covered_old.all() and not back.covered_new.any()


def test_extra_and_not_one_age():
    r = relate(CAT, by_region("WHERE NOT prs_Age = 77"), by_region())
    assert np.array_equal(r.new_inside_old, EYE4) and not r.old_inside_new.any()
    assert not r.covered_old.any()  # the age-77 rows could be in any old cell
    assert np.array_equal(r.new_outside, F4) and np.array_equal(r.old_outside, T4)
    assert r.component_closed(0) == (True, False)
    assert r.points <= 40  # prs_Age: 0, 76, 77, 78, 99 stand for all 100 ages


def test_region_removed_by_where():
    r = relate(CAT, by_region("WHERE exp_Region <> 'North'"), by_region())
    assert np.array_equal(r.new_nonempty, [False, True, True, True]) and r.old_nonempty.all()
    assert np.array_equal(r.same, np.diag([False, True, True, True]))
    assert np.array_equal(r.covered_old, [False, True, True, True])
    assert np.array_equal(r.old_outside, [True, False, False, False])
    assert r.components == [((1,), (1,)), ((2,), (2,)), ((3,), (3,)), ((), (0,))]  # by smallest new cell first


def test_in_list_with_one_value_dropped():
    new = grouped("exp_Type", "WHERE prs_Nationality IN ('NG', 'RO', 'BG')")
    old = grouped("exp_Type", "WHERE prs_Nationality IN ('NG', 'RO', 'BG', 'VN')")
    r = relate(CAT, new, old)
    assert np.array_equal(r.new_inside_old, np.eye(5, dtype=bool)) and not r.old_inside_new.any()
    assert not r.new_outside.any() and r.old_outside.all() and not r.covered_old.any()
    assert not r.covered_new.any()
    same = relate(CAT, new, grouped("exp_Type", "WHERE prs_Nationality = 'NG' OR prs_Nationality IN ('BG', 'RO')"))
    assert same.same.diagonal().all() and same.covered_old.all() and same.covered_new.all()


def test_between_narrowed_and_rewritten():
    narrow, wide = total("WHERE prs_Age BETWEEN 18 AND 64"), total("WHERE prs_Age BETWEEN 18 AND 65")
    r = relate(CAT, narrow, wide)
    assert r.new_inside_old[0, 0] and not r.old_inside_new[0, 0] and r.old_outside[0] and not r.covered_old[0]
    # the same rows written differently: decided over the domain, not by the text
    for text in ["WHERE NOT (prs_Age < 18 OR prs_Age > 65)", "WHERE prs_Age > 17 AND prs_Age < 66",
                 "WHERE prs_Age IN (18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38,"
                 " 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,"
                 " 64, 65)"]:
        assert relate(CAT, total(text), wide).same[0, 0], text
    assert relate(CAT, total("WHERE prs_Age >= 0"), total()).same[0, 0]  # the catalog's min is 0
    assert relate(CAT, total("WHERE prs_Age <= 98"), total()).old_outside[0]


def test_transform_of_a_column():
    ring = total("WHERE abs(prs_Age - 50) BETWEEN 5 AND 10")  # ages 40-45 and 55-60
    r = relate(CAT, ring, total("WHERE prs_Age < 50"))
    assert r.possible[0, 0] and r.new_outside[0] and r.old_outside[0]  # 40-45 on both sides; 55-60; 0-39
    r = relate(CAT, ring, total("WHERE prs_Age < 40 OR prs_Age > 60 OR prs_Age BETWEEN 46 AND 54"))
    assert not r.possible.any() and r.new_outside[0] and r.old_outside[0]
    r = relate(CAT, total("WHERE prs_Age + 5 > 30 AND -prs_Age >= -40 AND prs_Age * 2 <> 60"),
               total("WHERE prs_Age BETWEEN 26 AND 40 AND NOT prs_Age = 30"))
    assert r.same[0, 0] and r.points <= 60
    window = total("WHERE 60 - prs_Age BETWEEN 5 AND 10")  # ages 50-55
    r = relate(CAT, window, total())
    assert r.new_inside_old[0, 0] and r.old_outside[0]
    assert relate(CAT, window, total("WHERE prs_Age / 5 >= 10 AND prs_Age * -2 > -112")).same[0, 0]


def test_age_bands_recoded():
    new, old = grouped("bucket(prs_Age, [18, 30])"), grouped("bucket(prs_Age, [20, 30])")
    r = relate(CAT, new, old)  # new <18, [18,30), 30+ ; old <20, [20,30), 30+
    assert np.array_equal(r.possible, [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    assert np.array_equal(r.new_inside_old, [[1, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert np.array_equal(r.old_inside_new, [[0, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert np.array_equal(r.covered_old, [False, False, True]) and np.array_equal(r.covered_new, [False, False, True])
    assert r.components == [((0, 1), (0, 1)), ((2,), (2,))]
    assert r.component_closed(0) == (True, True)  # the 0-29 rows: a receiver can subtract sums
    default = relate(CAT, grouped("age_band(prs_Age)"), grouped("bucket(prs_Age, [18, 25, 35, 50, 65])"))
    assert np.array_equal(default.same, np.eye(6, dtype=bool))


def test_year_quarter_and_date_literals():
    year, quarter = grouped("year(identified_on)"), grouped("quarter(identified_on)")
    r = relate(CAT, year, quarter)
    assert r.possible.all() and not r.new_inside_old.any() and len(r.components) == 1
    both = query("SELECT year(identified_on), quarter(identified_on), COUNT(*) AS n FROM police_victims "
                 "GROUP BY year(identified_on), quarter(identified_on);")
    r = relate(CAT, both, year)
    assert np.array_equal(r.new_inside_old, np.repeat(np.eye(6, dtype=bool), 4, axis=0))  # (24, 6)
    assert r.covered_old.all()
    r = relate(CAT, both, quarter)
    assert np.array_equal(r.new_inside_old, np.tile(np.eye(4, dtype=bool), (6, 1))) and r.covered_old.all()
    since = relate(CAT, grouped("year(identified_on)", "WHERE identified_on >= DATE '2022-01-01'"), year)
    assert np.array_equal(since.new_nonempty, [False, False, True, True, True, True])
    assert np.array_equal(since.covered_old, [False, False, True, True, True, True])
    mid = relate(CAT, grouped("year(identified_on)", "WHERE identified_on > DATE '2021-12-31'"),
                 grouped("year(identified_on)", "WHERE identified_on >= DATE '2022-01-01'"))
    assert mid.same[2:, 2:].diagonal().all() and mid.covered_old.all()


def test_nullable_column_and_null_key():
    r = relate(CAT, by_region("WHERE hours_worked_week IS NULL"), by_region())
    assert np.array_equal(r.new_inside_old, EYE4) and not r.covered_old.any()
    every = relate(CAT, by_region("WHERE hours_worked_week IS NULL OR hours_worked_week >= 0"), by_region())
    assert np.array_equal(every.same, EYE4) and every.covered_old.all()  # 0..120 or NULL: every row
    known = relate(CAT, by_region("WHERE hours_worked_week >= 0"), by_region())
    assert not known.covered_old.any() and known.old_outside.all()  # the NULL rows are missing
    fine, coarse = grouped("hours_worked_week"), grouped("bucket(hours_worked_week, [40])")
    r = relate(CAT, fine, coarse)  # 121 values + NULL slot ; <40, 40+, NULL slot
    assert r.new_inside_old.shape == (122, 3)
    expect = np.zeros((122, 3), dtype=bool)
    expect[:40, 0], expect[40:121, 1], expect[121, 2] = True, True, True
    assert np.array_equal(r.new_inside_old, expect) and r.covered_old.all()
    assert np.array_equal(r.covered_new, np.arange(122) == 121)  # only the NULL cells hold the same rows


def test_union_all_against_one_dataset():
    r = relate(CAT, by_region(frm="police_victims UNION ALL ngo_clients"), by_region())
    assert np.array_equal(r.old_inside_new, EYE4) and not r.new_inside_old.any()
    assert r.new_outside.all() and not r.old_outside.any()  # the NGO's rows are in no old cell
    assert not r.covered_new.any() and not r.covered_old.any()
    assert r.components == [((i,), (i,)) for i in range(4)] and r.component_closed(0) == (False, True)
    other = relate(CAT, by_region(frm="ngo_clients"), by_region())
    assert not other.possible.any() and other.new_outside.all() and other.old_outside.all()


def test_undecidable_returns_none():
    wide = total("WHERE debt_eur > hours_worked_week")  # debt_eur: 10**7 values in arithmetic
    assert relate(CAT, wide, total()) is None and relate(CAT, total(), wide) is None
    assert relate(CAT, by_region("WHERE prs_Age >= 18"), by_region(), cap=10) is None
    join = {"datasets": ["join:police_victims+ngo_clients"], "where": {"join": "inner", "sides": [None, None]},
            "keys": []}  # a JOIN release's guard signature (compiler/plan/guard.py)
    assert relate(CAT, total(), join) is None
    small = total("WHERE prs_Age * 2 > hours_worked_week")  # both small: enumerated whole
    r = relate(CAT, small, total())
    assert r is not None and r.new_inside_old[0, 0] and r.old_outside[0]


def test_many_cells_vectorised():
    keys = "prs_Nationality, exp_Type, prs_Gender, exp_Region"
    new = query(f"SELECT {keys}, COUNT(*) AS n FROM police_victims WHERE prs_Age >= 18 GROUP BY {keys};")
    old = query(f"SELECT {keys}, COUNT(*) AS n FROM police_victims WHERE prs_Age >= 21 OR exp_Region = 'North' "
                f"GROUP BY {keys};")
    start = time.perf_counter()
    r = relate(CAT, new, old)
    assert time.perf_counter() - start < 20  # well under a second on a quiet machine
    assert r.possible.shape == (1200, 1200) and np.array_equal(r.possible, np.eye(1200, dtype=bool))
    north = np.arange(1200) % 4 == 0
    assert np.array_equal(r.new_inside_old.diagonal(), north) and np.array_equal(r.old_inside_new.diagonal(), ~north)
    assert not r.covered_new.any() and not r.covered_old.any()  # ages 18-20 / under 18 on one side only


# -- randomized: relate() against brute force over every domain value ------------------------------
SMALL = """
name = "small"
[datasets.d1]
owner = "p1"
[datasets.d1.policy]
min_group_size = 2
receivers = ["p1", "p2"]
[datasets.d1.columns]
a = { type = "integer", min = 0, max = 30 }
b = { type = "integer", min = -5, max = 12, nullable = true }
dt = { type = "date", min = 2020-11-15, max = 2021-03-10 }
c = { type = "category", domain = ["x", "y", "z"], nullable = true }
f = { type = "boolean" }
m = { type = "decimal", scale = 1, min = 0, max = 3, nullable = true }
[datasets.d2]
owner = "p2"
[datasets.d2.policy]
min_group_size = 2
receivers = ["p1", "p2"]
[datasets.d2.columns]
a = { type = "integer", min = 3, max = 40 }
b = { type = "integer", min = -5, max = 12, nullable = true }
dt = { type = "date", min = 2020-12-20, max = 2021-05-02 }
c = { type = "category", domain = ["z", "w", "x", "y"] }
f = { type = "boolean", nullable = true }
m = { type = "decimal", scale = 1, min = 0.5, max = 2.5 }
"""
SCAT = Catalog.model_validate(tomllib.loads(SMALL))
SOURCES = ["d1", "d2", "d1 UNION ALL d2", "d2 UNION ALL d1"]  # d2 first: another category encoding
KEYS = {"a": ["bucket(a, [10, 20])", "age_band(a, [5, 18])"], "b": ["b", "coalesce(b, 0)"], "c": ["c"], "f": ["f"],
        "dt": ["year(dt)", "month(dt)", "quarter(dt)"], "m": ["bucket(m, [1.5])"]}


def _atom(rng, labels: list[str], col: str) -> str:
    """A random condition on column `col` ("ab": on a and b together)."""
    def i(lo, hi):
        return int(rng.integers(lo, hi + 1))

    def day():
        return (dt.date(2020, 11, 1) + dt.timedelta(days=i(0, 220))).isoformat()

    op = ["=", "<>", "<", "<=", ">", ">="][i(0, 5)]
    atoms = {
        "a": [lambda: f"a {op} {i(-2, 42)}", lambda: f"a BETWEEN {i(0, 20)} AND {i(10, 42)}",
              lambda: f"a IN ({', '.join(str(i(0, 41)) for _ in range(i(1, 4)))})",
              lambda: f"least(a, {i(0, 35)}) {op} {i(0, 35)}", lambda: f"greatest({i(0, 35)}, a) {op} {i(0, 35)}",
              lambda: f"a + 3 {op} {i(0, 45)}", lambda: f"a * 2 {op} {i(0, 80)}", lambda: f"{i(0, 40)} - a {op} 7",
              lambda: f"a / 4 {op} {round(rng.uniform(0, 10), 2)}",
              lambda: (lambda lo, hi: f"bucket(a, [{lo}, {hi}]) = '[{lo},{hi})'")(i(1, 15), i(16, 35))],
        "b": [lambda: f"b {op} {i(-7, 14)}", lambda: "b IS NULL", lambda: f"abs(b) {op} {i(-1, 8)}",
              lambda: f"abs(b - {i(-3, 3)}) {op} {round(rng.uniform(0, 6), 1)}",
              lambda: f"coalesce(b, {i(-6, 13)}) {op} {i(-6, 13)}", lambda: f"-b {op} {i(-13, 6)}",
              lambda: f"b IN ({i(-6, 13)}, {i(-6, 13)})"],
        "dt": [lambda: f"dt {op} DATE '{day()}'", lambda: f"dt BETWEEN DATE '{day()}' AND DATE '{day()}'",
               lambda: f"year(dt) {op} {i(2020, 2021)}", lambda: f"month(dt) IN ({i(1, 12)}, {i(1, 12)})",
               lambda: f"quarter(dt) {op} {i(1, 4)}", lambda: f"dt IN (DATE '{day()}', DATE '{day()}')"],
        "m": [lambda: f"m {op} {[i(-1, 4), round(rng.uniform(-0.5, 3.5), 1), round(rng.uniform(0, 3), 2)][i(0, 2)]}",
              lambda: "m IS NOT NULL", lambda: f"round(m, 0) = {i(0, 3)}", lambda: f"m * 10 {op} {i(0, 30)}",
              lambda: f"m BETWEEN {round(rng.uniform(0, 2), 1)} AND {round(rng.uniform(1, 3), 2)}"],
        "c": [lambda: f"c = '{labels[i(0, len(labels) - 1)]}'", lambda: f"c IN ('{labels[0]}', '{labels[-1]}')",
              lambda: f"c <> '{labels[i(0, len(labels) - 1)]}'", lambda: "c IS NULL"],
        "f": [lambda: "f", lambda: "NOT f", lambda: "f IS NULL"],
        "ab": [lambda: "a > b", lambda: f"{i(0, 40)} - a < b", lambda: f"coalesce(b, a) {op} {i(-3, 30)}"],
    }[col]
    return atoms[i(0, len(atoms) - 1)]()


def random_query(rng, focus: list[str]) -> tuple[str, str, list[str]]:
    """(source, WHERE expression or '', group keys), mostly about the columns in `focus`."""
    src = SOURCES[int(rng.integers(0, 4))]
    labels = {"d1": ["x", "y", "z"], "d2": ["z", "w", "x", "y"]}.get(src, ["x", "y", "z", "w"])
    cols = focus + (["ab"] if {"a", "b"} <= set(focus) else [])
    atoms = [_atom(rng, labels, str(rng.choice(cols))) for _ in range(int(rng.integers(0, 5)))]
    expr = atoms[0] if atoms else ""
    for a in atoms[1:]:
        expr = f"({expr}) {['AND', 'OR'][int(rng.integers(0, 2))]} {'NOT ' if rng.random() < 0.2 else ''}({a})"
    pool = sorted({k for c in (focus if rng.random() < 0.7 else list(KEYS)) for k in KEYS[c]})
    return src, expr, [str(k) for k in rng.choice(pool, min(len(pool), int(rng.integers(0, 3))), replace=False)]


def render(src: str, where: str, keys: list[str]) -> str:
    sel = ", ".join(keys + ["COUNT(*) AS n"])
    return f"SELECT {sel} FROM {src}" + (f" WHERE {where}" if where else "") + \
        (f" GROUP BY {', '.join(keys)}" if keys else "")


def random_pair(rng) -> list[str]:
    """Two random queries, or (as the guard meets them) one query and a variant of it: one more
    condition, other keys, or another source."""
    focus = [str(c) for c in rng.choice(["a", "b", "dt", "m", "c", "f"], int(rng.integers(1, 3)), replace=False)]
    new = random_query(rng, focus)
    if rng.random() < 0.5:
        return [render(*new), render(*random_query(rng, focus))]
    src, where, keys = new
    other = random_query(rng, focus)
    change = int(rng.integers(0, 3))
    if change == 0:
        extra = _atom(rng, ["x", "y", "z"], focus[0])
        old = (src, f"({where}) AND NOT ({extra})" if where else f"NOT ({extra})", keys)
    elif change == 1:
        old = (src, where, other[2])
    else:
        old = (other[0], where.replace("'w'", "'x'"), keys)
    return [render(*new), render(*old)]


def _domain(col) -> list[str]:
    """Every value of a column, as CSV text ('' for NULL)."""
    t = col.type
    if t == "category":
        vals = list(col.domain)
    elif t == "boolean":
        vals = ["false", "true"]
    elif t == "integer":
        vals = [str(v) for v in range(col.min, col.max + 1)]
    elif t == "date":
        vals = [(col.min + dt.timedelta(days=k)).isoformat() for k in range((col.max - col.min).days + 1)]
    else:
        f = 10 ** col.scale
        vals = [f"{k / f:.{col.scale}f}" for k in range(round(col.min * f), round(col.max * f) + 1)]
    return vals + ([""] if col.nullable else [])


def brute_pairs(plans: list[dict], tmp_path) -> set[tuple[int, int]] | None:
    """(new cell, old cell) of every domain row (full enumeration), via the owners' loader."""
    parts = [next(n for n in p["nodes"] if n["op"] == "partials")["attrs"] for p in plans]
    loads = [{n["attrs"]["dataset"]: n["attrs"]["columns"] for n in p["nodes"] if n["op"] == "load"} for p in plans]
    out = set()
    for d in sorted(set(plans[0]["datasets"]) | set(plans[1]["datasets"])):
        ds = SCAT.datasets[d]
        read = set().union(*(set(ld.get(d, {})) for ld in loads))
        doms = {c: (_domain(col) if c in read else [_domain(col)[0]]) for c, col in ds.columns.items()}
        if math.prod(len(v) for v in doms.values()) > 40_000:
            return None
        path = tmp_path / f"{d}.csv"
        rows = itertools.product(*doms.values())
        path.write_text(",".join(doms) + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
        cells = []
        for part, ld in zip(parts, loads):
            if d not in ld:
                cells.append(None)
                continue
            table, n = load_dataset(path, d, ds, ld[d])
            cells.append(np.where(predicate_mask(part["where"], table, n), cell_index(part["keys"], table, n), -1))
        n = next(len(c) for c in cells if c is not None)
        cn, ce = [c if c is not None else np.full(n, -1) for c in cells]
        out |= set(zip(cn.tolist(), ce.tolist()))
    return out


def reference(pairs: set, cN: int, cE: int) -> dict:
    """Every field of a Relation from the set of realised (n, e) pairs, by plain loops."""
    part_n = {n: {e for m, e in pairs if m == n} for n in range(cN)}
    part_e = {e: {n for n, f in pairs if f == e} for e in range(cE)}
    g = nx.Graph()
    g.add_nodes_from([("n", n) for n in range(cN) if part_n[n]] + [("e", e) for e in range(cE) if part_e[e]])
    g.add_edges_from((("n", n), ("e", e)) for n, e in pairs if n >= 0 and e >= 0)
    return {
        "possible": [[(n, e) in pairs for e in range(cE)] for n in range(cN)],
        "new_nonempty": [bool(part_n[n]) for n in range(cN)], "old_nonempty": [bool(part_e[e]) for e in range(cE)],
        "new_inside_old": [[part_n[n] == {e} for e in range(cE)] for n in range(cN)],
        "old_inside_new": [[part_e[e] == {n} for n in range(cN)] for e in range(cE)],
        "new_outside": [-1 in part_n[n] for n in range(cN)], "old_outside": [-1 in part_e[e] for e in range(cE)],
        "covered_old": [all(n >= 0 and part_n[n] == {e} for n in part_e[e]) for e in range(cE)],
        "covered_new": [all(e >= 0 and part_e[e] == {n} for e in part_n[n]) for n in range(cN)],
        "components": {(tuple(sorted(x for s, x in c if s == "n")), tuple(sorted(x for s, x in c if s == "e")))
                       for c in nx.connected_components(g)},
    }


@pytest.mark.parametrize("seed", range(60))
def test_random_queries_agree_with_brute_force(seed, tmp_path):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 3:
        texts = random_pair(rng)
        plans = [plan_of(t, SCAT) for t in texts]
        pairs = brute_pairs(plans, tmp_path)
        if pairs is None:
            continue  # too many domain rows to enumerate in a fast test
        qs = [query(t, SCAT) for t in texts]
        r = relate(SCAT, qs[0], qs[1])
        assert r is not None, texts
        ref = reference(pairs, *r.possible.shape)
        for field, want in ref.items():
            got = set(r.components) if field == "components" else getattr(r, field).tolist()
            assert got == want, (field, texts)
        checked += 1


# a window T(x) op L1 AND T(x) op L2 on one transform T of a column: a wrong preimage of L1 or L2
# (abs without -L, + instead of -, * instead of /, ...) leaves the window without a representative
WINDOWS = {
    "a": (["a", "a + 3", "17 - a", "a * 2", "a * -3", "a / 4", "-a", "least(a, 12)", "greatest(9, a)",
           "least(a - 5, 20)", "abs(a - 14)", "greatest(abs(13 - a), 4)"], (-60, 60)),
    "b": (["b", "abs(b)", "abs(b - 2)", "abs(-b + 3)", "coalesce(b, 4)", "-b", "coalesce(b * 2, -3)",
           "least(b, 3) * -1", "abs(b) + 0.5"], (-15, 15)),
    "m": (["m", "m * 10", "m - 0.55", "abs(m - 1.25)", "-m + 2", "m / 0.3"], (-4, 12)),
}


@pytest.mark.parametrize("col", sorted(WINDOWS))
@pytest.mark.parametrize("seed", range(8))
def test_transform_windows_agree_with_brute_force(col, seed, tmp_path):
    rng = np.random.default_rng(1000 + seed)
    transforms, (lo, hi) = WINDOWS[col]
    src = ["d1", "d2", "d1 UNION ALL d2"][seed % 3]
    for t in transforms:
        def lit():
            x = rng.uniform(lo, hi)
            return [str(int(round(x))), f"{x:.1f}", f"{x:.2f}"][int(rng.integers(0, 3))]

        ops = [str(o) for o in rng.choice(["=", "<>", "<", "<=", ">", ">="], 3)]
        a, b = sorted([float(lit()), float(lit())])
        new = f"({t} >= {a} AND {t} {ops[0]} {b}) OR {t} = {lit()}"
        plain = f"{col} {ops[1]} {rng.uniform(*{'a': (0, 40), 'b': (-5, 12), 'm': (0, 3)}[col]):.1f}"
        old = plain if rng.random() < 0.5 else f"{transforms[int(rng.integers(0, len(transforms)))]} {ops[1]} {lit()}"
        keys = [] if rng.random() < 0.5 else [str(rng.choice(KEYS[col] if col in KEYS else ["c"]))]
        texts = [render(src, new, keys), render(src, old, [])]
        plans = [plan_of(x, SCAT) for x in texts]
        pairs = brute_pairs(plans, tmp_path)
        r = relate(SCAT, query(texts[0], SCAT), query(texts[1], SCAT))
        ref = reference(pairs, *r.possible.shape)
        for field, want in ref.items():
            got = set(r.components) if field == "components" else getattr(r, field).tolist()
            assert got == want, (field, texts)
