"""The fast record-linkage design (issue 6, spec/linkage.md section 6, runtime/secure/linkage_fast.py).

1. The policy decides: `linkage = "fast"` on every linked dataset gives plans whose link ops say
   algorithm "fast" and whose leakage report lists `match_pattern`; one dataset without the opt-in
   keeps the oblivious design and a report without it.
2. Plaintext parts: MiMC parameters, the public run structure, the owner's columns (unique padding
   keys, one-hot cells, zero rows for padding).
3. The shuffle on real MPyC parties (3 and 5): a permutation of the input, not the identity.
4. MPC vs the plaintext oracle for every linkage query of tests/test_linkage.py, on data with
   duplicates, empty and full intersections, NULL keys and keys at the edges of the range.
5. The audit: what each party receives is the reveal node's vectors plus, per link op, the tags --
   whose multiplicity pattern is exactly the match pattern of the plaintext keys, nothing more.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.linkage_local import decode
from insightql.runtime.secure.linkage_fast import Runs, columns, key_width, mimc_params, owner_columns

from conftest import _MPC_SLOTS, assert_same_result, compile_plan, load_tables, oracle_result, run_mpc
from test_linkage import FIXED_POINT_REL, LCAT_PATH, QUERIES, make_data

ROOT = Path(__file__).resolve().parent.parent


def catalog_with_fast(tmp: Path, datasets: set[str] | None = None) -> Path:
    """The linkage test catalog with `linkage = "fast"` in the given datasets' policies (all if None)."""
    out = []
    for line in LCAT_PATH.read_text().splitlines():
        out.append(line)
        if line.startswith("[datasets.") and line.endswith(".policy]"):
            if datasets is None or line.split(".")[1] in datasets:
                out.append('linkage = "fast"')
    path = tmp / "catalog.toml"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture(scope="module")
def fast_cat(tmp_path_factory) -> Path:
    return catalog_with_fast(tmp_path_factory.mktemp("fastcat"))


def plan_for(name: str, cat_path: Path) -> dict:
    return compile_plan(QUERIES[name]["iq"], load_catalog(cat_path), f"{name}.iq")


def link_nodes(plan: dict) -> list[dict]:
    return [n for n in plan["nodes"] if n["op"] in ("link_join", "link_distinct")]


# -- 1. the policy decides --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_fast_only_when_every_dataset_opts_in(name, fast_cat, tmp_path):
    fast = plan_for(name, fast_cat)
    assert [n["attrs"]["algorithm"] for n in link_nodes(fast)] == ["fast"]
    item = next(i for i in fast["leakage"] if i["item"] == "match_pattern")
    assert item["to"] == fast["parties"] and "intersection size" in item["detail"]
    sizes = next(i for i in fast["leakage"] if i["item"] == "input_sizes")
    assert "match_pattern" in sizes["detail"]
    first = sorted(fast["datasets"])[0]
    mixed = plan_for(name, catalog_with_fast(tmp_path, {first}))
    assert [n["attrs"]["algorithm"] for n in link_nodes(mixed)] == ["oblivious"]
    assert not any(i["item"] == "match_pattern" for i in mixed["leakage"])
    assert any(i["item"] == "sort_comparisons" for i in mixed["leakage"])
    assert fast["hash"] != mixed["hash"]  # an auditor sees the choice in the signed plan


# -- 2. plaintext parts -----------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [40, 51, 60, 74, 90])
def test_mimc_rounds_make_a_permutation_of_full_degree(bits):
    from mpyc.runtime import mpc

    p = mpc.SecInt(bits).field.modulus
    e, consts = mimc_params(p)
    assert math.gcd(e, p - 1) == 1  # x -> x**e is a bijection of GF(p)
    assert len(consts) * math.log2(e) >= p.bit_length()  # degree e**rounds >= p
    assert consts[0] == 0 and len(set(consts)) == len(consts) and all(0 <= c < p for c in consts)


def test_runs_group_equal_tags():
    tags = [7, 3, 7, 9, 3, 7, 1]
    r = Runs(tags)
    ordered = [tags[i] for i in r.order]
    assert ordered == sorted(tags)
    assert list(r.starts) == [0, 1, 3, 6] and list(r.sizes) == [1, 2, 3, 1]
    assert r.histogram() == {1: 2, 2: 1, 3: 1}
    assert [ordered[r.starts[k]] for k in r.run_of] == ordered  # each position knows its run


def test_owner_columns(fast_cat, tmp_path):
    """Real rows keep their key, padding and key-less rows get unique keys >= 2**K that no other
    owner's rows can have; cells are one-hot, padding rows are zero but for the key."""
    cat = load_catalog(fast_cat)
    data = make_data(tmp_path, "nulls", 3)
    for name in ("left_join", "distinct_three"):
        plan = plan_for(name, fast_cat)
        link = link_nodes(plan)[0]
        a, lay = link["attrs"], link["attrs"]["layout"]
        tables = load_tables(plan, cat, data)
        nodes = {n["id"]: n for n in plan["nodes"]}
        keys, cols = [], columns(a)
        from insightql.compiler.plaintext.linkage_local import link_rows
        for v, share in enumerate(link["inputs"]):
            rows_node = nodes[nodes[share]["inputs"][0]]
            tbl, count = tables[rows_node["attrs"]["dataset"]]
            packed = link_rows(rows_node["attrs"], tbl, count)
            mat = owner_columns(a, v, packed)
            assert mat.shape == (len(packed), 1 + len(cols))
            for row, p in zip(mat, packed):
                key, side, f = decode(lay, p)
                real = f["present"] and f.get("keyed", 1)
                assert (row[0] == key) if real else (row[0] >= 2 ** lay["key_bits"])
                assert row[0] < 2 ** key_width(lay)
                hot = [row[1 + j] for j, c in enumerate(cols) if c[1].startswith("hot")]
                assert sum(hot) == (1 if f["present"] else 0)
                if not f["present"]:
                    assert not any(row[1:])
            keys += [int(k) for k in mat[:, 0]]
        pads = [k for k in keys if k >= 2 ** lay["key_bits"]]
        assert pads and len(set(pads)) == len(pads)


