"""An independent reference for InsightQL results: SQLite on the pooled rows + the release rules.

Issue 15, item 7. compiler/plaintext/oracle.py runs the compiled plan on plaintext and shares the owners'
pre-aggregation (`partials.py`), the result assembly (`results.py`) and the data loader with the
runtime, so a wrong threshold or a missing flag in a plan matches on both sides. This module shares
NOTHING with the compiler or the runtime (it imports neither): it reads the catalog TOML with
tomllib, the CSV files with `csv`, computes every aggregate with stdlib `sqlite3` (MEDIAN and the
per-person dominance contributions in plain Python from rows SQLite returns), and decides every
release with `tests/rules_ref.py` (written from spec/disclosure.md) plus the rules that module does
not cover, written here from spec/disclosure.md:

* 2.4 `variance.rows`: VAR/STDDEV need at least 2 rows with a value;
* 2.7 `sum.dominance`: 100 * top_n <= k% * abs on the cell and on every possible complement, the
  contributions being persons (each person's values in the cell added up per dataset, the top n
  bounded above by the sum over datasets of each dataset's n largest);
* 2.13 `filter.rows`, `filter.persons`: COUNT(*) FILTER (WHERE p) and AVG(p) of a condition that
  is never NULL count the subgroup of the cell where p holds; the subgroup and the rest of the cell
  each hold >= k' rows (the rest, under rounding, on the rounded counts: >= k + b - 1) and some
  dataset with >= k' persons, in the cell and on every largest observer's complement (strict);
  besides, the subgroup is a count of the cell like a nullable column's rows with a value (2.4,
  2.5: the pair rule with every other count; here modelled as the column `CASE WHEN p THEN 1 END`);
* 2.8 MEDIAN: one value per (person, dataset), each person's values in the cell reduced to their
  lower median first; then the lower median of those values; PERCENTILE(x, p) of the same values:
  the value at rank r = ceil(p n / 100) of the n sorted values, withheld (`percentile.rank`) unless
  2 <= r <= n - 1 (under rounding to b: unless n reaches the least such count rounded up to b);
* 2.10 HAVING on the values as released (0 unless released, counts rounded);
* 2.11 ORDER BY released values only, suppressed (or withheld) sort values last in domain order;
  HAVING removes released cells only; LIMIT keeps the first n rows of the ordered table.

Conventions learned from reading compiler code (conventions, not rules; each says where):

* cells are listed in the order of the GROUP BY keys' domains, the last key fastest, a boolean
  key as [False, True] (the plan's `table` node `keys[].values`);
* ties of an ORDER BY value keep that order, and suppressed rows keep it (results.assemble sorts
  stably);
* AVG/VAR/STDDEV are computed by MPC in fixed point with 24 fractional bits (circuit.FRAC_BITS):
  this reference computes them in floating point, and the tests compare them with a relative
  tolerance;
* decimals are aggregated as integers scaled by 10**scale (spec/plan.md "Slots"; partials.py),
  so SUM of a decimal column is exact here too;
* MIN, MAX and MEDIAN read the clamped value like the other slots (spec/plan.md "Slots"); for
  prs_Age the clamp is the column's whole range, so it makes no difference there.

The query is not parsed from .iq text: a small structured `QuerySpec` (which the tests render to
.iq with `QuerySpec.iq()`) gives the datasets, WHERE as SQL text, group keys, aggregates, HAVING
COUNT(*) >= m, ORDER BY one output and LIMIT.
"""
from __future__ import annotations

import csv
import math
import sqlite3
import tomllib
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from rules_ref import Cell, Rules, down, holdings, kprime, largest

# aggregate -> its .iq spelling
AGG_IQ = {"count_rows": "COUNT(*)", "count": "COUNT({})", "sum": "SUM({})", "avg": "AVG({})", "var": "VAR({})",
          "stddev": "STDDEV({})", "median": "MEDIAN({})", "min": "MIN({})", "max": "MAX({})",
          "count_distinct": "COUNT(DISTINCT {})", "percentile": "PERCENTILE({}, {})",
          "count_if": "COUNT(*) FILTER (WHERE {2})", "share_if": "AVG({2})"}
