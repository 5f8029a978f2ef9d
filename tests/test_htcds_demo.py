"""The HTCDS demo (examples/htcds/): a query written only with stdlib names against datasets
declared from the `htcds.victim` template, its shipped sample data, and `make demo` running it.

The end-to-end test runs the command of the Makefile's demo target itself (real parties, one OS
process each) and compares the CSV it writes with the plaintext oracle's result.
"""
from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.syntax.parser import parse
from insightql.compiler.check.layout import load_templates
from insightql.runtime.data.loader import load_dataset
from insightql.stdlib.aggregates import AGGREGATES
from insightql.stdlib.functions import FUNCTIONS

from conftest import compile_plan, oracle_result

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "htcds"
CATALOG = DEMO / "catalog.toml"
QUERY = DEMO / "victims_by_region_and_age.iq"
DATA = {"ngo_cases": DEMO / "data" / "ngo_cases.csv", "police_cases": DEMO / "data" / "police_cases.csv"}


def _generator():
    sys.path.insert(0, str(ROOT / "examples"))  # it reuses examples/generate_data.py
    try:
        path = ROOT / "examples" / "generate_htcds_data.py"
        spec = importlib.util.spec_from_file_location("generate_htcds_data", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "examples"))


def demo_command() -> list[str]:
    """The Makefile demo target's `iq run` of this query, as an argument list."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    target = re.search(r"^demo:.*?\n((?:\t.*\n)+)", text, flags=re.M).group(1)
    line = next(x for x in target.splitlines() if str(QUERY.relative_to(ROOT)) in x)
    return shlex.split(line.strip().replace("$(BIN)/", ""))


def test_datasets_are_declared_from_the_htcds_template():
    raw = tomllib.loads(CATALOG.read_text(encoding="utf-8"))
    template = load_templates()["htcds.victim"]["columns"]
    for name, ds in raw["datasets"].items():  # from the template, directly or like a dataset that is
        assert ds["like"] in ("template:htcds.victim", "ngo_cases") and ds["policy_preset"], name
        assert set(ds.get("columns", {})) <= set(template), "overrides only, no columns of its own"
    cat = load_catalog(CATALOG)
    for name in raw["datasets"]:
        assert list(cat.datasets[name].columns) == list(template)
        assert cat.lineage(name).chain[-1] == "template:htcds.victim"


def test_query_uses_only_stdlib_names():
    q = parse(QUERY.read_text(encoding="utf-8"))
    template = load_templates()["htcds.victim"]["columns"]
    nodes = [x for e in [*(i.expr for i in q.select), q.where, *q.group_by] for x in A.walk(e)]
    calls = {x.name for x in nodes if isinstance(x, A.FuncCall)}
    columns = {x.name for x in nodes if isinstance(x, A.ColumnRef)}
    aliases = {i.alias for i in q.select}
    assert calls <= set(FUNCTIONS) | set(AGGREGATES) and {"region", "age_band", "pct"} <= calls
    assert columns - aliases <= set(template)


def test_shipped_data_is_what_the_generator_writes(tmp_path):
    _generator().generate(tmp_path)
    for name, path in DATA.items():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"regenerate {path.name}"


def test_shipped_data_loads_and_matches_the_catalog():
    cat = load_catalog(CATALOG)
    for name, path in DATA.items():
        _, n = load_dataset(path, name, cat.datasets[name])
        assert n == _generator().ROWS[name]


@pytest.mark.mpc
def test_make_demo_runs_the_query_end_to_end(tmp_path):
    cmd = demo_command()
    assert cmd[:2] == ["iq", "run"] and "--catalog" in cmd
    out = tmp_path / "result.csv"
    run = subprocess.run([str(Path(sys.executable).parent / "iq"), *cmd[1:], "--out", str(out), "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    cat = load_catalog(CATALOG)
    want = oracle_result(compile_plan(QUERY.read_text(encoding="utf-8"), cat, QUERY.name), cat,
                         {d: str(p) for d, p in DATA.items()})
    assert out.read_text(encoding="utf-8") == want.to_csv()
    released = [r for r in want.rows if not any(str(v) == "suppressed" for v in r)]
    assert len(released) >= 10 and sum(r[3] for r in released) == pytest.approx(100, abs=len(released) * 0.05)
    assert "pct_of_released: percent of the total of the" in run.stdout
