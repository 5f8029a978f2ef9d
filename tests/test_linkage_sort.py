"""The oblivious linkage's sorts on real MPyC parties (issue 16).

* radix_sort (runtime/secure/radix.py) and its bit decomposition `to_bits` equal the plaintext sort,
  stable, for 3 and 5 parties, on distinct keys, repeated keys, all-equal keys, mostly padding (one
  sentinel, as behind a selective WHERE) and one row; every opened vector is a permutation of the
  positions and their number (n per pass) does not depend on the data; one or two bits per pass;
* the whole linkage (MPC == plaintext oracle) with the radix sort and with the quicksort, on repeated
  keys, NULL keys, an empty intersection, all-equal keys and a selective WHERE (mostly padding).
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_same_result, compile_plan, oracle_result, run_mpc
from test_linkage import FIXED_POINT_REL, LCAT, LCAT_PATH, QUERIES, make_data

pytestmark = pytest.mark.mpc

PROGRAM = """
import json, sys
import numpy as np
from mpyc.runtime import mpc
from insightql.runtime.secure import reveal
from insightql.runtime.secure.radix import radix_sort, to_bits

L = 12
inputs = json.loads(sys.argv[-1])
opened = []
_open = reveal.open_permutation

async def keep(mpc, node, shares):
    out = await _open(mpc, node, shares)
    opened.append(sorted(int(v) for v in out) == list(range(out.size)))
    return out

reveal.open_permutation = keep

async def main():
    await mpc.start()
    st = mpc.SecInt(L + 8)
    out = []
    for width, values in [(2, v) for v in inputs] + [(1, inputs[1])]:
        n = len(values)
        x = mpc.input(st.array(np.array(values, dtype=object)), senders=mpc.parties[-1].pid)
        bits = await to_bits(mpc, x, L, list(range(mpc.threshold, -1, -1)))
        rows = mpc.np_stack([x, st.array(np.arange(n, dtype=object))], axis=1)  # the row number: stability
        opened.clear()
        s = await radix_sort(mpc, {"id": "test"}, [bits[:, j] for j in range(L - (width == 2))], rows, width)
        got = await mpc.output(s)
        b = await mpc.output(bits)
        out.append([[[int(v) for v in r] for r in got], [[int(v) for v in r] for r in b], opened[:]])
    await mpc.shutdown()
    if mpc.pid == 0:
        print("OUT", json.dumps(out))

mpc.run(main())
"""


@pytest.mark.parametrize("m", [3, 5])
def test_radix_sort_matches_plaintext_and_opens_only_permutations(tmp_path, m):
    rng = np.random.default_rng(m)
    top = 2 ** 12
    n = 64
    inputs = [[0, 1, top - 1, top - 2] + [int(v) for v in rng.choice(top - 4, n - 4, replace=False) + 2],
              [int(v) for v in rng.integers(0, 9, n)],  # repeats
              [5] * n,  # all equal
              [top - 1] * (n - 6) + [int(v) for v in rng.integers(0, top - 1, 6)],  # mostly padding
              [17]]
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(prog), f"-M{m}", "--no-log", json.dumps(inputs)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    line = next((x for x in out.stdout.splitlines() if x.startswith("OUT")), None)
    assert line, out.stderr
    got = json.loads(line[4:])
    assert len(got) == len(inputs) + 1
    for width, values, (rows, bits, opened) in zip([2] * len(inputs) + [1], inputs + inputs[1:2], got):
        assert [sum(b << j for j, b in enumerate(r)) for r in bits] == values  # to_bits
        # sorted, equal keys in row order (two bits per pass: 11 of the 12 bits, 6 passes, the last of
        # one bit; values differing only in bit 11 keep their row order)
        low = [v & (2 ** 11 - 1) if width == 2 else v for v in values]
        assert [r[1] for r in rows] == sorted(range(len(values)), key=lambda i: low[i])
        assert sorted(r[0] for r in rows) == sorted(values)
        assert all(opened) and len(opened) == (6 if width == 2 else 12)  # passes but the first, and the end


# -- the linkage, both sorts -------------------------------------------------------------------
SELECTIVE = """SELECT COUNT(DISTINCT person_id) AS persons
FROM police_victims UNION ALL ngo_clients UNION ALL shelter_stays
WHERE prs_Age < 10;"""


def all_equal_police(data: dict[str, str]) -> dict[str, str]:
    """The police (keys may repeat) register one person in every row."""
    path = data["police_victims"]
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    for r in rows[1:]:
        r[0] = "7"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return data


CASES = [("inner_both_sides", "random"), ("left_join", "nulls"), ("distinct_three", "empty"),
         ("distinct_three", "all_equal"), ("inner_both_sides", "all_equal"), ("selective", "random")]


@pytest.mark.parametrize("sort", ["radix", "quicksort"])
@pytest.mark.parametrize("name,scenario", CASES)
def test_linkage_matches_oracle_with_either_sort(tmp_path, name, scenario, sort):
    data = make_data(tmp_path, "random" if scenario == "all_equal" else scenario, 3)
    if scenario == "all_equal":
        data = all_equal_police(data)
    plan = compile_plan(SELECTIVE if name == "selective" else QUERIES[name]["iq"], LCAT, f"{name}.iq")
    got = run_mpc(plan, data, catalog_path=LCAT_PATH, env={"IQ_LINK_SORT": sort})
    assert_same_result(plan, got, oracle_result(plan, LCAT, data), rel=FIXED_POINT_REL)


# -- the steps after the sort (issue 16, performance): in the radix design's small field ---------------
STEPS = """
import json, sys
import numpy as np
from mpyc.runtime import mpc
from insightql.runtime.secure import link_steps
from insightql.runtime.secure.link_steps import chunk_columns, chunks_equal_prev, segmented_scan