COUNTS = ("count_rows", "count", "count_distinct", "count_if")
QUOTIENTS = ("avg", "var", "stddev", "share_if")
SUBGROUPS = ("count_if", "share_if")  # a count of the rows where a condition holds (2.13)  # computed in fixed point by MPC: compared approximately


# -- the query ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Agg:
    func: str  # a key of AGG_IQ
    column: str | None = None
    p: int | None = None  # PERCENTILE's percent
    cond: tuple[str, str] | None = None  # FILTER's / AVG's condition: (.iq, SQLite), never NULL for AVG

    def iq(self) -> str:
        return AGG_IQ[self.func].format(self.column, self.p, self.cond[0] if self.cond else None)


def subgroup(i: int) -> str:
    """The column of f that holds aggregate i's subgroup indicator: 1 where its condition holds, else NULL."""
    return f"_sg{i}"


@dataclass(frozen=True)
class QuerySpec:
    datasets: tuple[str, ...]  # one dataset, or the datasets of a UNION ALL
    aggs: tuple[Agg, ...]
    keys: tuple[str, ...] = ()  # GROUP BY columns (category or boolean)
    where_iq: str | None = None  # the same condition in .iq and in SQLite's SQL
    where_sql: str | None = None
    having_min_rows: int | None = None  # HAVING COUNT(*) >= m
    order_by: tuple[int, bool] | None = None  # (index into aggs, descending)
    limit: int | None = None

    @property
    def names(self) -> list[str]:
        return list(self.keys) + [f"a{i}" for i in range(len(self.aggs))]

    def iq(self) -> str:
        sel = list(self.keys) + [f"{a.iq()} AS a{i}" for i, a in enumerate(self.aggs)]
        lines = ["@purpose research", f"SELECT {', '.join(sel)}", f"FROM {' UNION ALL '.join(self.datasets)}"]
        if self.where_iq:
            lines.append(f"WHERE {self.where_iq}")
        if self.keys:
            lines.append(f"GROUP BY {', '.join(self.keys)}")
        if self.having_min_rows is not None:
            lines.append(f"HAVING COUNT(*) >= {self.having_min_rows}")
        if self.order_by is not None:
            i, desc = self.order_by
            lines.append(f"ORDER BY a{i} {'DESC' if desc else 'ASC'}")
        if self.limit is not None:
            lines.append(f"LIMIT {self.limit}")
        return "\n".join(lines) + ";\n"


# -- the catalog, read from TOML ------------------------------------------------------------------
@dataclass
class Column:
    type: str
    domain: list | None = None
    scale: int = 0
    clamp: tuple | None = None
    nullable: bool = False


@dataclass
class Dataset:
    owner: str
    person_key: str | None
    k: int
    rounding: int
    receivers: set[str]
    dominance: tuple[int, int] | None  # (n, k%)
    columns: dict[str, Column]


@dataclass
class RefCatalog:
    parties: list[str]
    datasets: dict[str, Dataset]


def read_catalog(path: str | Path) -> RefCatalog:
    doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    datasets = {}
    for name, d in doc["datasets"].items():
        pol = d["policy"]
        dom = pol.get("dominance")
        cols = {c: Column(v["type"], list(v["domain"]) if "domain" in v else None, v.get("scale", 0),
                          tuple(v["clamp"]) if "clamp" in v else None, bool(v.get("nullable", False)))
                for c, v in d["columns"].items()}
        datasets[name] = Dataset(d["owner"], d.get("person_key"), pol["min_group_size"], pol.get("round_counts_to", 1),
                                 set(pol["receivers"]), (dom["n"], dom["k"]) if dom else None, cols)
    return RefCatalog(list(doc["parties"]), datasets)


