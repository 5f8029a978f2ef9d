"""Who computes (issue 16, item 1): a query's owners plus the fewest helpers an honest majority needs;
a receiver outside them gets its result as an output-only party (runtime/launch/output_party.py)."""
from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.runtime.launch.output_party import (OutputLinkError, connect_output_parties, recombine,
                                                   serve_output_party)
from insightql.runtime.launch.parties import PartiesError, free_loopback_config

from conftest import CATALOG5, MPC_TIMEOUT, assert_same_result, oracle_result
from tiers import examples

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CAT = load_catalog(EXAMPLES / "catalog.toml")  # police, ngo, helpline, bank, helper
DATA = {"police_victims": str(EXAMPLES / "data" / "police_victims.csv"),
        "ngo_clients": str(EXAMPLES / "data" / "ngo_clients.csv")}
TWO_DATASETS = """@purpose research
SELECT exp_Region, COUNT(*) AS n FROM police_victims UNION ALL ngo_clients GROUP BY exp_Region;
"""


def plan_of(text: str, catalog=CAT) -> dict:
    res = compile_source(text, "q.iq", catalog)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


@pytest.mark.parametrize("datasets,expected", [
    (["police_victims", "ngo_clients"], ["police", "ngo", "helper"]),  # owners + the declared helper
    (["bank_flags"], ["police", "bank", "helper"]),  # helper first, then the first other party
    (["police_victims", "ngo_clients", "helpline_reports"], ["police", "ngo", "helpline"]),  # no helper needed
    (["police_victims", "ngo_clients", "helpline_reports", "bank_flags"], ["police", "ngo", "helpline", "bank"]),
])
def test_computing_parties_are_owners_plus_fewest_helpers(datasets, expected):
    assert CAT.computing_parties(datasets) == expected


def test_a_catalog_can_ask_for_more_computing_parties():
    cat5 = load_catalog(CATALOG5)
    assert cat5.min_computing_parties == 5
    assert len(cat5.computing_parties(["police_victims"])) == 5


def test_plan_names_computing_and_output_only_parties():
    plan = plan_of(TWO_DATASETS)
    assert plan["parties"] == ["police", "ngo", "helper"]
    assert plan["receivers"] == ["police", "ngo", "helpline"] and plan["output_parties"] == ["helpline"]
    sizes = [i for i in plan["leakage"] if i["item"] == "input_sizes"]
    assert all("bank" not in i["to"] for i in plan["leakage"]) and sizes


def test_fewer_computing_parties_never_weaken_a_release(tmp_path):
    """Red team: an observer is receivers plus up to t computing parties. A query computed by 3 of a
    catalog's 5 parties has t = 1, yet its release rules must be those of t = 2 (the catalog's), or a
    catalog could weaken its own rules by letting fewer parties compute. Every corpus query compiled
    with min_computing_parties 3 and 5 has the same circuit (every rule and constant); the control:
    the computing sets do differ. Limit: t matters only for >= 3 owners with >= 2 non-receivers in
    an observer, which no corpus query has, so this checks the plans agree, not yet that t is the
    catalog's (release.py, linkage.py and guard.py pass catalog.party_names())."""
    from conftest import TESTS
    text = CATALOG5.read_text(encoding="utf-8")
    three = tmp_path / "catalog5_three.toml"
    three.write_text(text.replace("min_computing_parties = 5", "min_computing_parties = 3"), encoding="utf-8")
    cat5, cat3 = load_catalog(CATALOG5), load_catalog(three)
    compared = smaller = 0
    for path in sorted((TESTS / "corpus" / "valid").glob("*.iq")):
        source = path.read_text(encoding="utf-8")
        if "-- catalog:" in source.split("\n", 1)[0]:
            continue  # written for another catalog
        a, b = (compile_source(source, path.name, c).plan for c in (cat5, cat3))
        if a is None or b is None:
            continue
        assert a["nodes"] == b["nodes"], path.name
        assert [{k: v for k, v in i.items() if k != "to"} for i in a["leakage"]] == \
            [{k: v for k, v in i.items() if k != "to"} for i in b["leakage"]], path.name
        compared += 1
        smaller += len(b["parties"]) < len(a["parties"])
    assert compared >= 40 and smaller >= 40, (compared, smaller)


def _three_owner_catalog(tmp_path: Path, minimum: int) -> Path:
    """Three organisations with one layout, a receiver that holds no data, two helpers: 5 parties."""
    parties = "".join(f"[parties.{p}]\n" for p in ("a", "b", "c", "analyst")) + "[parties.helper]\nhelper = true\n"
    datasets = "".join(f"""
[datasets.d{o}]
owner = "{o}"
[datasets.d{o}.policy]
min_group_size = 10
receivers = ["analyst"]
purposes = ["research"]
[datasets.d{o}.columns]
region = {{ type = "category", domain = ["North", "South"] }}
""" for o in ("a", "b", "c"))
    path = tmp_path / f"three_owners_{minimum}.toml"
    path.write_text(f"min_computing_parties = {minimum}\n{parties}{datasets}", encoding="utf-8")
    return path


