"""runtime/governance/budget.py without MPC: what a plan spends, the party's check against its own
ledger (budget, per-query cap, period), the recorded spends and the audit figures, and a tampered
spend caught by the hash chain before the party runs (spec/privacy.md 7)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.runtime.governance import budget
from insightql.runtime.governance.ledger import Ledger
from insightql.runtime.governance.party_checks import Governance, GovernanceOptions

CORPUS = Path(__file__).resolve().parent / "corpus"
QUERY = """@purpose research
@epsilon {eps}
SELECT exp_Region, COUNT(*) AS n, SUM(hours_worked_week) AS hours
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Region;
"""


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CORPUS / "catalog_dp.toml")  # police_victims: budget 3, cap 1, 365 days


def plan_of(catalog, eps: str) -> dict:
    res = compile_source(QUERY.format(eps=eps), "q.iq", catalog)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


def test_a_plan_spends_the_composition_of_its_measurements(catalog):
    plan = plan_of(catalog, "0.75")
    spends = budget.plan_spends(plan)
    assert set(spends) == {"police_victims", "ngo_clients"}
    eps, delta = spends["police_victims"]
    exact = sum(Fraction(n["attrs"]["epsilon"]) for n in plan["nodes"] if n["op"] == "dp_noise")
    assert exact <= Fraction(3, 4) and eps >= exact and float(eps) - float(exact) < 1e-12 and delta == 0
    assert budget.plan_spends(compile_source(QUERY.replace("@epsilon {eps}\n", "").format(), "q.iq",
                                             load_catalog(CORPUS / "catalog.toml")).plan) == {}


def test_compose_is_opendps_basic_composition():
    eps, delta = budget.compose([(Fraction(1, 10), Fraction(0)), (Fraction(1, 5), Fraction(1, 10 ** 9))])
    assert 0.3 <= eps < 0.3 + 1e-12 and 1e-9 <= delta < 1.0001e-9  # rounded up, never down
    assert budget.compose([]) == (0.0, 0.0)


def test_the_owner_refuses_what_would_exceed_its_budget(catalog, tmp_path):
    led = Ledger(tmp_path / "police.ledger.jsonl")
    plan = plan_of(catalog, "1")
    for _ in range(2):  # 2 of the budget of 3
        assert budget.check(plan, led, catalog, "police") == []
        budget.record(plan, lambda kind, data: led.append(kind, plan["hash"], data))
    assert budget.check(plan, led, catalog, "police") == []  # 3 of 3: exactly the budget
    budget.record(plan, lambda kind, data: led.append(kind, plan["hash"], data))
    small = plan_of(catalog, "0.1")
    problems = budget.check(small, led, catalog, "police")
    own = [p for p in problems if p.startswith("police_victims:")]
    assert len(own) == 1 and "privacy budget would be exceeded" in own[0] and "3 release(s)" in own[0]
    # the NGO's dataset was spent in the same runs, which the police's ledger recorded too
    assert [p for p in problems if p not in own] and all("as police's ledger records" in p for p in problems if p not in own)
    # the NGO judges its own dataset (its own budget of 3) on its own ledger, which records no spend yet
    assert budget.check(small, Ledger(tmp_path / "ngo.ledger.jsonl"), catalog, "ngo") == []
    later = datetime.now(timezone.utc) + timedelta(days=366)  # the period has passed
    assert budget.check(small, led, catalog, "police", now=later) == []
    sr = budget.spent_remaining(led, catalog, me="police")["police_victims"]
    assert sr["releases"] == 3 and abs(sr["spent_epsilon"] - 3) < 1e-9 and sr["remaining_epsilon"] < 1e-9
    assert set(budget.spent_remaining(led, catalog, me="ngo")) == {"ngo_clients"}  # only its own dataset


def test_the_owner_refuses_a_plan_above_its_cap_or_without_dp(catalog, tmp_path):
    led = Ledger(tmp_path / "police.ledger.jsonl")
    over = json.loads(json.dumps(plan_of(catalog, "1")))
    for n in over["nodes"]:  # a plan compiled elsewhere with a larger epsilon than this catalog allows
        if n["op"] == "dp_noise":
            n["attrs"]["epsilon"] = "1"
    assert any("per-query cap" in p for p in budget.check(over, led, catalog, "police"))
    plain = compile_source(QUERY.replace("@epsilon {eps}\n", "").format(), "q.iq",
                           load_catalog(CORPUS / "catalog.toml")).plan
    assert any("requires differential privacy" in p for p in budget.check(plain, led, catalog, "police"))


def test_a_tampered_spend_is_detected_and_the_party_refuses(catalog, tmp_path):
    path = tmp_path / "police.ledger.jsonl"
    led = Ledger(path)
    plan = plan_of(catalog, "1")
    for _ in range(3):
        budget.record(plan, lambda kind, data: led.append(kind, plan["hash"], data))
    lines = path.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[0])
    assert entry["data"]["dp_spend"]["dataset"] in ("police_victims", "ngo_clients")
    entry["data"]["dp_spend"]["epsilon"] = "1/1000"  # pretend the first release spent almost nothing
    lines[0] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert led.verify()  # the hash chain no longer holds
    gov = Governance(plan_of(catalog, "0.5"), "police", catalog, GovernanceOptions(), path)
    reason = gov.preflight()
    assert reason and "corrupted" in reason


def test_spending_exactly_the_budget_is_allowed_despite_rounding(tmp_path):
    """0.1 + 0.2 composes to 0.30000000000000004 in doubles; a budget of 0.3 still admits both."""
    from insightql.compiler.check.catalog import Catalog

    raw = load_catalog(CORPUS / "catalog_dp.toml").model_dump(mode="json")
    raw["datasets"]["police_victims"]["policy"]["privacy"].update(epsilon_budget=0.3, max_epsilon_per_query=0.2)
    cat = Catalog.model_validate(raw)
    led = Ledger(tmp_path / "police.ledger.jsonl")
    for eps in ("0.1", "0.2"):
        plan = plan_of(cat, eps)
        for n in plan["nodes"]:  # spend exactly the query's epsilon, so the sum is exactly the budget
            if n["op"] == "dp_noise":
                n["attrs"]["epsilon"] = str(Fraction(eps) / sum(1 for m in plan["nodes"] if m["op"] == "dp_noise"))
        assert budget.check(plan, led, cat, "police") == [], eps
        budget.record(plan, lambda kind, data: led.append(kind, plan["hash"], data))
    assert budget.check(plan_of(cat, "0.001"), led, cat, "police")


def test_a_deleted_owner_ledger_does_not_reset_the_budget(catalog, tmp_path):
    """spec/privacy.md 7: every party records every run's spends, so when the police's ledger is deleted
    (a new file: its budget would start again), the NGO's party, which computed in those runs, still
    refuses the plan for police_victims, and says whose ledger it read. The NGO never refuses what the
    owner's intact ledger allows (its records are a subset of the owner's)."""
    plan = plan_of(catalog, "1")
    police, ngo = Ledger(tmp_path / "police.ledger.jsonl"), Ledger(tmp_path / "ngo.ledger.jsonl")
    for _ in range(3):  # the whole budget of 3, recorded at both parties
        for led in (police, ngo):
            assert budget.check(plan, led, catalog, led.path.name.split(".")[0]) == []
            budget.record(plan, lambda kind, data, led=led: led.append(kind, plan["hash"], data))
    small = plan_of(catalog, "0.1")
    fresh = Ledger(tmp_path / "police.new.ledger.jsonl")  # the owner's ledger deleted: nothing recorded
    assert budget.check(small, fresh, catalog, "police") == []
    problems = budget.check(small, ngo, catalog, "ngo")
    assert any(p.startswith("police_victims: the privacy budget would be exceeded") and "as ngo's ledger records"
               in p for p in problems), problems
    assert budget.check(small, ngo, catalog, "ngo") == budget.check(small, police, catalog, "ngo")
    helper_ledger = Ledger(tmp_path / "helper.ledger.jsonl")  # a party that took part in none of those runs
    assert budget.check(plan_of(catalog, "1"), helper_ledger, catalog, "helper") == []
