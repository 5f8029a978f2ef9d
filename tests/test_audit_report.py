"""Issue 21 item 6: `iq audit report`, one document per dataset and period, as HTML (self-contained,
every ledger value escaped) and Markdown; releases, approvals with signers, what each party learned,
runs refused, failed or killed, the differential privacy budget (or a marked section saying none
is recorded), and the verification status of every ledger. The HTML page is rendered by headless
Chromium (skipped without /usr/bin/chromium); its screenshot goes to $IQ_TEST_ARTEFACTS (else the
test's temporary folder)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from insightql.runtime.governance.ledger import Ledger

from test_audit_heads import PARTIES, iq, rewrite, run
from test_explain import CHROMIUM, CHROMIUM_FLAGS

CATALOG = Path(__file__).resolve().parents[1] / "examples" / "catalog.toml"
EVIL = "<script>alert('x')</script>"


@pytest.fixture
def ledgers(tmp_path):
    led = {p: tmp_path / f"{p}.ledger.jsonl" for p in PARTIES}
    for p in PARTIES:
        Ledger(led[p]).append("approval", "sha256:aaa", {
            "approver": "police", "signature": "SIG1", "conditions": {"expires": "2030-01-01", "runs": 3},
            "signer": {"name": EVIL, "role": "data protection officer"}, "legal_basis": "GDPR art. 6(1)(e)",
            "purpose": "research", "reference": "DPA-7"})
    run(led, "sha256:aaa", "by_region")
    for p in PARTIES:
        Ledger(led[p]).append("run_refused", "sha256:ccc", {"by": ["ngo"], "reasons": ["stale guard"],
                                                            "query": EVIL, "datasets": ["police_victims"]})
    Ledger(led["police"]).append("run_started", "sha256:aaa", {"parties": PARTIES, "query": "by_region",
                                                               "datasets": ["police_victims"], "peer_heads": {}})
    Ledger(led["police"]).append("run_failed", "sha256:aaa", {"error": "ConnectionResetError", "query": "by_region",
                                                              "datasets": ["police_victims"]})
    return led


def report(ledgers, tmp_path, fmt, *extra):
    out = tmp_path / f"out-{fmt}"
    res = iq("audit", "report", "--ledger", *ledgers.values(), "--catalog", CATALOG, "--format", fmt,
             "--out", out, *extra)
    assert "Traceback" not in res.stderr, res.stderr
    return res, sorted(out.glob(f"*.{fmt}")) if out.exists() else []


def test_html_report_sections_and_escaping(ledgers, tmp_path):
    res, files = report(ledgers, tmp_path, "html")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [f.name for f in files] == ["audit-police_victims-start-end.html"]  # one per dataset
    page = files[0].read_text()
    for title in ("Releases", "Approvals", "What each party learned", "Runs refused, failed or killed",
                  "Differential privacy budget", "Verification of the ledgers"):
        assert f"<h2>{title}</h2>" in page
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "default-src 'none'" in page and not re.search(r"(src|href)=", page)  # nothing loaded from anywhere
    assert "data protection officer" in page and "GDPR art. 6(1)(e)" in page and "DPA-7" in page
    assert "expires 2030-01-01, runs 3" in page and "helper, ngo, police" in page  # recorded by every party
    learned = page[page.index("<h2>What each party learned</h2>"):page.index("<h2>Runs refused")]
    assert "<td>helper</td><td>no</td><td>nothing (no item of the leakage report names it)</td>" in learned
    assert "<td>police</td><td>yes (commitment hmac-sha256:police...)</td>" in learned
    assert "refused by ngo: stale guard" in page and "ConnectionResetError" in page
    assert "run 2 of 3 approved" in page  # the failed run consumed an approved run
    assert 'class="none"' in page and "No differential privacy budget recorded for police_victims" in page
    assert page.count('<td class="OK">OK</td>') == 3 and "no mismatch" in page


def test_markdown_report_escapes_and_marks_the_missing_budget(ledgers, tmp_path):
    res, files = report(ledgers, tmp_path, "md", "--dataset", "police_victims")
    assert res.returncode == 0 and len(files) == 1
    text = files[0].read_text()
    assert "<script>" not in text and r"\<script\>alert('x')\</script\>" in text
    assert "> **Note:** No differential privacy budget recorded" in text
    assert "| by\\_region | aaa | police, ngo |" in text


def test_period_and_dataset_filters(ledgers, tmp_path):
    res, files = report(ledgers, tmp_path, "md", "--to", "2020-12-31")
    assert res.returncode == 0 and files[0].name == "audit-police_victims-start-2020-12-31.md"
    text = files[0].read_text()
    assert "0 release(s), 0 approval(s), 0 run(s) refused" in text and "None in this period." in text
    res, _ = report(ledgers, tmp_path, "md", "--dataset", "bank_accounts")
    assert res.returncode == 2 and res.stderr.startswith("iq: ") and "no dataset 'bank_accounts'" in res.stderr
    res, _ = report(ledgers, tmp_path, "md", "--from", "2024-02-01", "--to", "2024-01-01")
    assert res.returncode == 2 and "is after --to" in res.stderr


def test_budget_recorded_is_shown(ledgers, tmp_path):
    """budget.py's spends (a `note` {dp_spend} per dataset at every party) from the owner's ledger, and
    what is left in the current period by the owner's policy."""
    text = CATALOG.read_text(encoding="utf-8")
    anchor = "max_groups = 2000\n[datasets.police_victims.columns]"
    assert anchor in text
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text.replace(anchor, "max_groups = 2000\n[datasets.police_victims.policy.privacy]\n"
                                    "epsilon_budget = 1.0\nperiod_days = 30\n[datasets.police_victims.columns]"))
    for p in PARTIES:
        Ledger(ledgers[p]).append("note", "sha256:aaa", {"dp_spend": {"dataset": "police_victims", "epsilon": "3/5",
                                                                      "delta": "0", "query": "by_region"}})
    out = tmp_path / "dp"
    res = iq("audit", "report", "--ledger", *ledgers.values(), "--catalog", catalog, "--format", "html", "--out", out)
    assert res.returncode == 0, res.stdout + res.stderr
    page = (out / "audit-police_victims-start-end.html").read_text()
    section = page[page.index("<h2>Differential privacy budget</h2>"):page.index("<h2>Verification")]
    assert "No differential privacy budget recorded" not in section
    assert section.count("<td>3/5</td>") == 1 and "<td>police</td>" in section  # the owner's record only
    assert "epsilon 0.6 spent of 1 (0.4 left)" in section and "the last 30 days" in section