def test_observer_t_is_the_catalogs_not_the_computing_sets(tmp_path):
    """Red team: the analyst receives and may collude with t computing parties. With the catalog's 5
    parties t = 2, so analyst + a + b is an observer and the rows not held by a and b (c's alone) must
    be >= k; a query computed by a, b, c alone (t = 1) must keep that rule. Control: the computing
    sets differ, and the rule is there in both."""
    query = ("@purpose research\n@receivers analyst\n"
             "SELECT region, COUNT(*) AS n FROM da UNION ALL db UNION ALL dc GROUP BY region;\n")
    five, three = (load_catalog(_three_owner_catalog(tmp_path, m)) for m in (5, 3))
    a, b = (plan_of(query, c) for c in (five, three))
    assert len(a["parties"]) == 5 and b["parties"] == ["a", "b", "c"]
    who = sorted(tuple(n["attrs"]["who"]) for n in b["nodes"] if n["attrs"].get("rule") == "observer.rows")
    assert ("a", "b") in who, who
    assert a["nodes"] == b["nodes"]


def test_unchanged_catalog_digest_without_the_new_field():
    """min_computing_parties at its default leaves the digest (and every plan hash) as before."""
    dump = CAT.model_dump(mode="json")
    assert "min_computing_parties" in dump
    from insightql.compiler.check.catalog import _digest_view
    assert "min_computing_parties" not in _digest_view(dump)


# ----------------------------------------------------------------------------- Shamir recombination
def shamir(secret: int, t: int, m: int, p: int, rng: random.Random) -> list[tuple[int, int]]:
    coeffs = [secret % p] + [rng.randrange(p) for _ in range(t)]
    return [(x, sum(c * x ** k for k, c in enumerate(coeffs)) % p) for x in range(1, m + 1)]


P = 2 ** 127 - 1


@settings(max_examples=examples(60), deadline=None)
@given(secret=st.integers(-2 ** 100, 2 ** 100), m=st.integers(3, 9), seed=st.integers(0, 2 ** 32))
def test_recombine_recovers_the_secret_and_detects_a_wrong_share(secret, m, seed):
    rng = random.Random(seed)
    t = (m - 1) // 2
    pts = shamir(secret, t, m, P, rng)
    assert recombine(pts, P, t) == secret % P
    if m > t + 1:
        bad = list(pts)
        x, y = bad[-1]
        bad[-1] = (x, (y + 1) % P)
        with pytest.raises(ValueError, match=f"party {x - 1}"):
            recombine(bad, P, t)


# ----------------------------------------------------------------------------- the handshake, no MPC
def test_an_output_party_that_refuses_stops_the_computing_parties_before_any_share(monkeypatch):
    from insightql.runtime.launch import output_party
    monkeypatch.setattr(output_party, "STOP_GRACE", 0.5)  # ngo and helper never connect here
    plan = plan_of(TWO_DATASETS)
    config = free_loopback_config(plan["parties"] + plan["output_parties"])

    async def main():
        server = asyncio.create_task(serve_output_party(plan, "helpline", config, "its ledger is corrupted", {}, 10))
        with pytest.raises(OutputLinkError, match="receiver helpline cannot take part: its ledger is corrupted"):
            await connect_output_parties(plan, "police", config, 10)
        return await server

    revealed, hellos, why, how = asyncio.run(main())
    assert revealed is None and how == "refused" and why == "its ledger is corrupted"
    assert hellos == [{"party": "police", "plan_hash": plan["hash"]}]


def test_an_unreachable_output_party_is_named():
    plan = plan_of(TWO_DATASETS)
    config = free_loopback_config(plan["parties"] + plan["output_parties"])
    with pytest.raises(OutputLinkError, match="receiver helpline at 127.0.0.1:[0-9]+ not reachable within 0.3 s"):
        asyncio.run(connect_output_parties(plan, "police", config, 0.3))


def test_a_parties_file_without_a_computing_party_is_refused():
    config = free_loopback_config(["police", "ngo"])
    with pytest.raises(PartiesError, match="helper"):
        config.computing(["police", "ngo", "helper"])


# ----------------------------------------------------------------------------- real parties
@pytest.mark.mpc
@pytest.mark.parametrize("tls", [False, True])
def test_two_dataset_query_on_five_party_catalog_runs_with_three(tmp_path, tls):
    """bank neither computes nor receives: no process. helpline receives without computing: it loads
    no data, takes no part in sharing, and gets the same table as the computing receivers."""
    from insightql.runtime.launch.launcher import launch_local

    plan = plan_of(TWO_DATASETS)
    table, logs = launch_local(plan, EXAMPLES / "catalog.toml", DATA, quiet=False, timeout=MPC_TIMEOUT,
                               workdir=tmp_path, tls=tls)
    assert sorted(logs) == ["helper", "helpline", "ngo", "police"]  # bank was not started
    assert "loading" not in logs["helpline"] and "secure steps" not in logs["helpline"]
    assert "waiting for the computing parties' shares" in logs["helpline"]
    results = {p: json.loads((tmp_path / f"{p}.json").read_text()) for p in ("police", "ngo", "helpline")}
    assert results["helpline"] == results["police"] == results["ngo"]
    assert not (tmp_path / "helper.json").exists() or json.loads((tmp_path / "helper.json").read_text()) is None
    assert_same_result(plan, table, oracle_result(plan, CAT, DATA))
