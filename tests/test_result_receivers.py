"""Every receiver of a real run writes the same result file (issue 17 item 7): the two computing
receivers and the output-only one get byte-identical JSON, the party that receives nothing writes
none, and a suppressed cell holds its flag, scope and rules but no value. The JSON and the CSV of
that run carry the same cells and flags (read both, compare), and so does the Parquet."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.results import Suppressed
from insightql.runtime.cli import main
from insightql.runtime.results import read_result

from conftest import MPC_TIMEOUT, Parties, assert_same_result, compile_plan, oracle_result
from test_result_formats import cells

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "examples" / "catalog.toml"
QUERY = ROOT / "examples" / "victims_by_exploitation.iq"
DATA = {d: str(ROOT / "examples" / "data" / f"{d}.csv") for d in ("police_victims", "ngo_clients")}


@pytest.mark.mpc
def test_every_receiver_writes_the_same_result_and_formats_agree(tmp_path):
    cat = load_catalog(CATALOG)
    plan = compile_plan(QUERY.read_text(encoding="utf-8"), cat, QUERY.name)
    assert plan["output_parties"] == ["helpline"] and "helper" in plan["parties"]
    run = Parties(plan, DATA, tmp_path, catalog_path=CATALOG, extra=["--quiet", "--timeout", str(MPC_TIMEOUT)])
    codes = run.run_to_end(MPC_TIMEOUT + 30)
    assert all(c == 0 for c in codes.values()), {n: run.stderr(n)[-1500:] for n in codes}
    files = {n: run.result_path(n) for n in plan["receivers"]}
    texts = {n: p.read_text(encoding="utf-8") for n, p in files.items()}
    assert len(set(texts.values())) == 1, "receivers wrote different results"
    assert not run.result_path("helper").exists()  # computes, receives nothing, writes nothing
    doc = json.loads(texts["helpline"])
    assert doc["meta"]["plan_hash"] == plan["hash"] and doc["meta"]["receivers"] == plan["receivers"]
    suppressed = [v for r in doc["rows"] for v in r.values() if isinstance(v, dict)]
    assert suppressed and all(set(v) == {"suppressed", "reason", "scope", "rules"} for v in suppressed)

    table, _ = read_result(files["helpline"])
    want = oracle_result(plan, cat, DATA)
    assert_same_result(plan, table, want)  # counts exact, quotients within fixed-point error
    csv_path, pq_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    assert main(["report", str(files["helpline"]), "-o", str(csv_path)]) == 0
    assert main(["report", str(files["helpline"]), "-o", str(pq_path)]) == 0
    from_csv, _ = read_result(csv_path, schema=table.schema)
    from_pq, meta = read_result(pq_path)
    assert cells(from_csv) == cells(table) == cells(from_pq)
    assert meta == doc["meta"]
    assert any(isinstance(v, Suppressed) and v.scope == "value" for r in table.rows for v in r)
    assert "[suppressed]" not in csv_path.read_text(encoding="utf-8")
