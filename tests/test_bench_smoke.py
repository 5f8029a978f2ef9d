"""The benchmark runner completes at a tiny size and writes its table (CI asserts nothing about time)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.mpc
def test_bench_runner_smoke(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--sizes", "200",
                           "--baseline-sizes", "20", "--repeats", "1", "--scenarios", "a",
                           "--out", str(out), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    rows = [l for l in text.splitlines() if l.startswith("| (a)")]
    assert rows and "| 200 |" in rows[0]  # the main table, then the details table
    assert "RESULT CHECK FAILED" not in text
    assert "| (c)" in text  # placeholder for the record-linkage scenarios
