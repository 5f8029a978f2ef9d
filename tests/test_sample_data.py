"""The demo data: examples/catalog.toml and the CSVs examples/generate_data.py writes.

The validator here is deliberately independent of the runtime's loader: it checks the CSV format
promised in examples/README.md (header = catalog column order, empty = null, true/false,
ISO dates, '.' decimals with the declared scale) and every value against its domain or bounds.
"""
from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATASETS = ("police_victims", "ngo_clients", "helpline_reports", "bank_flags")


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_data", EXAMPLES / "generate_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLES / "catalog.toml")


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def problems(catalog: Catalog, name: str, path: Path) -> list[str]:
    """Every way the file breaks the catalog's declaration of dataset `name` (empty: valid)."""
    ds = catalog.datasets[name]
    header, rows = read(path)
    out = []
    if header != list(ds.columns):
        return [f"header {header} is not the catalog's column order {list(ds.columns)}"]
    for i, row in enumerate(rows, start=1):
        if len(row) != len(header):
            out.append(f"row {i}: {len(row)} fields")
            continue
        for (cname, col), v in zip(ds.columns.items(), row):
            where = f"row {i} {cname}={v!r}"
            if v == "":
                if not col.nullable:
                    out.append(f"{where}: null in a non-nullable column")
                continue
            t = col.type
            if t == "category" and v not in col.domain:
                out.append(f"{where}: not in the domain")
            elif t == "boolean" and v not in ("true", "false"):
                out.append(f"{where}: not true/false")
            elif t in ("integer", "key"):
                if not re.fullmatch(r"-?\d+", v):
                    out.append(f"{where}: not an integer")
                    continue
                lo, hi = (col.min, col.max) if t == "integer" else (0, 2 ** col.bits - 1)
                if not lo <= int(v) <= hi:
                    out.append(f"{where}: outside [{lo}, {hi}]")
            elif t == "decimal":
                if not re.fullmatch(r"-?\d+(\.\d{1,%d})?" % col.scale, v):
                    out.append(f"{where}: not a decimal with at most {col.scale} places")
                elif not col.min <= float(v) <= col.max:
                    out.append(f"{where}: outside [{col.min}, {col.max}]")
            elif t == "date":
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                    out.append(f"{where}: not YYYY-MM-DD")
                elif not col.min <= dt.date.fromisoformat(v) <= col.max:
                    out.append(f"{where}: outside [{col.min}, {col.max}]")
        if len(out) > 20:
            break
    return out


def column(path: Path, name: str) -> list[str]:
    header, rows = read(path)
    k = header.index(name)
    return [r[k] for r in rows]


# ------------------------------------------------------------------ the catalog
def test_catalog_parties_and_policies(catalog):
    assert catalog.parties["helper"].helper
    assert not any(ds.owner == "helper" for ds in catalog.datasets.values())
    owners = {name: ds.owner for name, ds in catalog.datasets.items()}
    assert owners == {"police_victims": "police", "ngo_clients": "ngo", "helpline_reports": "helpline",
                      "bank_flags": "bank"}
    for ds in catalog.datasets.values():
        assert ds.policy.min_group_size == 10
        assert {"police", "ngo", "helpline"} <= set(ds.policy.receivers)
        assert set(ds.policy.purposes) == {"research", "policy"}
        assert ds.max_rows >= 1_000_000
    assert catalog.datasets["helpline_reports"].policy.round_counts_to == 5


def test_police_and_ngo_can_be_unioned(catalog):
    police, ngo = catalog.datasets["police_victims"], catalog.datasets["ngo_clients"]
    assert list(police.columns) == list(ngo.columns)
    for name, col in police.columns.items():
        other = ngo.columns[name]
        assert col.type == other.type and col.nullable == other.nullable, name
        assert getattr(col, "domain", None) == getattr(other, "domain", None), name
    assert police.person_key == ngo.person_key == "person_id"


def test_category_values_follow_htcds(catalog):
    """Columns named after HTCDS fields use exactly the HTCDS picklist values."""
    fields = {r["Field Name including Prefix"]: r for r in
              csv.DictReader(open(ROOT / "stdlib/data/htcds-2.0-fields.csv", encoding="utf-8"))}
    police = catalog.datasets["police_victims"].columns
    for name, col in police.items():
        if name in fields and col.type == "category":
            values = [v.strip() for v in fields[name]["Value Names (if picklist)"].split("\n") if v.strip()]
            assert col.domain == values, name
    values = [v.strip() for v in fields["vic_TypeOfExploitation"]["Value Names (if picklist)"].split("\n")]
    assert police["exp_Type"].domain == values
    from insightql.stdlib.regions import REGION_OF
    assert all(c in REGION_OF for c in police["prs_Nationality"].domain)


# ------------------------------------------------------------------ the shipped CSVs
@pytest.mark.parametrize("name", DATASETS)
def test_shipped_csv_matches_catalog(catalog, name):
    path = EXAMPLES / "data" / f"{name}.csv"
    assert problems(catalog, name, path) == []
    _, rows = read(path)
    assert len(rows) == gen.DEFAULT_ROWS[name]
    for cname, col in catalog.datasets[name].columns.items():
        if col.nullable:
            assert "" in column(path, cname), f"{name}.{cname} is nullable but has no nulls"


def test_validator_catches_bad_values(catalog, tmp_path):
    header, rows = read(EXAMPLES / "data" / "police_victims.csv")
    bad = [list(r) for r in rows[:3]]
    bad[0][header.index("prs_Gender")] = "Female"
    bad[1][header.index("identified_on")] = "2019-12-31"
    bad[2][header.index("debt_eur")] = "1,5"
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *bad])
    found = problems(catalog, "police_victims", path)
    assert len(found) == 3, found


