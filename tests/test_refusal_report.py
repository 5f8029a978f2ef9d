"""What `iq run` prints when parties stop at the handshake: each party's reasons once, grouped by
party (issue 20 item 3). The party logs here are the lines runtime/launch/party.py writes; the run
through real parties is in tests/test_governance_e2e.py (test_iq_run_all_parties_refuse)."""
from __future__ import annotations

from insightql.runtime.launch.launcher import _failure_report, _headline

WHY = "missing approval from 'police' (owner of police_victims)"
SHARED = " -- no data was shared"


def refused(me: str, refusers: list[str], receiver: str | None = "helpline") -> str:
    """A computing party's log when `refusers` refuse (itself among them, or not)."""
    lines = [f"[{me}] loading and validating data ... (at 0.0 s)"]
    if me in refusers:
        lines.append(f"error: [{me}] refused the plan: {WHY}")
    if receiver in refusers:
        lines.append(f"error: [{me}] receiver {receiver} cannot take part: {WHY}")
    clauses = "; ".join(f"party {r} cannot take part: refused the plan: {WHY}" for r in refusers if r != receiver)
    lines.append(f"error: [{me}] run stopped before any data was shared: {clauses}{SHARED}")
    return "\n".join(lines) + "\n"


def test_every_party_refuses_each_reason_once():
    names = ["police", "ngo", "helper"]
    failed = {n: refused(n, names + ["helpline"]) for n in names}
    failed["helpline"] = f"error: [helpline] refused the plan: {WHY}\n"
    assert _failure_report(failed) == "\n".join(f"party {n} failed:\n  error: [{n}] refused the plan: {WHY}"
                                                for n in failed)
    stopped = ["helpline", "helper", "police", "ngo"]  # the order they happened to stop in
    assert _headline({n: 7 for n in stopped}, stopped, list(failed)) == (
        "the run stopped because of parties police, ngo, helper and helpline (refused the plan); every party "
        "stopped at the handshake, no data was shared")


def test_one_party_refuses_the_others_are_named_once():
    failed = {n: refused(n, ["ngo"]) for n in ("police", "ngo", "helper")}
    failed["helpline"] = (f"error: [helpline] run stopped before any data was shared: party ngo cannot take part: "
                          f"refused the plan: {WHY}{SHARED}\n")
    assert _failure_report(failed) == (f"party ngo failed:\n  error: [ngo] refused the plan: {WHY}\n"
                                       "parties police, helper and helpline stopped at the handshake because of ngo")
    assert _headline({"police": 4, "ngo": 7, "helper": 4, "helpline": 4}, list(failed)).startswith(
        "the run stopped because of party ngo (refused the plan); ")


def test_a_party_that_gives_another_cause_keeps_its_block():
    """helper names a party that did not refuse (or says something else): its line is its own reason."""
    failed = {"police": refused("police", ["police"]),
              "helper": f"error: [helper] run stopped before any data was shared: parties run different plans "
                        f"(ngo differ from helper's plan hash){SHARED}\n"}
    report = _failure_report(failed)
    assert report.splitlines() == [
        "party police failed:", f"  error: [police] refused the plan: {WHY}",
        "party helper failed:",
        f"  error: [helper] run stopped before any data was shared: parties run different plans (ngo differ "
        f"from helper's plan hash){SHARED}"]


def test_a_crashed_party_shows_its_last_lines_and_repeats_none():
    failed = {"police": "[police] loading\nsomething went wrong\nsomething went wrong\n"}
    assert _failure_report(failed) == "party police failed:\n  [police] loading\n  something went wrong"