cases = json.loads(sys.argv[-1])

async def main():
    await mpc.start()
    st = mpc.SecInt(24)  # the smallest radix_type: chunks of 22 bits
    link_steps.BITS_AT_ONCE = 23 * 2 * 10  # several blocks of rows in the larger cases
    out = []
    for case in cases:
        z = np.array(case["z"], dtype=object)
        scan = await mpc.output(segmented_scan(mpc, st.array(z)))
        bits = np.array(case["bits"], dtype=object)
        chunks = chunk_columns(mpc, st.array(bits), 0, bits.shape[1], 22)
        eq = await mpc.output(await chunks_equal_prev(mpc, chunks, 22))
        out.append([[[int(v) for v in r] for r in scan], [int(v) for v in eq]])
    await mpc.shutdown()
    if mpc.pid == 0:
        print("OUT", json.dumps(out))

mpc.run(main())
"""


def test_segmented_scan_and_chunked_equality_match_plaintext(tmp_path):
    """segmented_scan (work-efficient) == the sequential definition; chunks_equal_prev == row equality
    of 50-bit keys in 22-bit chunks: one row, two rows, all equal, all distinct, repeats, keys that
    differ in one chunk only (low, middle, high), all flags set or none."""
    rng = np.random.default_rng(16)
    cases = []
    for n in (1, 2, 3, 8, 37, 64):
        for kind in ("random", "all_equal", "distinct", "one_chunk"):
            flags = {"random": rng.integers(0, 2, n), "all_equal": np.zeros(n, dtype=int),
                     "distinct": np.ones(n, dtype=int), "one_chunk": rng.integers(0, 2, n)}[kind]
            z = np.concatenate([rng.integers(0, 100, (2, n)), flags.reshape(1, n)]).tolist()
            base = int(rng.integers(0, 2 ** 50))
            keys = {"random": sorted(int(v) for v in rng.integers(0, 6, n)),
                    "all_equal": [base] * n,
                    "distinct": sorted(int(v) for v in rng.choice(2 ** 50, n, replace=False)),
                    "one_chunk": [base ^ (int(rng.integers(0, 2)) << int(rng.choice([0, 21, 22, 43, 49])))
                                  for _ in range(n)]}[kind]
            cases.append({"z": z, "keys": keys, "bits": [[(k >> j) & 1 for j in range(50)] for k in keys]})
    prog = tmp_path / "steps.py"
    prog.write_text(STEPS)
    out = subprocess.run([sys.executable, str(prog), "-M3", "--no-log", json.dumps(cases)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    line = next((x for x in out.stdout.splitlines() if x.startswith("OUT")), None)
    assert line, out.stderr
    for case, (scan, eq) in zip(cases, json.loads(line[4:])):
        z, keys = case["z"], case["keys"]
        want = [list(r) for r in z]
        for i in range(1, len(keys)):
            for r in range(len(z)):
                want[r][i] = z[r][i] + (1 - z[-1][i]) * want[r][i - 1]
        assert scan == want
        assert eq == [0] + [int(keys[i] == keys[i - 1]) for i in range(1, len(keys))]
