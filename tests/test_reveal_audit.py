"""Values leave MPC only in runtime/secure/reveal.py, only to the plan's receivers, and only as listed
in the plan's leakage report.

(a) static: no runtime module other than runtime/secure/reveal.py calls `.output(` or `.transfer(`
    (MPyC's two ways to send plaintext to other parties), found by walking the AST;
(b) dynamic: real parties run with IQ_AUDIT_FILE set, so runtime/secure/reveal.py appends what each
    party received; receivers got exactly the reveal node's vectors, non-receivers nothing, each
    vector is explained by a leakage item addressed to exactly those receivers, and values of
    withheld cells were zeroed inside MPC before the reveal.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import insightql.runtime as runtime_pkg
from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.launch.launcher import launch_local

from conftest import CATALOG, _MPC_SLOTS, assert_same_result, compile_plan, oracle_result

RUNTIME = Path(runtime_pkg.__file__).resolve().parent
SENDS = {"output", "transfer"}  # MPyC calls that send plaintext to other parties
CAT = load_catalog(CATALOG)


def _sending_calls(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in SENDS:
                found.append((node.lineno, name))
            if name == "getattr" and any(isinstance(a, ast.Constant) and a.value in SENDS for a in node.args):
                found.append((node.lineno, "getattr"))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mpyc"):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name in SENDS]
    return found


def test_only_reveal_module_sends_plaintext():
    modules = sorted(RUNTIME.rglob("*.py"))
    reveal = RUNTIME / "secure" / "reveal.py"
    assert reveal in modules and len(modules) > 5
    offenders = {str(p.relative_to(RUNTIME)): calls for p in modules if p != reveal and (calls := _sending_calls(p))}
    assert offenders == {}, f"values may leave MPC only in runtime/secure/reveal.py: {offenders}"
    calls = [c for _, c in _sending_calls(RUNTIME / "secure" / "reveal.py")]
    # the reveal, the fast linkage's match tags, the quicksort's comparison outcomes and the masked
    # differences inside its comparisons (as MPyC's own comparison opens them), the radix sort's
    # permutations composed with a fresh shuffle
    assert calls.count("output") == 5
    assert calls.count("transfer") == 2  # the plaintext status handshake, the shuffle's seeds


def test_only_reveal_module_delivers_shares_to_output_only_receivers():
    """Shares of revealed values leave a computing party for an output-only receiver
    (runtime/launch/output_party.py) only through runtime/secure/reveal.py."""
    callers = sorted(str(p.relative_to(RUNTIME)) for p in RUNTIME.rglob("*.py")
                     if "deliver_shares(" in p.read_text(encoding="utf-8") and p.name != "output_party.py")
    assert callers == ["secure/reveal.py"]


def test_static_check_catches_a_stray_output(tmp_path):
    bad = tmp_path / "stray.py"
    bad.write_text("async def f(rt, x):\n    return await rt.output(x)\n")
    assert _sending_calls(bad) == [(2, "output")]


# -- dynamic audit ---------------------------------------------------------------------------
QUERIES = {
    "all_receivers_having": """@purpose research
SELECT exp_Region, COUNT(*) AS n, AVG(hours_worked_week) AS hours, SUM(debt_eur) AS debt
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Region
HAVING COUNT(*) >= 15;""",
    "one_receiver_rounded": """@purpose research
@receivers police
SELECT report_channel, COUNT(*) AS reports, SUM(victims_mentioned) AS victims
FROM helpline_reports
GROUP BY report_channel;""",
}


def leakage_of(plan: dict) -> dict[str, list[dict]]:
    """Revealed node id -> the leakage items that announce it."""
    table = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    items = {(it["item"], it.get("column")): it for it in plan["leakage"]}
    out: dict[str, list[dict]] = {}

    def add(nid, key):
        if key in items:
            out.setdefault(nid, []).append(items[key])

    add(table["released"], ("suppression_flag", None))
    for o in table["outputs"]:
        if o["kind"] == "value":
            add(o["value"], ("output", o["name"]))
            add(o["flag"], ("output_flag", o["name"]))
    if table["keep"]:
        add(table["keep"], ("having_outcome", None))
    return out


@pytest.mark.mpc
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_parties_receive_exactly_the_leakage_report(tmp_path, corpus_data, name):
    plan = compile_plan(QUERIES[name], CAT)
    audit = tmp_path / "audit.jsonl"
    with _MPC_SLOTS:
        table, _ = launch_local(plan, CATALOG, corpus_data, quiet=True, timeout=120,
                                env={"IQ_AUDIT_FILE": str(audit)})
    assert_same_result(plan, table, oracle_result(plan, CAT, corpus_data))
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    names = plan["parties"] + plan.get("output_parties", [])  # output-only receivers write {"party": name}
    by_party = {x["party"] if x["pid"] is None else plan["parties"][x["pid"]]: x for x in lines}
    assert len(lines) == len(names) == len(by_party), "one reveal line per party"
    for party in plan["parties"]:  # each computing party sent its shares to every output-only receiver
        assert by_party[party].get("shares_sent_to", []) == plan.get("output_parties", []), party
    reveal = next(n for n in plan["nodes"] if n["op"] == "reveal")
    receivers = plan["receivers"]
    assert reveal["attrs"]["to"] == receivers
    for party, line in by_party.items():
        assert line["reveal"] == reveal["id"]
        if party in receivers:
            assert list(line["received"]) == reveal["inputs"], party
        else:
            assert line["received"] is None, f"non-receiver {party} got {line['received']}"
    got = [by_party[r]["received"] for r in receivers]
    assert all(g == got[0] for g in got), "receivers got different values"
    received = got[0]

    # every revealed vector is announced in the leakage report, to exactly these receivers
    announced = leakage_of(plan)
    assert set(received) <= set(announced), f"revealed but not in the leakage report: {set(received) - set(announced)}"
    for nid in received:
        for item in announced[nid]:
            assert item["to"] == receivers and item["cells"] == plan["cells"]
    non_public = [it for it in plan["leakage"] if it.get("to") and not it.get("public")]
    used = [id(it) for nid in received for it in announced[nid]]
    assert all(id(it) in used for it in non_public), "leakage items that nothing reveals"

    # flags are 0/1; a value is 0 wherever its flag withholds it (masked inside MPC)
    table_attrs = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    flags = {table_attrs["released"]} | {o["flag"] for o in table_attrs["outputs"] if o["kind"] == "value"}
    if table_attrs["keep"]:
        flags.add(table_attrs["keep"])
    for f in flags:
        assert set(received[f]) <= {0.0, 1.0}
    for o in table_attrs["outputs"]:
        if o["kind"] == "value":
            for v, ok in zip(received[o["value"]], received[o["flag"]]):
                assert ok == 1.0 or v == 0.0, f"{o['name']}: withheld cell revealed {v}"
    released = received[table_attrs["released"]]
    if table_attrs["keep"]:
        assert all(r == 1.0 or k == 0.0 for r, k in zip(released, received[table_attrs["keep"]]))