# -- 3. the shuffle on real parties -------------------------------------------------------------------
SHUFFLE_PROGRAM = """
import sys
import numpy as np
from mpyc.runtime import mpc
from insightql.runtime.secure.linkage_fast import shuffle

async def main():
    await mpc.start()
    st = mpc.SecInt(32)
    x = mpc.input(st.array(np.arange(60, dtype=object).reshape(30, 2)), senders=0)
    y = await mpc.output(await shuffle(mpc, x))
    await mpc.shutdown()
    if mpc.pid == 0:
        print("OUT", [[int(v) for v in row] for row in y])

mpc.run(main())
"""


@pytest.mark.mpc
@pytest.mark.parametrize("m", [3, 5])
def test_shuffle_permutes_rows_obliviously(tmp_path, m):
    prog = tmp_path / "shuffle_prog.py"
    prog.write_text(SHUFFLE_PROGRAM)
    out = subprocess.run([sys.executable, str(prog), f"-M{m}", "--no-log"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    line = next(x for x in out.stdout.splitlines() if x.startswith("OUT"))
    rows = json.loads(line[4:])
    assert sorted(map(tuple, rows)) == [(2 * i, 2 * i + 1) for i in range(30)]  # rows move whole
    assert [r[0] // 2 for r in rows] != list(range(30))  # identity: probability 1/30!


# -- 4. MPC vs oracle ---------------------------------------------------------------------------------
FAST_CASES = [("inner_both_sides", "random"), ("left_join", "nulls"), ("overlap", "full"),
              ("unique_left_side", "edges"), ("distinct_three", "edges"), ("distinct_two_total", "empty")]


@pytest.mark.mpc
@pytest.mark.parametrize("name,scenario", FAST_CASES)
def test_fast_mpc_matches_oracle(name, scenario, fast_cat, tmp_path):
    plan = plan_for(name, fast_cat)
    data = make_data(tmp_path, scenario, 5)
    got = run_mpc(plan, data, catalog_path=fast_cat)
    assert_same_result(plan, got, oracle_result(plan, load_catalog(fast_cat), data), rel=FIXED_POINT_REL)


# -- 5. the audit ------------------------------------------------------------------------------------
def expected_pattern(plan: dict, cat, data: dict) -> dict[str, int]:
    """Run sizes of the plaintext keys: every real key's multiplicity, padding rows alone."""
    from insightql.compiler.plaintext.linkage_local import link_rows

    tables = load_tables(plan, cat, data)
    nodes = {n["id"]: n for n in plan["nodes"]}
    link = link_nodes(plan)[0]
    keys, pads = Counter(), 0
    for share in link["inputs"]:
        rows_node = nodes[nodes[share]["inputs"][0]]
        tbl, count = tables[rows_node["attrs"]["dataset"]]
        for p in link_rows(rows_node["attrs"], tbl, count):
            key, _, f = decode(link["attrs"]["layout"], p)
            if f["present"] and f.get("keyed", 1):
                keys[key] += 1
            else:
                pads += 1
    sizes = Counter(keys.values())
    sizes[1] += pads
    return {str(s): c for s, c in sorted(sizes.items()) if c}


@pytest.mark.mpc
@pytest.mark.parametrize("name", ["inner_both_sides", "distinct_three"])
def test_fast_audit_is_the_reveal_plus_the_match_pattern(name, fast_cat, tmp_path):
    from insightql.runtime.launch.launcher import launch_local

    cat = load_catalog(fast_cat)
    plan = plan_for(name, fast_cat)
    data = make_data(tmp_path, "random", 2)
    audit = tmp_path / "audit.jsonl"
    with _MPC_SLOTS:
        table, _ = launch_local(plan, fast_cat, data, quiet=True, timeout=120, env={"IQ_AUDIT_FILE": str(audit)})
    assert_same_result(plan, table, oracle_result(plan, cat, data), rel=FIXED_POINT_REL)
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    reveal = next(n for n in plan["nodes"] if n["op"] == "reveal")
    link = link_nodes(plan)[0]
    want = expected_pattern(plan, cat, data)
    assert "2" in want or "3" in want  # the data has matches, so the pattern says something
    for pid, party in enumerate(plan["parties"]):
        mine = [x for x in lines if x["pid"] == pid]
        assert [x["reveal"] for x in mine] == [link["id"], reveal["id"]], "tags first, then the result"
        tags = mine[0]["received"]
        assert tags["item"] == "match_pattern" and any(i["item"] == "match_pattern" for i in plan["leakage"])
        assert tags["run_sizes"] == want
        assert tags["tags"] == sum(int(s) * c for s, c in want.items())
        assert (mine[1]["received"] is None) == (party not in plan["receivers"])
