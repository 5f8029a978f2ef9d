"""The disclosure attack corpus: tests/corpus/attacks/*.iq, one attack per file.

Header lines (SQL comments, before the query):

    -- expect: IQ3xx at L:C        the compiler rejects the query with this code at line L, column C
    -- also: IQ311 at L:C          the disclosure stage, run on the checked query even though an earlier
                                   stage already rejects it, reports this too (defence in depth)
    -- expect: suppressed          the query compiles; it is run by the plaintext oracle on the data below
    -- catalog: catalog_strict.toml   (default: catalog.toml, both in tests/corpus)
    -- rows DATASET N: col=value, col=value    N rows; `NULL`, a literal, or a..b (integers, cycled)
    -- suppressed: KEY=VALUE, ... -> col, col  that result row exists and those values are suppressed
    -- released: KEY=VALUE, ... -> col = v, ...  that result row has those exact values

`*` as the key selects the single row of an ungrouped query. Columns a `rows` line leaves out get
a fixed ordinary value (first category, the minimum, false); key columns a fresh person each row.
"""
from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.check.checker import check
from insightql.compiler.codes import CODES
from insightql.compiler.diagnostics import Source
from insightql.compiler.check.disclosure import check_disclosure
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.syntax.parser import parse
from insightql.runtime.data.loader import load_dataset

CORPUS = Path(__file__).resolve().parent / "corpus"
ATTACKS = sorted((CORPUS / "attacks").glob("*.iq"))
_CATALOGS: dict[str, object] = {}


def catalog(name: str):
    if name not in _CATALOGS:
        _CATALOGS[name] = load_catalog(CORPUS / name)
    return _CATALOGS[name]


def header(text: str) -> dict:
    h = {"expect": [], "also": [], "rows": [], "suppressed": [], "released": [], "catalog": "catalog.toml"}
    for line in text.splitlines():
        if not line.startswith("--"):
            if line.strip():
                break
            continue
        body = line[2:].strip()
        if m := re.fullmatch(r"(expect|also): (IQ\d{3}) at (\d+):(\d+)", body):
            h[m[1]].append((m[2], int(m[3]), int(m[4])))
        elif body == "expect: suppressed":
            h["suppressed_case"] = True
        elif m := re.fullmatch(r"catalog: (\S+)", body):
            h["catalog"] = m[1]
        elif m := re.fullmatch(r"rows (\w+) (\d+): (.*)", body):
            h["rows"].append((m[1], int(m[2]), _pairs(m[3])))
        elif m := re.fullmatch(r"suppressed: (.*) -> (.*)", body):
            h["suppressed"].append((_key(m[1]), [c.strip() for c in m[2].split(",")]))
        elif m := re.fullmatch(r"released: (.*) -> (.*)", body):
            h["released"].append((_key(m[1]), _pairs(m[2], sep=" = ")))
    return h


def _pairs(s: str, sep: str = "=") -> dict:
    return dict(tuple(x.strip() for x in p.split(sep, 1)) for p in s.split(",") if p.strip())


def _key(s: str) -> dict:
    return {} if s.strip() == "*" else _pairs(s)


