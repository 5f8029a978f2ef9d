"""The audit report (`iq audit report`): one readable document per dataset and period, from the
ledgers of the parties (spec/governance.md 2.6).

Sections: releases (date, plan hash, receivers, outputs), approvals (signer, role, legal basis,
purpose, reference, conditions), what each party learned (the leakage items its release entry
records, and whether it received the values), runs refused, failed or killed, the differential
privacy budget spent (the `dp_spend` notes of budget.py, from the owner's ledger, and what it says
is left in the current period; otherwise a marked notice says that none is recorded)
and the verification status of every ledger given (its hash chain, the heads the others hold,
and the comparison of the release entries). ``collect`` builds a neutral document (sections of
paragraphs and tables, ``report_render.py``) that is written as HTML or Markdown.
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from insightql.runtime.governance import compare as compare_mod
from insightql.runtime.governance import heads as heads_mod
from insightql.runtime.governance import history
from insightql.runtime.governance.ledger import Ledger
from insightql.runtime.governance.report_render import Document, Section, render

NO_BUDGET = "No differential privacy budget recorded"


def _in_period(entry: dict, start: date | None, end: date | None) -> bool:
    try:
        day = date.fromisoformat(str(entry.get("time", ""))[:10])
    except ValueError:  # a damaged entry: the verification section reports the ledger
        return False
    return (start is None or day >= start) and (end is None or day <= end)


def _plan_datasets(entries: dict[str, list[dict]]) -> dict[str, list[str]]:
    """plan hash -> datasets, from every entry that records them (releases; runs since issue 21)."""
    out: dict[str, list[str]] = {}
    for es in entries.values():
        for e in es:
            ds = (e.get("data") or {}).get("datasets")
            if e.get("plan_hash") and ds:
                out.setdefault(e["plan_hash"], list(ds))
    return out


def _short(h: str | None) -> str:
    return (h or "?").removeprefix("sha256:")[:12]


def _outputs(outputs: list[dict]) -> str:
    return "; ".join(f"{o.get('name', '?')} ({', '.join(o.get('columns', []))}): {o.get('cells', '?')} cells"
                     for o in outputs) or "-"


def verification(ledgers: dict[str, Path], signed: list[dict], trusted) -> tuple[Section, int]:
    """The status of every ledger: chain, heads held by the others, release comparison."""
    results = heads_mod.verify_heads(ledgers, signed, trusted)
    findings, runs = compare_mod.compare(ledgers)
    sec = Section("Verification of the ledgers", header=["party", "ledger", "entries", "status", "details"])
    bad = 0
    for party, path in ledgers.items():
        r = results[party]
        n = len(Ledger(path).readable_entries())
        if r["problems"]:
            bad += len(r["problems"])
            status = "PROBLEM"
            detail = "; ".join(r["problems"])
        elif r["checked"]:
            status, detail = "OK", f"hash chain intact; agrees with {r['checked']} head(s) held by {', '.join(r['sources'])}"
        else:
            status, detail = "OK (unwitnessed)", "hash chain intact; nobody else holds a head of it"
        sec.rows.append([party, str(path), str(n), status, detail])
    bad += len(findings)
    sec.paragraphs.append(f"Release entries compared across {len(ledgers)} ledger(s): {runs} release(s), "
                          + (f"{len(findings)} mismatch(es):" if findings else "no mismatch."))
    sec.paragraphs += findings
    sec.status = "problem" if bad else "ok"
    return sec, bad


def _when(entry: dict) -> str:
    return str(entry.get("time"))[:19].replace("T", " ")


def _releases(ledgers, mine, start, end) -> tuple[Section, Section]:
    """Releases (one row per run) and what each party learned (one row per party and release)."""
    releases = Section("Releases", header=["date (UTC)", "query", "plan", "receivers", "outputs", "recorded by"])
    learned = Section("What each party learned", header=["date (UTC)", "query", "party", "values received",
                                                         "learned beside the output"])
    for run in compare_mod.group_runs(ledgers):
        first = min((es[0] for es in run.values()), key=lambda e: str(e.get("time")))
        d, ph = first.get("data") or {}, first.get("plan_hash")
        if ph not in mine or not _in_period(first, start, end):
            continue
        when = _when(first)
        releases.rows.append([when, d.get("query") or "?", _short(ph), ", ".join(d.get("receivers", [])) or "-",
                              _outputs(d.get("outputs", [])),
                              ", ".join(f"{p} (entry {es[0]['seq']})" for p, es in sorted(run.items()))])
        for party, es in sorted(run.items()):
            rd = es[0].get("data") or {}
            c = rd.get("commitment")
            items = "; ".join(f"{i.get('item')}: {i.get('detail', '')}" for i in rd.get("learned") or []) or (
                "nothing (no item of the leakage report names it)" if "learned" in rd
                else "not recorded (entry predates issue 21)")
            learned.rows.append([when, rd.get("query") or "?", party,
                                 f"yes (commitment {c['value'][:24]}...)" if c else "no", items])
    return releases, learned


def _approvals(entries, mine, start, end) -> Section:
    """Approvals, once each, with the parties that recorded it."""
    approvals = Section("Approvals", header=["recorded", "query", "approver", "signer", "role", "legal basis",
                                             "purpose", "reference", "conditions", "recorded by"])
    seen: dict[str, list] = {}
    for party, es in entries.items():
        for e in es:
            d, ph = e.get("data") or {}, e.get("plan_hash")
            if ph in mine and e.get("kind") == "approval" and _in_period(e, start, end):
                row = seen.get(d.get("signature"))
                if row is None:
                    signer, cond = d.get("signer") or {}, d.get("conditions") or {}
                    row = seen[d.get("signature")] = [
                        _when(e), _query_of(es, ph), d.get("approver", "?"),
                        signer.get("name", "not recorded (format 1)"), signer.get("role", "-"),
                        d.get("legal_basis", "not recorded"), d.get("purpose", "-"), d.get("reference") or "-",
                        f"expires {cond.get('expires') or 'never'}, runs {cond.get('runs') or 'unlimited'}", []]
                    approvals.rows.append(row)
                row[-1].append(party)
    for row in approvals.rows:
        row[-1] = ", ".join(sorted(row[-1]))
    return approvals


def _budget(ledgers, entries, catalog, dataset, start, end) -> Section:
    """The differential privacy spends on ``dataset`` (budget.py's `note` entries {dp_spend}), from
    the owner's ledger when it is given (the party that enforces the budget), else from every
    ledger; and what the owner's ledger says is spent and left in the current period."""
    from insightql.runtime.governance import budget as budget_mod

    sec = Section("Differential privacy budget", header=["date (UTC)", "recorded by", "query", "plan", "epsilon",
                                                         "delta"])
    ds = catalog.datasets.get(dataset)
    owner = ds.owner if ds is not None and ds.owner in ledgers else None
    for party, es in entries.items():
        if owner is not None and party != owner:
            continue
        for e in es:
            spend = (e.get("data") or {}).get(budget_mod.SPEND) if e.get("kind") == "note" else None
            if isinstance(spend, dict) and spend.get("dataset") == dataset and _in_period(e, start, end):
                sec.rows.append([_when(e), party, spend.get("query") or "?", _short(e.get("plan_hash")),
                                 str(spend.get("epsilon")), str(spend.get("delta"))])
    policy = getattr(getattr(ds, "policy", None), "privacy", None)
    if owner is not None and policy is not None:
        now = budget_mod.spent_remaining(Ledger(ledgers[owner]), catalog, me=owner).get(dataset)
        if now:
            sec.paragraphs.append(
                f"As {owner}'s ledger records it, in the current period (the last {now['period_days']} days, not "
                f"the report's period): epsilon {now['spent_epsilon']:g} spent of {now['budget_epsilon']:g} "
                f"({now['remaining_epsilon']:g} left), delta {now['spent_delta']:g} of {now['budget_delta']:g}, "
                f"over {now['releases']} release(s).")
    elif policy is not None:
        sec.paragraphs.append(f"The budget is enforced by {ds.owner}'s party; its ledger was not given, so the spends "
                              "shown are those the other parties recorded.")
    if not sec.rows:
        sec.paragraphs.insert(0, f"{NO_BUDGET} for {dataset} in this period"
                              + (": its policy sets no differential privacy budget (its releases are protected by "
                                 "the threshold and suppression rules only)." if policy is None else "."))
        sec.status = "none"
    return sec


def _runs(ledgers, entries, plans, mine, dataset, start, end) -> Section:
    runs = Section("Runs refused, failed or killed", header=["date (UTC)", "party", "query", "plan", "outcome", "detail"])
    for party, path in ledgers.items():
        for r in history.runs(path):
            if r["plan_hash"] in mine and r["outcome"] != "finished" and _in_period(r, start, end):
                runs.rows.append([_when(r), party, r["query"] or "?", _short(r["plan_hash"]), r["outcome"],
                                  history.describe(r)])
    unknown = sorted({e.get("plan_hash") for es in entries.values() for e in es
                      if e.get("kind") in ("run_refused", "run_started") and e.get("plan_hash") not in plans})
    if unknown:
        runs.paragraphs.append(f"{len(unknown)} plan(s) with runs whose datasets no ledger records (entries written "
                               f"before issue 21): {', '.join(map(_short, unknown))}; they may concern {dataset}.")
    return runs


def collect(ledgers: dict[str, Path], catalog, dataset: str, start: date | None, end: date | None,
            verified: Section) -> Document:
    """The report of ``dataset`` over the period from ``start`` to ``end`` (UTC days, inclusive)."""
    entries = {p: Ledger(path).readable_entries() for p, path in ledgers.items()}
    plans = _plan_datasets(entries)
    mine = {ph for ph, ds in plans.items() if dataset in ds}
    releases, learned = _releases(ledgers, mine, start, end)
    approvals = _approvals(entries, mine, start, end)
    runs = _runs(ledgers, entries, plans, mine, dataset, start, end)
    budget = _budget(ledgers, entries, catalog, dataset, start, end)
    budget.rows.sort(key=lambda r: r[0])
    for sec in (releases, learned, approvals, runs):
        sec.rows.sort(key=lambda r: r[0])
        if not sec.rows:
            sec.paragraphs.append("None in this period.")
    ds = catalog.datasets.get(dataset)
    period = f"{start or 'the first entry'} to {end or 'the last entry'}"
    intro = Section("Dataset", paragraphs=[
        f"{dataset}: owned by {ds.owner if ds else '?'}" + (f"; {ds.description}" if ds and ds.description else ""),
        f"Period: {period} (UTC). Ledgers: " + ", ".join(f"{p} ({path})" for p, path in ledgers.items()),
        f"{len(releases.rows)} release(s), {len(approvals.rows)} approval(s), {len(runs.rows)} run(s) refused, "
        "failed or killed."])
    return Document(f"Audit report: {dataset}", period, [intro, releases, approvals, learned, runs, budget, verified])


def _query_of(entries: list[dict], plan_hash: str | None) -> str:
    return next(((e.get("data") or {}).get("query") for e in entries
                 if e.get("plan_hash") == plan_hash and (e.get("data") or {}).get("query")), "?")


def datasets_in(ledgers: dict[str, Path]) -> list[str]:
    entries = {p: list(Ledger(path).readable_entries()) for p, path in ledgers.items()}
    return sorted({d for ds in _plan_datasets(entries).values() for d in ds})


def write_reports(ledgers: dict[str, Path], catalog, out: str | os.PathLike, *, fmt: str, dataset: str | None = None,
                  start: date | None = None, end: date | None = None, signed=(), trusted=None) -> tuple[list[Path], int]:
    """Write one report per dataset; (the files written, the number of verification problems)."""
    verified, bad = verification(ledgers, list(signed), trusted or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ds in [dataset] if dataset else datasets_in(ledgers):
        doc = collect(ledgers, catalog, ds, start, end, verified)
        path = out / f"audit-{ds}-{start or 'start'}-{end or 'end'}.{fmt}"
        path.write_text(render(doc, fmt), encoding="utf-8")
        written.append(path)
    return written, bad
