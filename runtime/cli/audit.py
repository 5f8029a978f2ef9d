"""`iq audit` subcommands: a party's ledger and the ledgers of all parties (spec/governance.md 2).

* verify LEDGER [--head H]: the hash chain (and a published head);
* show LEDGER: releases and every run; prove LEDGER --entry N: a result against its commitment;
* head --ledger L --key K: a signed head to give to the other parties or an auditor;
* verify-heads LEDGER... [--heads H... --trust K]: each ledger against the heads the others hold;
* compare LEDGER...: the release entries of all parties' ledgers;
* report --ledger L... --catalog C: one document per dataset and period (runtime/governance/report.py).

Exit codes: 0 ok, 1 a mismatch or problem found, 2 usage or input error (`iq: ...` on stderr).
A ledger argument is PATH or PARTY=PATH; without PARTY the party is read from the ledger (the one
its run_started entries list among the parties but not among the peers) or its file name
(`<party>.ledger.jsonl`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from insightql.runtime.cli.common import UsageError, examples, reading
from insightql.runtime.cli.governance import _date, _fail, _passphrase, _passphrase_option, trusted_keys
from insightql.runtime.governance import compare as compare_mod
from insightql.runtime.governance import disclosure, heads, history
from insightql.runtime.governance import ledger as ledger_mod


LEDGERS = ("every party's ledger available, each PATH or PARTY=PATH (the party is read from the ledger "
           "or its name <party>.ledger.jsonl), e.g. police.ledger.jsonl ngo=ledgers/ngo.jsonl")


def add_commands(subparsers) -> None:
    """Register `iq audit` and its subcommands."""
    audit = subparsers.add_parser(
        "audit", help="inspect, cross-check and report on the parties' ledgers",
        description="Inspect a party's ledger, cross-check the ledgers of all parties and write audit "
                    "reports (spec/governance.md 2). Exit 0 ok, 1 a problem found, 2 could not check.",
        **examples("iq audit verify police.ledger.jsonl", "iq audit show police.ledger.jsonl --runs"))
    sub = audit.add_subparsers(dest="audit_command", required=True,
                               metavar="{verify,show,prove,head,verify-heads,compare,report}")
    p = sub.add_parser("verify", help="check the hash chain of a ledger",
                       description="Check a ledger's hash chain, and its head file or a published head.",
                       **examples("iq audit verify police.ledger.jsonl",
                                  "iq audit verify police.ledger.jsonl --head heads/police.head.json"))
    p.add_argument("ledger", type=Path, metavar="LEDGER", help="a party's ledger, e.g. police.ledger.jsonl")
    p.add_argument("--head", help="a published head: '<seq>:sha256:<hex>', its JSON, or a file holding it "
                   "(a signed head from iq audit head too; verify-heads checks its signature), "
                   "e.g. --head heads/police.head.json")
    p.set_defaults(fn=cmd_audit_verify)
    p = sub.add_parser("show", help="what was released and to whom, and every run (refused, failed, killed)",
                       description="The releases a ledger records (what, to whom) and every run: finished, "
                                   "failed, refused or killed.",
                       **examples("iq audit show police.ledger.jsonl",
                                  "iq audit show police.ledger.jsonl --runs --json"))
    p.add_argument("ledger", type=Path, metavar="LEDGER", help="a party's ledger, e.g. police.ledger.jsonl")
    p.add_argument("--json", action="store_true", help="print the releases (with --runs: the runs) as JSON, "
                   "e.g. iq audit show police.ledger.jsonl --json")
    p.add_argument("--runs", action="store_true", help="only the runs: started, finished, failed, refused, "
                   "killed, e.g. iq audit show police.ledger.jsonl --runs")
    p.set_defaults(fn=cmd_audit_show)
    p = sub.add_parser("prove", help="check a result file against a release's commitment",
                       description="Check that a result file is the table a release entry committed to "
                                   "(spec/governance.md 2.4); only a receiver holds the salt.",
                       **examples("iq audit prove police.ledger.jsonl --entry 2 --result result.json "
                                  "--salt police.ledger.jsonl.salts/3f2a9c41d07b5e68.salt"))
    p.add_argument("ledger", type=Path, metavar="LEDGER", help="the receiver's ledger, e.g. police.ledger.jsonl")
    p.add_argument("--entry", required=True, type=int, metavar="SEQ",
                   help="seq of the release entry (iq audit show lists them), e.g. --entry 2")
    p.add_argument("--result", required=True, type=Path, metavar="FILE",
                   help="the result file (JSON) the receiver wrote, e.g. --result result.json")
    p.add_argument("--salt", required=True, type=Path, metavar="FILE",
                   help="the release's salt file (LEDGER.salts/<salt_id>.salt), "
                        "e.g. --salt police.ledger.jsonl.salts/3f2a9c41d07b5e68.salt")
    p.set_defaults(fn=cmd_audit_prove)
    p = sub.add_parser("head", help="export this party's ledger head, signed with its key",
                       description="Export this party's ledger head signed with its key, to give to the other "
                                   "parties and the auditor after each run.",
                       **examples("iq audit head --ledger police.ledger.jsonl --key keys/police.key "
                                  "-o heads/police.head.json"))
    p.add_argument("--ledger", required=True, type=Path, metavar="FILE",
                   help="the party's own ledger, e.g. --ledger police.ledger.jsonl")
    p.add_argument("--key", required=True, type=Path, metavar="FILE",
                   help="the party's private key (iq keygen), e.g. --key keys/police.key")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write the signed head here (default: print it), e.g. -o heads/police.head.json")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_audit_head)
    p = sub.add_parser("verify-heads", help="check ledgers against the heads the other parties or an auditor hold",
                       description="Check each ledger against the signed heads (iq audit head) and the heads the "
                                   "other parties recorded at each run's start: a cut-off, rewritten or omitted "
                                   "history shows.",
                       **examples("iq audit verify-heads police.ledger.jsonl ngo.ledger.jsonl helper.ledger.jsonl",
                                  "iq audit verify-heads ledgers/*.ledger.jsonl --heads heads/ --trust keys/"))
    p.add_argument("ledgers", nargs="+", metavar="[PARTY=]LEDGER", help=LEDGERS)
    p.add_argument("--heads", nargs="+", type=Path, default=[], metavar="HEAD",
                   help="signed heads (iq audit head), or folders of *.head.json, e.g. --heads heads/")
    p.add_argument("--trust", nargs="+", type=Path, default=[], metavar="KEYS",
                   help="trusted .pub.json files or folders (needed with --heads), e.g. --trust keys/")
    p.add_argument("--party", help="report only this party's ledger (the others are witnesses), "
                   "e.g. --party police")
    p.set_defaults(fn=cmd_audit_verify_heads)
    p = sub.add_parser("compare", help="compare the release entries of all parties' ledgers",
                       description="Compare the release entries of all parties' ledgers: every party must "
                                   "record the same releases.",
                       **examples("iq audit compare police.ledger.jsonl ngo.ledger.jsonl helper.ledger.jsonl"))
    p.add_argument("ledgers", nargs="+", metavar="[PARTY=]LEDGER", help=LEDGERS)
    p.set_defaults(fn=cmd_audit_compare)
    p = sub.add_parser("report", help="an audit report per dataset and period (HTML or Markdown)",
                       description="Write one audit report per dataset and period: every release and run that "
                                   "concerns it, approvals, DP budgets and the ledgers' verification.",
                       **examples("iq audit report --ledger ledgers/*.ledger.jsonl --catalog catalog.toml "
                                  "--format html --out reports/",
                                  "iq audit report --ledger police.ledger.jsonl --catalog catalog.toml "
                                  "--dataset police_victims --from 2026-01-01 --to 2026-06-30 --format md"))
    p.add_argument("--ledger", nargs="+", required=True, dest="ledgers", metavar="[PARTY=]LEDGER", help=LEDGERS)
    p.add_argument("--catalog", required=True, type=Path, metavar="FILE",
                   help="the catalog naming the datasets, e.g. --catalog catalog.toml")
    p.add_argument("--dataset", help="only this dataset (default: every dataset a ledger entry concerns), "
                   "e.g. --dataset police_victims")
    p.add_argument("--from", dest="start", type=_date, metavar="DATE",
                   help="first day of the period (UTC, inclusive), e.g. --from 2026-01-01")
    p.add_argument("--to", dest="end", type=_date, metavar="DATE",
                   help="last day of the period (UTC, inclusive), e.g. --to 2026-06-30")
    p.add_argument("--format", required=True, choices=["html", "md"],
                   help="HTML pages or Markdown files, e.g. --format html")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="folder for the reports (default: here), e.g. --out reports/")
    p.add_argument("--heads", nargs="+", type=Path, default=[], metavar="HEAD",
                   help="signed heads to check, e.g. --heads heads/")
    p.add_argument("--trust", nargs="+", type=Path, default=[], metavar="KEYS",
                   help="trusted keys for --heads, e.g. --trust keys/")
    p.set_defaults(fn=cmd_audit_report)


def ledger_args(values: list[str]) -> dict[str, Path]:
    """party -> ledger path from [PARTY=]PATH arguments; UsageError when one cannot be used."""
    out: dict[str, Path] = {}
    for v in values:
        party, sep, path = v.partition("=")
        path = Path(path if sep else v)
        if not path.is_file():
            raise UsageError(f"{path}: " + ("is a folder, not a ledger file" if path.is_dir()
                                            else "no such ledger file"))
        party = party if sep else heads.ledger_party(path)
        if not party:
            raise UsageError(f"cannot tell whose ledger {path} is (no run recorded, name not <party>.ledger.jsonl); "
                             f"write PARTY={path}")
        if party in out:
            raise UsageError(f"two ledgers of {party}: {out[party]} and {path}")
        out[party] = path
    return out


def signed_heads(paths: list[Path]) -> list[dict]:
    files = [f for p in paths for f in (sorted(p.glob("*.head.json")) if p.is_dir() else [p])]
    for f in files:  # JSON in words first (read_head would quote Python's message)
        reading(f, lambda p: json.loads(p.read_text(encoding="utf-8")))
    return [heads.read_head(f) for f in files]


def cmd_audit_head(args) -> int:
    try:
        _ledger_file(args.ledger)
        record = heads.signed_head(args.ledger, args.key, passphrase=_passphrase(args, args.key))
    except (ValueError, OSError) as exc:
        return _fail(exc, key=args.key)
    text = heads.head_text(record)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            return _fail(exc)
        print(f"{record['party']}'s head: {record['count']} entries, {record['entry_hash']} (signed); "
              f"written to {args.output}; give it to the other parties and the auditor")
    else:
        sys.stdout.write(text)
    return 0


def cmd_audit_verify_heads(args) -> int:
    ledgers = ledger_args(args.ledgers)
    if args.party and args.party not in ledgers:
        raise UsageError(f"no ledger of {args.party} among {', '.join(ledgers)}")
    try:
        signed = signed_heads(args.heads)
        if signed and not args.trust:
            raise UsageError("signed heads need --trust (the parties' public keys) to check their signatures")
        trusted = trusted_keys(args.trust) if args.trust else {}
    except (ValueError, OSError) as exc:
        return _fail(exc)
    results = heads.verify_heads(ledgers, signed, trusted)
    for h in signed:
        if h["party"] not in ledgers:
            print(f"note: a head of {h['party']} was given but not its ledger; not checked")
    shown = {args.party: results[args.party]} if args.party else results
    bad = 0
    for party, r in shown.items():
        n = len(ledger_mod.Ledger(ledgers[party]).readable_entries())
        if r["problems"]:
            bad += 1
            print(f"MISMATCH: {party}'s ledger {ledgers[party]} ({n} entries) - {len(r['problems'])} problem(s):")
            for p in r["problems"]:
                print(f"  - {p}")
        elif r["checked"]:
            print(f"OK: {party}'s ledger {ledgers[party]} ({n} entries) agrees with {r['checked']} head(s) held by "
                  f"{', '.join(r['sources'])}")
        else:
            print(f"OK: {party}'s ledger {ledgers[party]} ({n} entries) verifies, but no other party or auditor holds a "
                  f"head of it: a consistent rewrite would not be seen")
    return 1 if bad else 0


def cmd_audit_compare(args) -> int:
    ledgers = ledger_args(args.ledgers)
    broken = {p: ledger_mod.verify(path) for p, path in ledgers.items()}
    findings, n = compare_mod.compare(ledgers)
    findings = [f"{p}'s ledger {ledgers[p]} does not verify ({b[0]})" for p, b in broken.items() if b] + findings
    if findings:
        print(f"MISMATCH: {len(findings)} problem(s) across {n} release(s) in the ledgers of {', '.join(ledgers)}:")
        for f in findings:
            print(f"  - {f}")
        return 1
    print(f"OK: {n} release(s) agree across the ledgers of {', '.join(ledgers)}")
    return 0


def cmd_audit_report(args) -> int:
    from insightql.compiler.diagnostics import DiagnosticError
    from insightql.runtime.cli.common import load_catalog_file
    from insightql.runtime.governance import report

    ledgers = ledger_args(args.ledgers)
    if args.start and args.end and args.start > args.end:
        raise UsageError(f"--from {args.start} is after --to {args.end}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give the folder for the reports, e.g. --out reports/")
    try:
        catalog = load_catalog_file(args.catalog)
    except DiagnosticError as e:
        for d in e.diagnostics:
            print(d.render(), file=sys.stderr)
        return 2
    if args.dataset and args.dataset not in catalog.datasets:
        raise UsageError(f"the catalog {args.catalog} has no dataset {args.dataset!r}")
    try:
        signed = signed_heads(args.heads)
        trusted = trusted_keys(args.trust) if args.trust else {}
    except (ValueError, OSError) as exc:
        return _fail(exc)
    try:
        written, findings = report.write_reports(ledgers, catalog, args.out, fmt=args.format, dataset=args.dataset,
                                                 start=args.start, end=args.end, signed=signed, trusted=trusted)
    except OSError as exc:
        return _fail(exc)
    for path in written:
        print(f"written: {path}")
    if not written:
        print("no ledger entry concerns " + (f"dataset {args.dataset}" if args.dataset else "any dataset")
              + " in the period; nothing written")
    if findings:
        print(f"warning: {findings} verification problem(s) in the ledgers; see the reports' verification section")
        return 1
    return 0


def _ledger_file(path: Path) -> None:
    """ValueError unless `path` is a file (a ledger that does not exist is an input error, exit 2)."""
    if not path.is_file():
        raise ValueError(f"{path}: " + ("is a folder, not a ledger file" if path.is_dir() else "no such ledger file"))


def _published_head(text: str, given: str) -> dict | None:
    """The head --head gives: '<seq>:sha256:<hex>', its JSON (LEDGER.head), or a signed head (iq audit
    head; its signature is checked by verify-heads); None for a signed head of an empty ledger."""
    try:
        rec = json.loads(text) if text.strip().startswith("{") else None
        if isinstance(rec, dict) and rec.get("format") == heads.HEAD_FORMAT:
            count = int(rec["count"])
            return {"seq": count - 1, "entry_hash": str(rec["entry_hash"])} if count > 0 else None
        return ledger_mod.parse_head(text)
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"--head {given}: not a ledger head; give '<seq>:sha256:<hex>', its JSON or a file "
                         "holding it (LEDGER.head, or a signed head from iq audit head)") from None


def cmd_audit_verify(args) -> int:
    head = args.head
    try:
        _ledger_file(args.ledger)
        if head is not None and Path(head).is_file():
            head = reading(Path(head), Path.read_text, encoding="utf-8")
        if head is not None:
            head = _published_head(head, args.head)
        problems = ledger_mod.verify(args.ledger, head=head)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    if problems:
        print(f"LEDGER BROKEN: {args.ledger} - {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    h = ledger_mod.Ledger(args.ledger).head()
    checked = ("head checked" if args.head is not None or Path(str(args.ledger) + ".head").exists()
               else "no head to check")
    print(f"OK: {args.ledger} intact, {0 if h is None else h['seq'] + 1} entries ({checked})")
    if h is not None:
        print(f"  head: {h['seq']}:{h['entry_hash']}")
    return 0


def _released(outputs: list[dict]) -> str:
    parts = []
    for o in outputs:
        cols = ",".join(o.get("columns", []))
        cells = o.get("cells")
        parts.append(f"{o.get('name', '?')}[{cols}]" + (f" {cells} cells" if cells is not None else ""))
    return "; ".join(parts) or "-"


def _print_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


def _when(entry: dict) -> str:
    return entry["time"][:19].replace("T", " ")


def _plan_prefix(entry: dict) -> str:
    return (entry["plan_hash"] or "?").removeprefix("sha256:")[:12]


def cmd_audit_show(args) -> int:
    try:
        _ledger_file(args.ledger)
        problems = ledger_mod.verify(args.ledger)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    try:
        rows, runs = ledger_mod.releases(args.ledger), history.runs(args.ledger)
    except (ValueError, KeyError) as exc:
        why = ("an entry is not JSON" if isinstance(exc, json.JSONDecodeError) else
               f"an entry lacks its field {exc}" if isinstance(exc, KeyError) else str(exc))
        return _fail(f"{args.ledger}: cannot read its entries ({why}); `iq audit verify {args.ledger}` says where")
    if args.json:
        shown = [{**r, "description": history.describe(r)} for r in runs] if args.runs else rows
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    else:
        _show_tables([] if args.runs else rows, runs, releases=not args.runs)
    if problems:
        print(f"warning: ledger verification failed ({len(problems)} problem(s)); "
              f"run `iq audit verify {args.ledger}`", file=sys.stderr)
        return 1
    return 0


def _show_tables(rows: list[dict], runs: list[dict], releases: bool) -> None:
    if releases:
        table = [("TIME", "SEQ", "QUERY", "PLAN", "RECEIVERS", "RELEASED")]
        for r in rows:
            table.append((_when(r), str(r["seq"]), r["query"] or "?", _plan_prefix(r),
                          ",".join(r["receivers"]) or "-", _released(r["outputs"])))
        _print_table(table)
        print(f"{len(rows)} release(s)\n")
    table = [("TIME", "SEQ", "QUERY", "PLAN", "OUTCOME", "DETAIL")]
    for r in runs:
        table.append((_when(r), str(r["seq"]), r["query"] or "?", _plan_prefix(r), r["outcome"], history.describe(r)))
    _print_table(table)
    counts = {o: sum(r["outcome"] == o for r in runs) for o in ("finished", "failed", "refused", "killed")}
    print(f"{len(runs)} run(s): " + ", ".join(f"{n} {o}" for o, n in counts.items()))


def cmd_audit_prove(args) -> int:
    try:
        _ledger_file(args.ledger)
        problems = ledger_mod.verify(args.ledger)
        result = reading(args.result, lambda p: json.loads(p.read_text(encoding="utf-8")))
        salt = reading(args.salt, disclosure.read_salt)
    except (ValueError, OSError) as exc:
        return _fail(exc)
    if problems:
        print(f"NOT PROVEN: {args.ledger} does not verify ({problems[0]}); run `iq audit verify`")
        return 1
    entry = next((e for e in ledger_mod.Ledger(args.ledger).entries() if e.get("seq") == args.entry), None)
    if entry is None:
        return _fail(f"{args.ledger} has no entry {args.entry}")
    why = disclosure.prove(entry, result if isinstance(result, dict) else {}, salt)
    if why:
        print(f"NOT PROVEN: entry {args.entry}: {why}")
        return 1
    print(f"OK: {args.result} is the table released in entry {args.entry} "
          f"({entry['data'].get('query')}, {entry['plan_hash']})")
    return 0