def test_shipped_csvs_are_what_the_generator_writes(tmp_path):
    gen.generate(tmp_path)
    for name in DATASETS:
        assert (tmp_path / f"{name}.csv").read_bytes() == (EXAMPLES / "data" / f"{name}.csv").read_bytes(), \
            f"{name}.csv is stale: run python examples/generate_data.py"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    rows = {n: 400 for n in DATASETS}
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    gen.generate(a, rows, seed=7)
    gen.generate(b, rows, seed=7)
    gen.generate(c, rows, seed=8)
    for name in DATASETS:
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes()
        assert (a / f"{name}.csv").read_bytes() != (c / f"{name}.csv").read_bytes()


# ------------------------------------------------------------------ persons and marginals
def test_person_overlap_and_repeats():
    police_ids = column(EXAMPLES / "data" / "police_victims.csv", "person_id")
    ngo_ids = column(EXAMPLES / "data" / "ngo_clients.csv", "person_id")
    assert len(set(ngo_ids)) == len(ngo_ids), "one NGO row per client"
    share = len(set(ngo_ids) & set(police_ids)) / len(ngo_ids)
    assert 0.27 <= share <= 0.33
    repeats = Counter(Counter(police_ids).values())
    assert repeats[1] > repeats[2] > repeats[3] > 0, repeats
    assert all(0 <= int(k) < 2 ** 48 for k in police_ids + ngo_ids)


def test_shared_persons_have_the_same_attributes():
    _, police = read(EXAMPLES / "data" / "police_victims.csv")
    header, ngo = read(EXAMPLES / "data" / "ngo_clients.csv")
    person_cols = [header.index(c) for c in ("prs_Gender", "prs_Age", "prs_Nationality", "exp_Type")]
    at_police = {r[0]: [r[k] for k in person_cols] for r in police}
    shared = [r for r in ngo if r[0] in at_police]
    assert shared
    assert all([r[k] for k in person_cols] == at_police[r[0]] for r in shared)


def test_marginals_are_plausible():
    header, rows = read(EXAMPLES / "data" / "police_victims.csv")
    g, t, a, n = (header.index(c) for c in ("prs_Gender", "exp_Type", "prs_Age", "prs_Nationality"))
    sexual = [r for r in rows if r[t] == "SexualExploitation"]
    labour = [r for r in rows if r[t] == "ForcedLabour"]
    assert len(sexual) > len(labour) > 0.1 * len(rows)
    assert sum(r[g] == "Feminine" for r in sexual) > 0.75 * len(sexual)
    assert sum(r[g] == "Masculine" for r in labour) > 0.65 * len(labour)
    ages = sorted(int(r[a]) for r in sexual)
    assert 18 <= ages[len(ages) // 2] <= 28
    nats = Counter(r[n] for r in rows if r[n])
    top3 = sum(c for _, c in nats.most_common(3))
    assert top3 > 0.35 * sum(nats.values())
    assert sum(1 for c in nats.values() if c < 10) >= 10, "a long tail of small nationalities"


def test_scaled_run_is_valid(catalog, tmp_path):
    facts = gen.generate(tmp_path, {n: 20_000 for n in DATASETS})
    assert facts["ngo_also_at_police"] == 6000
    for name in DATASETS:
        assert problems(catalog, name, tmp_path / f"{name}.csv") == []


def test_zero_rows_writes_headers_only(catalog, tmp_path):
    gen.main(["--rows", "0", "--out", str(tmp_path)])
    for name in DATASETS:
        header, rows = read(tmp_path / f"{name}.csv")
        assert header == list(catalog.datasets[name].columns) and rows == []


def iq_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```iq\n(.*?)```", markdown.read_text(encoding="utf-8"), flags=re.S)


def test_readme_queries_compile(catalog):
    pipeline = pytest.importorskip("insightql.compiler.pipeline")
    blocks = iq_blocks(EXAMPLES / "README.md")
    assert len(blocks) >= 3
    for text in blocks:
        result = pipeline.compile_source(text, "README.md", catalog)
        assert result.ok, [d.message for d in result.diagnostics]


def test_every_shipped_query_checks_clean():
    """`make check` (iq check examples/) on what a newcomer clones: every shipped query compiles against the
    catalog iq check finds for it (examples/dp/ has its own), with no diagnostics at all."""
    from insightql.runtime.cli import main

    assert main(["check", str(EXAMPLES), "--format", "json"]) == 0


def test_dp_catalog_is_the_demo_catalog_with_a_budget():
    """examples/dp/catalog.toml differs from examples/catalog.toml only by its header comment, its name and the
    police's [policy.privacy] section (which the NGO's dataset inherits through `like`), so the DP example runs
    on the demo's datasets and policies, not on a drifted copy."""
    base = (EXAMPLES / "catalog.toml").read_text(encoding="utf-8")
    dp = (EXAMPLES / "dp" / "catalog.toml").read_text(encoding="utf-8")
    section = ("[datasets.police_victims.policy.privacy]\nrequire = false\nepsilon_budget = 3.0\n"
               "max_epsilon_per_query = 1.0\n")
    body = dp[dp.index("# Catalog for the demo"):]
    assert section in body
    assert body.replace(section, "").replace('name = "examples-dp"', 'name = "examples"') == base
    dp_catalog = load_catalog(EXAMPLES / "dp" / "catalog.toml")
    assert dp_catalog.datasets["ngo_clients"].policy.privacy is not None
    assert dp_catalog.datasets["helpline_reports"].policy.privacy is None
