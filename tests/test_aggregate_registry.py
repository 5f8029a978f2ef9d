"""Every aggregate is declared once (stdlib/aggregates.py) and has every part: its lowering (slots
and secure nodes, compiler/plan/aggregates.py), its row in spec/language.md, its place in the catalog
schema; and compiled and run, it means what its plaintext reference says, on random data."""
from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightql.compiler.plan.aggregates import FORMS, LOWERING, lowers
from insightql.compiler.check.catalog import Aggregate, load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed
from insightql.stdlib.aggregates import AGGREGATES, DEFAULT_MEASURE_AGGREGATES, interior_rank, percentile_of

from conftest import oracle_result
from randdata import write_csv
from tiers import examples

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(ROOT / "tests" / "corpus" / "catalog_percentile.toml")  # prs_Age allows every aggregate


def test_every_aggregate_has_its_lowering():
    assert set(LOWERING) == set(AGGREGATES) | set(FORMS)
    for name, low in LOWERING.items():
        assert low.plan is not None and low.finish is not None, name


def test_an_undeclared_aggregate_cannot_be_lowered():
    with pytest.raises(KeyError, match="not a declared aggregate"):
        lowers("plan", "mode")(lambda b, a: {})


def test_the_catalog_accepts_exactly_the_declared_aggregates():
    assert set(get_args(Aggregate)) == set(AGGREGATES)
    assert set(DEFAULT_MEASURE_AGGREGATES) == {"count", "sum", "avg", "var", "stddev", "median"}


def test_spec_language_lists_every_aggregate():
    text = (ROOT / "spec" / "language.md").read_text(encoding="utf-8")
    for f in AGGREGATES.values():
        row = f"| `{f.signature}` | {f.argument} | {f.result} | {f.bounds} | {'yes' if f.default else 'opt-in'} |"
        assert row in text, f"spec/language.md section 7 lacks the row of {f.name}: {row}"


def test_percentile_reference_is_the_inverted_distribution_function():
    v = [5, 1, 4, 2, 3]
    assert [percentile_of(v, p) for p in (1, 20, 21, 50, 80, 81, 99)] == [1, 1, 2, 3, 4, 5, 5]
    assert percentile_of([1, 2, 3, 4], 50) == 2  # the lower median
    assert np.percentile(v, 81, method="inverted_cdf") == percentile_of(v, 81)


@pytest.mark.parametrize("p", [1, 5, 10, 25, 50, 75, 90, 99])
def test_interior_rank_bound_is_tight(p):
    """n >= interior_rank(p) exactly when the rank ceil(p n / 100) is neither 1 nor n."""
    need = interior_rank((p,), 1)
    for n in range(1, 300):
        r = math.ceil(p * n / 100)
        assert (n >= need) == (2 <= r <= n - 1), (p, n, r)
    assert interior_rank((p,), 5) % 5 == 0 and interior_rank((p,), 5) >= need


def _cells(data: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in data:
        out.setdefault(r["exp_Region"], []).append(int(r["prs_Age"]))
    return out


QUERIES = {name: f"{name.upper()}(prs_Age{', ' + str(p) if f.consts else ''})"
           for name, f in AGGREGATES.items() for p in ([90] if f.consts else [None])}
QUERIES["percentile_5"] = "PERCENTILE(prs_Age, 5)"
QUERIES["percentile_50"] = "PERCENTILE(prs_Age, 50)"


@pytest.mark.parametrize("key", sorted(QUERIES))
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 31), n=st.integers(5, 70))
def test_compiled_aggregate_equals_its_reference(key, seed, n):
    """One person per row (so no per-person reduction): every released cell holds the reference
    meaning of the aggregate over the cell's values, and a cell is withheld exactly when it has
    fewer than k rows or, for a percentile, fewer values than its rank needs."""
    expr = QUERIES[key]
    name = expr.split("(")[0].lower()
    spec = AGGREGATES[name]
    consts = tuple(int(x) for x in re.findall(r", (\d+)\)", expr))
    q = f"@purpose research\nSELECT exp_Region, COUNT(*) AS n, {expr} AS v FROM police_victims GROUP BY exp_Region;"
    res = compile_source(q, "q.iq", CAT)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    rng = np.random.default_rng(seed)
    ds = CAT.datasets["police_victims"]
    regions = ["North", "East", "South", "West"]
    rows = []
    for i in range(n):
        r = {c: "" for c in ds.columns}
        r.update(person_id=str(i + 1), prs_Gender="Feminine", prs_Nationality="NG", exp_Type="Other",
                 exp_Region=regions[int(rng.integers(0, 2))], identified_on="2023-05-01",
                 minor_at_recruitment="false", prs_Age=str(int(rng.integers(0, 100))), interview_notes_len="0")
        rows.append(r)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "p.csv", ds, rows)
        table = oracle_result(res.plan, CAT, {"police_victims": str(path)})
    cells = _cells(rows)
    need = spec.min_values(consts, 1) if spec.min_values else 0
    for row in table.rows:
        region, count, value = row[0], row[1], row[2]
        values = cells.get(region, [])
        if len(values) < 10:
            assert isinstance(count, Suppressed) and isinstance(value, Suppressed), row
            continue
        assert count == len(values)
        if len(values) < need:
            assert isinstance(value, Suppressed), (row, need)
            continue
        want = spec.reference(values, consts)
        assert value == pytest.approx(want, rel=1e-4, abs=1e-4), (key, region, sorted(values))