def write_data(folder: Path, cat, rows_spec) -> dict[str, Path]:
    """One CSV per dataset of the catalog, rows as the header describes them."""
    fresh = itertools.count(1_000_000)
    rows: dict[str, list[dict]] = {d: [] for d in cat.datasets}
    for dataset, n, values in rows_spec:
        ds = cat.datasets[dataset]
        cycles = {c: itertools.cycle(range(int(v.split("..")[0]), int(v.split("..")[1]) + 1))
                  for c, v in values.items() if re.fullmatch(r"-?\d+\.\.-?\d+", v)}
        for _ in range(n):
            row = {}
            for name, col in ds.columns.items():
                v = values.get(name)
                if name in cycles:
                    row[name] = str(next(cycles[name]))
                elif v is not None:
                    row[name] = "" if v == "NULL" else v
                else:
                    row[name] = _default(col, fresh)
            rows[dataset].append(row)
    paths = {}
    for d, ds in cat.datasets.items():
        paths[d] = folder / f"{d}.csv"
        with open(paths[d], "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ds.columns))
            w.writeheader()
            w.writerows(rows[d])
    return paths


def _default(col, fresh) -> str:
    return {"category": lambda: col.domain[0], "boolean": lambda: "false", "key": lambda: str(next(fresh)),
            "date": lambda: col.min.isoformat(), "integer": lambda: str(col.min),
            "decimal": lambda: f"{col.min:.{col.scale}f}"}[col.type]()


def positions(diags, src: Source) -> set[tuple[str, int, int]]:
    out = set()
    for d in diags:
        if d.span is not None:
            out.add((d.code, *src.line_col(d.span.start)))
    return out


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem for p in ATTACKS])
def test_attack(path: Path, tmp_path: Path):
    text = path.read_text(encoding="utf-8")
    h = header(text)
    cat = catalog(h["catalog"])
    res = compile_source(text, path.name, cat)
    assert h["expect"] or h.get("suppressed_case"), f"{path.name}: no `-- expect:` header"
    if h["expect"]:
        assert not res.ok and res.plan is None, f"{path.name} compiled, but an attack must be rejected"
        got = positions(res.diagnostics, res.source)
        for want in h["expect"]:
            assert want in got, f"{path.name}: want {want}, got {sorted(got)}"
    if h["also"]:
        cq, _ = check(cat, parse(text, path.name))
        _, diags = check_disclosure(cq)
        got = positions(diags, Source(path.name, text))
        for want in h["also"]:
            assert want in got, f"{path.name}: disclosure stage: want {want}, got {sorted(got)}"
    if h.get("suppressed_case"):
        assert res.ok, "\n".join(d.render() for d in res.diagnostics)
        assert h["suppressed"], f"{path.name}: say which cell must be suppressed"
        table = run_oracle(res.plan, cat, write_data(tmp_path, cat, h["rows"]))
        for key, cols in h["suppressed"]:
            row = find_row(table, key)
            for c in cols:
                v = row[table.columns.index(c)]
                assert isinstance(v, Suppressed), f"{path.name}: {key} {c} = {v!r} was released"
        for key, values in h["released"]:
            row = find_row(table, key)
            for c, want in values.items():
                v = row[table.columns.index(c)]
                assert not isinstance(v, Suppressed) and str(v) == want, f"{path.name}: {key} {c}: {v!r} != {want}"


def run_oracle(plan: dict, cat, paths: dict[str, Path]):
    tables = {}
    for n in plan["nodes"]:
        if n["op"] == "load":
            d = n["attrs"]["dataset"]
            tables[d] = load_dataset(paths[d], d, cat.datasets[d], n["attrs"]["columns"])
    return run_plan_plaintext(plan, tables)


def find_row(table, key: dict) -> list:
    """The one result row whose key columns hold these values: shown, never dropped."""
    hits = [r for r in table.rows if all(str(r[table.columns.index(c)]) == v for c, v in key.items())]
    assert len(hits) == 1, f"{len(hits)} rows match {key} in\n{table.render()}"
    return hits[0]


def test_every_disclosure_code_has_an_attack():
    covered = set()
    for p in ATTACKS:
        h = header(p.read_text(encoding="utf-8"))
        covered |= {c for c, _, _ in h["expect"] + h["also"]}
    codes = {c for c in CODES if c.startswith("IQ3")}
    assert codes - covered == set()
    assert {c for c in covered if c.startswith("IQ3")} <= codes


def test_leakage_report_names_each_release_condition():
    """The leakage report is read off the circuit: each output's flag lists the rules behind it."""
    q = ("@purpose research\nSELECT exp_Region, COUNT(*) AS n, COUNT(hours_worked_week) AS h\n"
         "FROM police_victims GROUP BY exp_Region;")
    plan = compile_source(q, "q.iq", catalog("catalog.toml")).plan
    items = {(i["item"], i.get("column")): i["detail"] for i in plan["leakage"]}
    assert "[cell.rows] the cell has >= 10 rows and [cell.persons]" in items[("suppression_flag", None)]
    assert items[("output_flag", "n")].endswith("the cell is released")
    assert "[values.left_out] rows without a value of hours_worked_week are 0 or >= 10" in items[("output_flag", "h")]
    q = "@purpose research\nSELECT region, SUM(stay_days) AS s FROM shelter_stays GROUP BY region;"
    plan = compile_source(q, "q.iq", catalog("catalog_strict.toml")).plan
    flag = next(i["detail"] for i in plan["leakage"] if i["item"] == "output_flag")
    assert "[sum.dominance] the 1 largest contributors (persons) hold at most 60% of the sum" in flag
