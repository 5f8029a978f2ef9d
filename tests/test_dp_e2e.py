"""Differential privacy through real parties on the shipped data (examples/; spec/privacy.md): a DP
query runs, its noisy counts lie within their error bound of the exact ones, every party's ledger
records the spend, a second query that would exceed the owners' budget is refused by the owners'
parties at the handshake (not by the compiler: it compiles), and a tampered spend is caught."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.dp_interval import noise_interval
from insightql.compiler.plaintext.results import Suppressed
from insightql.runtime.governance import budget
from insightql.runtime.governance.ledger import Ledger

from conftest import oracle_result

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = {"police_victims": str(EXAMPLES / "data" / "police_victims.csv"),
        "ngo_clients": str(EXAMPLES / "data" / "ngo_clients.csv")}
QUERY = """@purpose research
@epsilon 0.6
SELECT exp_Type, COUNT(*) AS identifications, AVG(prs_Age) AS mean_age
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Type;
"""


@pytest.fixture(scope="module")
def dp_catalog(tmp_path_factory) -> Path:
    """The demo catalog with a privacy budget on the police's dataset (the NGO's inherits it: `like`)."""
    text = (EXAMPLES / "catalog.toml").read_text(encoding="utf-8")
    anchor = "max_groups = 2000\n[datasets.police_victims.columns]"
    assert anchor in text
    text = text.replace(anchor, "max_groups = 2000\n[datasets.police_victims.policy.privacy]\nepsilon_budget = 1.0\n"
                        "max_epsilon_per_query = 1.0\nperiod_days = 30\n[datasets.police_victims.columns]")
    path = tmp_path_factory.mktemp("dpcat") / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.mpc
def test_dp_query_spend_refusal_and_tampering(dp_catalog, tmp_path):
    from insightql.runtime.launch.launcher import LaunchError, launch_local

    cat = load_catalog(dp_catalog)
    assert cat.datasets["ngo_clients"].policy.privacy is not None
    plan = compile_source(QUERY, "dp.iq", cat).plan
    assert plan is not None
    ledgers = tmp_path / "ledgers"
    table, _ = launch_local(plan, dp_catalog, DATA, quiet=True, ledger_dir=ledgers, workdir=tmp_path / "run1",
                            timeout=300)
    exact = oracle_result(plan, cat, DATA)
    col = table.columns.index("identifications")
    node = next(n for n in plan["nodes"] if n["op"] == "dp_noise" and n["attrs"]["what"] == "COUNT(*)")
    h = noise_interval(node["attrs"]["scale"], len(plan["parties"]))
    released = 0
    for got, want in zip(table.rows, exact.rows):
        assert got[0] == want[0]
        if not isinstance(got[col], Suppressed) and not isinstance(want[col], Suppressed):
            released += 1
            assert abs(got[col] - want[col]) <= 5 * h, (got, want, h)  # 5x the 95% half-width: P(fail) < 1e-6
    assert released >= 3
    assert next(s for s in table.schema if s["name"] == "identifications")["noise95"] == f"± {h}"

    spent = sum(Fraction(n["attrs"]["epsilon"]) for n in plan["nodes"] if n["op"] == "dp_noise")
    for party in plan["parties"]:  # police, ngo, helper: each records the spend per dataset read
        led = Ledger(ledgers / f"{party}.ledger.jsonl")
        assert led.verify() == []
        rec = {d: budget.recorded(led, d) for d in ("police_victims", "ngo_clients")}
        assert all(len(r) == 1 and Fraction(r[0]["epsilon"]) >= spent for r in rec.values()), rec
    sr = budget.spent_remaining(Ledger(ledgers / "police.ledger.jsonl"), cat, me="police")["police_victims"]
    assert abs(sr["spent_epsilon"] - 0.6) < 1e-6 and abs(sr["remaining_epsilon"] - 0.4) < 1e-6

    again = compile_source(QUERY.replace("exp_Type", "exp_Region"), "dp2.iq", cat).plan  # 0.6 more: 1.2 > 1.0
    assert again is not None  # the compiler cannot know the spend; the owners' parties do
    with pytest.raises(LaunchError) as err:
        launch_local(again, dp_catalog, DATA, quiet=True, ledger_dir=ledgers, workdir=tmp_path / "run2", timeout=300)
    assert "privacy budget would be exceeded" in str(err.value), str(err.value)
    for owner in ("police", "ngo"):
        kinds = [e["kind"] for e in Ledger(ledgers / f"{owner}.ledger.jsonl").entries()]
        assert kinds[-1] == "run_refused" and "run_started" not in kinds[kinds.index("run_finished"):], kinds

    path = ledgers / "police.ledger.jsonl"  # tamper: lower the recorded spend, then ask for 0.6 again
    text = path.read_text(encoding="utf-8")
    eps = budget.recorded(Ledger(path), "police_victims")[0]["epsilon"]
    path.write_text(text.replace(f'"epsilon":"{eps}"', '"epsilon":"1/100"', 1), encoding="utf-8")
    assert Ledger(path).verify()
    with pytest.raises(LaunchError) as err:
        launch_local(again, dp_catalog, DATA, quiet=True, ledger_dir=ledgers, workdir=tmp_path / "run3", timeout=300)
    assert "corrupted" in str(err.value), str(err.value)
