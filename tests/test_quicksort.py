"""The oblivious sort's building blocks on real MPyC parties (runtime/secure/quicksort.py).

* less_than_zero (MPyC's LT protocol with randomness from t + 1 parties' inputs) equals a < 0 at
  the edges of its range and on random values, for 3 and 5 parties (t = 1 and t = 2);
* sorted_positions sorts shuffled values with repeats, ties broken by position.
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
from insightql.runtime.secure.quicksort import less_than_zero, sorted_positions

L = 40
diffs, values = json.loads(sys.argv[-1])

async def main():
    await mpc.start()
    st = mpc.SecInt(L + 8)
    d = mpc.input(st.array(np.array(diffs, dtype=object)), senders=0)
    senders = list(range(mpc.threshold + 1))[::-1]
    less = await mpc.output(await less_than_zero(mpc, d, L, senders))
    x = mpc.input(st.array(np.array(values, dtype=object)), senders=mpc.parties[-1].pid)
    pos = await sorted_positions(mpc, {"id": "test"}, x, 12)
    await mpc.shutdown()
    if mpc.pid == 0:
        print("OUT", json.dumps([[int(v) for v in less], [int(p) for p in pos]]))

mpc.run(main())
"""


@pytest.mark.parametrize("m", [3, 5])
def test_less_than_zero_and_sort_match_plaintext(tmp_path, m):
    rng = np.random.default_rng(m)
    top = 2 ** 39
    diffs = [-top, -top + 1, -1, 0, 1, top - 2, top - 1] + [int(v) for v in rng.integers(-top, top, 60)]
    values = [int(v) for v in rng.integers(0, 40, 90)]  # repeats: the tie-break must hold
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(prog), f"-M{m}", "--no-log", json.dumps([diffs, values])],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    line = next((x for x in out.stdout.splitlines() if x.startswith("OUT")), None)
    assert line, out.stderr
    less, pos = json.loads(line[4:])
    assert less == [int(v < 0) for v in diffs]
    assert [values[p] for p in pos] == sorted(values)
    for a, b in zip(pos, pos[1:]):  # equal values keep their (shuffled) position order
        assert values[a] < values[b] or a < b