@dataclass
class Policy:
    """The effective policy of the datasets read (spec/disclosure.md section 2, preamble)."""

    k: int
    base: int
    receivers: set[str]
    dominance: tuple[int, int] | None
    person: bool

    @classmethod
    def of(cls, cat: RefCatalog, names: tuple[str, ...]) -> "Policy":
        ds = [cat.datasets[d] for d in names]
        doms = [d.dominance for d in ds if d.dominance]
        return cls(max(d.k for d in ds), max(d.rounding for d in ds), set.intersection(*(d.receivers for d in ds)),
                   (max(n for n, _ in doms), min(k for _, k in doms)) if doms else None,
                   any(d.person_key for d in ds))


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Withheld:
    kind: str  # "cell": the cell is suppressed; "value": the cell is released, this value is not

    def __repr__(self) -> str:
        return f"<{self.kind} suppressed>"


@dataclass
class Expected:
    columns: list[str]
    rows: list[list]  # key labels, then values or Withheld
    cells: int = 0  # cells of the public domain
    released: int = 0  # of them, released (before HAVING and LIMIT)
    detail: dict = field(default_factory=dict)  # per cell (key tuple): its rules_ref.Cell, for messages


# -- SQLite ---------------------------------------------------------------------------------------
SQL_TYPE = {"integer": "INTEGER", "key": "INTEGER", "boolean": "INTEGER", "decimal": "REAL"}


def _convert(col: Column, s: str):
    if s == "":
        return None
    if col.type == "boolean":
        return {"true": 1, "false": 0}[s.strip().lower()]
    if col.type in ("integer", "key"):
        return int(s)
    if col.type == "decimal":
        return float(s)
    return s  # category labels and ISO dates (which compare as text)


def load_sqlite(cat: RefCatalog, paths: dict[str, str]) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    for name, path in paths.items():
        cols = cat.datasets[name].columns
        decl = ", ".join(f"{q(c)} {SQL_TYPE.get(v.type, 'TEXT')}" for c, v in cols.items())
        con.execute(f'CREATE TABLE "{name}" ({decl})')
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [[_convert(cols[c], r[c]) for c in cols] for r in csv.DictReader(fh)]
        con.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(cols))})', rows)
    return con


def q(name: str) -> str:
    return f'"{name}"'


def _value_sql(col_name: str, col: Column) -> str:
    """A row's contribution: clamped to the owner's bounds, a decimal scaled to an integer."""
    x = q(col_name)
    if col.clamp is not None:
        x = f"MIN(MAX({x}, {col.clamp[0]}), {col.clamp[1]})"
    return f"CAST(ROUND({x} * {10 ** col.scale}) AS INTEGER)"


