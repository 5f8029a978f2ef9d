"""The oblivious sort's building blocks on real MPyC parties (runtime/secure/quicksort.py).

* less_than_zero (MPyC's LT protocol with randomness from t + 1 parties' inputs) equals a < 0 at
  the edges of its range and on random values, for 3 and 5 parties (t = 1 and t = 2);
* sorted_positions sorts shuffled values with repeats, ties broken by the position each value had
  BEFORE the shuffle (shuffle_with_positions); inputs of all-equal keys and of mostly padding (one
  repeated sentinel, as behind a selective WHERE) take about as many levels and comparisons as
  distinct keys (issue 16: a run of r equal keys once took r levels and r^2/2 comparisons).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.mpc

PROGRAM = """
import json, sys
import numpy as np
from mpyc.runtime import mpc
from insightql.runtime.secure import reveal
from insightql.runtime.secure.quicksort import less_than_zero, shuffle_with_positions, sorted_positions

L = 40
diffs, inputs = json.loads(sys.argv[-1])
levels = []
_open = reveal.open_comparisons

async def counting(mpc, node, bits):
    out = await _open(mpc, node, bits)
    levels.append(int(out.size))
    return out

reveal.open_comparisons = counting

async def main():
    await mpc.start()
    st = mpc.SecInt(L + 8)
    d = mpc.input(st.array(np.array(diffs, dtype=object)), senders=0)
    senders = list(range(mpc.threshold + 1))[::-1]
    less = await mpc.output(await less_than_zero(mpc, d, L, senders))
    sorts = []
    for values in inputs:
        x = mpc.input(st.array(np.array(values, dtype=object)), senders=mpc.parties[-1].pid)
        x, where = await shuffle_with_positions(mpc, x)
        levels.clear()
        pos = await sorted_positions(mpc, {"id": "test"}, x * 256 + where, 12 + 8)
        out = await mpc.output(x[pos])
        sorts.append([[int(v) for v in out], len(levels), sum(levels)])
    await mpc.shutdown()
    if mpc.pid == 0:
        print("OUT", json.dumps([[int(v) for v in less], sorts]))

mpc.run(main())
"""


def run_program(tmp_path, m: int, diffs: list[int], inputs: list[list[int]]):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(prog), f"-M{m}", "--no-log", json.dumps([diffs, inputs])],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    line = next((x for x in out.stdout.splitlines() if x.startswith("OUT")), None)
    assert line, out.stderr
    return json.loads(line[4:])


@pytest.mark.parametrize("m", [3, 5])
def test_less_than_zero_and_sort_match_plaintext(tmp_path, m):
    rng = np.random.default_rng(m)
    top = 2 ** 39
    diffs = [-top, -top + 1, -1, 0, 1, top - 2, top - 1] + [int(v) for v in rng.integers(-top, top, 60)]
    values = [int(v) for v in rng.integers(0, 40, 90)]  # repeats: the tie-break must hold
    less, sorts = run_program(tmp_path, m, diffs, [values])
    assert less == [int(v < 0) for v in diffs]
    assert sorts[0][0] == sorted(values)


def test_equal_keys_and_padding_sort_as_fast_as_distinct_keys(tmp_path):
    """All-equal keys, 90% padding (one sentinel) and distinct keys, 128 each: every input is sorted,
    and none takes more than about twice the levels or comparisons a quicksort of random distinct
    keys expects (1.39 n log2 n ~ 1,250 comparisons; the old tie-break needed 8,128 and 127 levels
    for all-equal keys)."""
    rng = np.random.default_rng(16)
    n = 128
    distinct = [int(v) for v in rng.choice(4000, n, replace=False)]
    padded = [4095] * (n - n // 10) + distinct[: n // 10]
    equal = [7] * n
    _, sorts = run_program(tmp_path, 3, [0], [distinct, padded, equal])
    for values, (out, levels, comparisons) in zip([distinct, padded, equal], sorts):
        assert out == sorted(values)
        assert levels <= 40 and comparisons <= 2600, (levels, comparisons)