def test_a_rewritten_ledger_is_a_problem_in_the_report(ledgers, tmp_path):
    run(ledgers, "sha256:aaa", "by_region")  # a second run: the others hold police's head from its start

    def drop(es):
        return [e for e in es if not (e["kind"] == "release" and e["seq"] < 6)]
    rewrite(ledgers["police"], drop)
    res, files = report(ledgers, tmp_path, "html")
    assert res.returncode == 1 and "verification problem(s)" in res.stdout
    page = files[0].read_text()
    assert '<td class="PROBLEM">PROBLEM</td>' in page and "police records no such release" in page
    assert '<section class="problem">' in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)")
def test_chromium_renders_the_report(ledgers, tmp_path):
    _, files = report(ledgers, tmp_path, "html")
    page = files[0]
    flags = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    r = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert "<script" not in dom and "&lt;script&gt;alert('x')&lt;/script&gt;" in dom  # shown as text, never run
    assert "Verification of the ledgers" in dom
    shot = tmp_path / "audit-report.png"
    r = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 10_000  # a page was painted, not a blank
    if os.environ.get("IQ_TEST_ARTEFACTS"):
        Path(os.environ["IQ_TEST_ARTEFACTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(os.environ["IQ_TEST_ARTEFACTS"]) / shot.name)