# -- the reference --------------------------------------------------------------------------------
class Reference:
    def __init__(self, catalog_path: str | Path):
        self.cat = read_catalog(catalog_path)

    def expected(self, qs: QuerySpec, paths: dict[str, str]) -> Expected:
        cat = self.cat
        names = qs.datasets
        cols = cat.datasets[names[0]].columns
        measures = sorted({a.column for a in qs.aggs if a.column and a.func != "count_distinct"})
        subgroups = {subgroup(i): a.cond[1] for i, a in enumerate(qs.aggs) if a.func in SUBGROUPS}
        for m in measures:  # IQ322 makes the owners agree; the reference relies on it
            assert len({(cat.datasets[d].columns[m].clamp, cat.datasets[d].columns[m].scale) for d in names}) == 1
        pol = Policy.of(cat, names)
        con = load_sqlite(cat, {d: paths[d] for d in names})
        # f: the rows that pass WHERE, of every dataset read, with the dataset, the person and each
        # measure's contribution (v_<column>) beside the raw columns
        parts = []
        for d in names:
            pk = cat.datasets[d].person_key
            sel = ", ".join([f"'{d}' AS _ds", f"{q(pk) if pk else 'NULL'} AS _pk"] + [q(k) for k in qs.keys]
                            + [q(m) for m in measures]
                            + [f"{_value_sql(m, cols[m])} AS {q('v_' + m)}" for m in measures]
                            + [f"CASE WHEN ({c}) THEN 1 END AS {q(sg)}" for sg, c in subgroups.items()])
            parts.append(f'SELECT {sel} FROM "{d}"' + (f" WHERE {qs.where_sql}" if qs.where_sql else ""))
        con.execute("CREATE TEMP TABLE f AS " + " UNION ALL ".join(parts))
        keys_sql = ", ".join(q(k) for k in qs.keys)
        group = f" GROUP BY {keys_sql}" if qs.keys else ""
        nk = len(qs.keys)

        whole = self._whole_cell(con, qs, cols, keys_sql, group, nk)
        nullable = [m for m in measures if cols[m].nullable] + sorted(subgroups)  # every count of a part
        per = self._per_dataset(con, qs, nullable, keys_sql, nk)
        medians = self._medians(con, qs, cols, keys_sql, nk)
        tops = self._tops(con, qs, pol, keys_sql, nk)
        con.close()

        owners = {d: cat.datasets[d].owner for d in names}
        rules = Rules(pol.k, pol.base, holdings(set(owners.values()), pol.receivers, len(cat.parties)))
        domains = [[False, True] if cols[k].type == "boolean" else cols[k].domain for k in qs.keys]
        out = Expected(qs.names, [])
        table = []  # (released, count of rows as released, row)
        for combo in product(*domains):
            sql_key = tuple(int(x) if isinstance(x, bool) else x for x in combo)
            cell = self._cell(per.get(sql_key, {}), names, owners, pol, nullable)
            vals = whole.get(sql_key)
            distinct_all = vals["distinct"] if vals else 0
            if pol.person and len(names) > 1 and any(a.func == "count_distinct" for a in qs.aggs):
                cell.linked_persons = distinct_all  # 2.1: the query counts persons across owners anyway
            released = rules.cell(cell)
            out.cells += 1
            out.released += released
            out.detail[combo] = cell
            row = list(combo)
            for i, a in enumerate(qs.aggs):
                if not released:
                    row.append(Withheld("cell"))
                    continue
                ok = self._value_ok(a, i, cell, rules, pol, nullable, vals, tops.get((sql_key, i)), owners,
                                    medians.get((sql_key, i)))
                if not ok:
                    row.append(Withheld("value"))
                    continue
                row.append(self._released_value(a, i, vals, medians.get((sql_key, i)), cols, pol))
            rows_released = down(cell_rows(cell), pol.base) if released else 0
            table.append((released, rows_released, row))
        # 2.10/2.11: HAVING on released values, then ORDER BY released values, then LIMIT
        rows = [row for rel, n, row in table
                if not (rel and qs.having_min_rows is not None and not n >= qs.having_min_rows)]
        if qs.order_by is not None:
            j = nk + qs.order_by[0]
            present = [r for r in rows if not isinstance(r[j], Withheld) and r[j] is not None]
            absent = [r for r in rows if isinstance(r[j], Withheld) or r[j] is None]
            rows = sorted(present, key=lambda r: r[j], reverse=qs.order_by[1]) + absent
        if qs.limit is not None:
            rows = rows[: qs.limit]
        out.rows = rows
        return out

    # -- SQL per cell ---------------------------------------------------------------------------
    def _whole_cell(self, con, qs, cols, keys_sql, group, nk) -> dict[tuple, dict]:
        """{cell: {"rows", "distinct", i: (count, sum, avg, min, max) of aggregate i's column}} and the
        variance of each column by two passes (the cell's mean, then squared deviations)."""
        exprs = ["COUNT(*)", "COUNT(DISTINCT _pk)"]
        for i, a in enumerate(qs.aggs):
            c = a.column if a.column and a.func != "count_distinct" else None
            if a.func in SUBGROUPS:
                exprs += [f"COUNT({q(subgroup(i))})"] + ["NULL"] * 4
            elif c is None:
                exprs += ["NULL"] * 5
            else:
                v = q("v_" + c)
                exprs += [f"COUNT({q(c)})", f"SUM({v})", f"AVG({v})", f"MIN({v})", f"MAX({v})"]
        lead = f"{keys_sql}, " if nk else ""
        out = {}
        for r in con.execute(f"SELECT {lead}{', '.join(exprs)} FROM f{group}"):
            key, rest = tuple(r[:nk]), r[nk:]
            d = {"rows": rest[0], "distinct": rest[1]}
            for i in range(len(qs.aggs)):
                d[i] = rest[2 + 5 * i: 7 + 5 * i]
            out[key] = d
        for i, a in enumerate(qs.aggs):
            if a.func not in ("var", "stddev"):
                continue
            v = q("v_" + a.column)
            on = " AND ".join(f"f.{q(k)} = g.{q(k)}" for k in qs.keys) or "1"
            gsel = f"{keys_sql}, " if nk else ""
            lead_f = ", ".join(f"f.{q(k)}" for k in qs.keys) + (", " if nk else "")
            sql = (f"SELECT {lead_f}SUM((f.{v} - g.m) * (f.{v} - g.m)) / (COUNT(f.{v}) - 1) FROM f "
                   f"JOIN (SELECT {gsel}AVG({v}) AS m FROM f{group}) AS g ON {on} WHERE f.{v} IS NOT NULL"
                   + (f" GROUP BY {lead_f[:-2]}" if nk else ""))
            for r in con.execute(sql):
                if tuple(r[:nk]) in out:
                    out[tuple(r[:nk])][("var", i)] = r[nk]
        return out

    def _per_dataset(self, con, qs, nullable, keys_sql, nk) -> dict[tuple, dict[str, dict]]:
        """{cell: {dataset: rows, persons, counts and the persons behind each group of rows}} for the
        nullable columns and subgroup indicators `nullable`."""
        lead = f"{keys_sql}, " if nk else ""
        pairs = [(x, y) for i, x in enumerate(nullable) for y in nullable[i + 1:]]
        exprs = ["COUNT(*)", "COUNT(DISTINCT _pk)"]
        exprs += [f"COUNT({q(c)})" for c in nullable]
        exprs += [f"COUNT(DISTINCT CASE WHEN {q(c)} IS NOT NULL THEN _pk END)" for c in nullable]
        exprs += [f"COUNT(DISTINCT CASE WHEN {q(c)} IS NULL THEN _pk END)" for c in nullable]
        exprs += [f"COUNT(DISTINCT CASE WHEN ({q(x)} IS NULL) <> ({q(y)} IS NULL) THEN _pk END)" for x, y in pairs]
        out: dict[tuple, dict[str, dict]] = {}
        for r in con.execute(f"SELECT {lead}_ds, {', '.join(exprs)} FROM f GROUP BY {lead}_ds"):
            key, d, v = tuple(r[:nk]), r[nk], r[nk + 1:]
            n = len(nullable)
            out.setdefault(key, {})[d] = {
                "rows": v[0], "persons": v[1],
                "counts": dict(zip(nullable, v[2:2 + n])),
                "with": dict(zip(nullable, v[2 + n:2 + 2 * n])),
                "without": dict(zip(nullable, v[2 + 2 * n:2 + 3 * n])),
                "one_of": dict(zip(pairs, v[2 + 3 * n:])),
                "repeaters": 0,
            }
        rep = (f"SELECT {lead}_ds, COUNT(*) FROM (SELECT {lead}_ds, _pk FROM f WHERE _pk IS NOT NULL "
               f"GROUP BY {lead}_ds, _pk HAVING COUNT(*) >= 2) GROUP BY {lead}_ds")
        for r in con.execute(rep):
            out[tuple(r[:nk])][r[nk]]["repeaters"] = r[nk + 1]
        return out

    def _medians(self, con, qs, cols, keys_sql, nk) -> dict[tuple, int]:
        """2.8: per cell, the lower median (or PERCENTILE: (value, number of values)) of one value per
        (person, dataset), each the lower median of that person's values in the cell; rows without a
        person key are one value each."""
        out = {}
        lead = f"{keys_sql}, " if nk else ""
        for i, a in enumerate(qs.aggs):
            if a.func not in ("median", "percentile"):
                continue
            v = q("v_" + a.column)
            groups: dict[tuple, dict[tuple, list[int]]] = {}
            for r in con.execute(f"SELECT {lead}_ds, _pk, rowid, {v} FROM f WHERE {v} IS NOT NULL"):
                key, ds, pk, rowid, x = tuple(r[:nk]), r[nk], r[nk + 1], r[nk + 2], r[nk + 3]
                who = (ds, pk) if pk is not None else (ds, "row", rowid)
                groups.setdefault(key, {}).setdefault(who, []).append(x)
            for key, persons in groups.items():
                values = sorted(lower_median(xs) for xs in persons.values())
                if a.func == "median":
                    out[(key, i)] = lower_median(values)
                else:
                    out[(key, i)] = (values[math.ceil(a.p * len(values) / 100) - 1], len(values))
        return out

    def _tops(self, con, qs, pol, keys_sql, nk) -> dict[tuple, dict[str, tuple[int, int]]]:
        """2.7: per SUM under a dominance rule, per cell and dataset: (the sum of its n largest person
        totals of |value|, the sum of |value|)."""
        out = {}
        if pol.dominance is None:
            return out
        n = pol.dominance[0]
        lead = f"{keys_sql}, " if nk else ""
        for i, a in enumerate(qs.aggs):
            if a.func != "sum":
                continue
            v = q("v_" + a.column)
            who = "CASE WHEN _pk IS NULL THEN 'row' || rowid ELSE _pk END"
            per: dict[tuple, dict[str, list[int]]] = {}
            for r in con.execute(f"SELECT {lead}_ds, SUM(ABS({v})) FROM f WHERE {v} IS NOT NULL "
                                 f"GROUP BY {lead}_ds, {who}"):
                per.setdefault((tuple(r[:nk]), i), {}).setdefault(r[nk], []).append(r[nk + 1])
            for key, by_ds in per.items():
                out[key] = {d: (sum(sorted(xs, reverse=True)[:n]), sum(xs)) for d, xs in by_ds.items()}
        return out

    # -- rules ------------------------------------------------------------------------------------
    @staticmethod
    def _cell(per: dict[str, dict], names, owners, pol, nullable) -> Cell:
        zero = {"rows": 0, "persons": 0, "counts": {}, "with": {}, "without": {}, "one_of": {}, "repeaters": 0}
        p = {d: per.get(d, zero) for d in names}
        cell = Cell({d: p[d]["rows"] for d in names}, dict(owners),
                    {d: p[d]["persons"] for d in names} if pol.person else None,
                    {c: {d: p[d]["counts"].get(c, 0) for d in names} for c in nullable})
        if pol.person:
            cell.with_value = {c: {d: p[d]["with"].get(c, 0) for d in names} for c in nullable}
            cell.without_value = {c: {d: p[d]["without"].get(c, 0) for d in names} for c in nullable}
            cell.one_of = {(x, y): {d: p[d]["one_of"].get((x, y), 0) for d in names}
                           for i, x in enumerate(nullable) for y in nullable[i + 1:]}
            cell.repeaters = {d: p[d]["repeaters"] for d in names}
        return cell

    @staticmethod
    def _value_ok(a: Agg, i: int, cell: Cell, rules: Rules, pol: Policy, nullable, vals, tops, owners,
                  rank=None) -> bool:
        if a.func == "count_rows":
            return True
        if a.func == "count_distinct":
            across = pol.person and len(cell.rows) > 1 and len(set(owners.values())) > 1
            return rules.distinct(cell, vals["distinct"] if vals else 0, dict(cell.persons) if across else None)
        if a.func in SUBGROUPS:
            return rules.value(cell, subgroup(i), nullable) and filter_ok(cell, subgroup(i), rules)
        if not rules.value(cell, a.column if a.column in nullable else None, nullable):
            return False
        m = vals[i][0] if vals else 0
        if a.func in ("var", "stddev") and m < 2:  # variance.rows
            return False
        if a.func == "sum" and pol.dominance is not None:
            return dominance_ok(tops or {}, cell, rules, pol.dominance)
        if a.func == "percentile":  # percentile.rank
            return rank is not None and interior(a.p, rank[1], pol.base)
        return True

    @staticmethod
    def _released_value(a: Agg, i: int, vals, median, cols, pol):
        if a.func == "count_rows":
            return down(vals["rows"], pol.base)
        if a.func == "count_distinct":
            return down(vals["distinct"], pol.base)
        count, total, mean, lo, hi = vals[i]
        if a.func == "count_if":
            return down(count, pol.base)
        if a.func == "share_if":  # the condition is never NULL: the share of the cell's rows
            return count / vals["rows"]
        f = 10 ** cols[a.column].scale
        if a.func == "count":
            return down(count, pol.base)
        if a.func == "sum":
            if pol.base > 1:
                raise NotImplementedError("SUM under rounding (2.10) is not modelled by this reference")
            return total / f if f > 1 else total
        if a.func == "avg":
            return mean / f
        if a.func in ("var", "stddev"):
            var = vals[("var", i)] / (f * f)
            return var if a.func == "var" else math.sqrt(var)
        if a.func in ("median", "percentile"):
            x = median if a.func == "median" else median[0]
            return x / f if f > 1 else x
        x = lo if a.func == "min" else hi
        return x / f if f > 1 else x


def filter_ok(cell: Cell, sg: str, rules: Rules) -> bool:
    """2.13 filter.rows and filter.persons for the subgroup counted in cell.counts[sg]: it and the rest
    of the cell each hold >= k' rows and some dataset with >= k' persons (strict), in the cell and on
    every largest observer's complement; the cell's rest on the rounded counts (>= k + b - 1)."""
    kk, base = kprime(rules.k, rules.base), rules.base
    m, persons_in, persons_out = cell.counts[sg], cell.with_value.get(sg), cell.without_value.get(sg)
    everyone = list(cell.rows)
    rest_need = rules.k + base - 1 if base > 1 else kk
    if sum(m.values()) < kk or down(cell_rows(cell), base) - down(sum(m.values()), base) < rest_need:
        return False
    for ds in [everyone] + [cell.rest(h) for h in largest(rules.holds)]:
        inside = sum(m[d] for d in ds)
        if inside < kk or sum(cell.rows[d] for d in ds) - inside < kk:
            return False
        if persons_in is not None and not (any(persons_in[d] >= kk for d in ds)
                                           and any(persons_out[d] >= kk for d in ds)):
            return False
    return True


def interior(p: int, n: int, base: int) -> bool:
    """percentile.rank: the rank ceil(p n / 100) is neither the first nor the last of n values; under
    rounding to b, n reaches the least count from which that holds, rounded up to a multiple of b."""
    if base <= 1:
        return 2 <= math.ceil(p * n / 100) <= n - 1
    least = next(m for m in range(1, 100_000) if all(2 <= math.ceil(p * j / 100) <= j - 1 for j in range(m, m + 200)))
    return n >= math.ceil(least / base) * base


def lower_median(xs: list[int]) -> int:
    s = sorted(xs)
    return s[(len(s) - 1) // 2]


def cell_rows(cell: Cell) -> int:
    return sum(cell.rows.values())


def dominance_ok(tops: dict[str, tuple[int, int]], cell: Cell, rules: Rules, rule: tuple[int, int]) -> bool:
    """sum.dominance (2.7) on the cell and on every possible observer's complement."""
    _, pct = rule
    scopes = [list(cell.rows)] + [cell.rest(h) for h in rules.holds]
    for ds in scopes:
        top = sum(tops.get(d, (0, 0))[0] for d in ds)
        absolute = sum(tops.get(d, (0, 0))[1] for d in ds)
        if not 100 * top <= pct * absolute:
            return False
    return True


__all__ = ["Agg", "QuerySpec", "Reference", "Expected", "Withheld", "read_catalog"]
