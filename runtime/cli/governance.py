"""`iq` subcommands for governance: keygen, approve, revoke, verify, audit verify|show|prove.

runtime/cli/__init__.py calls ``add_commands(subparsers)``; every handler takes the parsed argparse
namespace and returns an exit code: 0 ok, 1 problems found, 2 the command could not run
(unreadable file, bad argument, a missing or wrong key passphrase).

A passphrase never comes from the command line: `--passphrase-file FILE` (first line), else the
environment variable IQ_KEY_PASSPHRASE (for CI), else a getpass prompt on a terminal.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import date
from pathlib import Path

from insightql.runtime.governance import disclosure, history
from insightql.runtime.governance import ledger as ledger_mod
from insightql.runtime.governance.approvals import (ApprovalError, KeyPassphraseError, approve, default_approval_path,
                                                    generate_key, key_is_encrypted, load_trusted_keys, read_approval,
                                                    required_approvers, verify_approvals, write_approval)
from insightql.runtime.governance.revocations import (default_revocation_path, is_revocation, revocations_near, revoke,
                                                      write_revocation)

PASSPHRASE_ENV = "IQ_KEY_PASSPHRASE"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return n


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_commands(subparsers) -> None:
    """Register keygen, approve, verify and audit on the `iq` subparsers object."""
    p = subparsers.add_parser("keygen", help="create an Ed25519 approval key pair for a data owner")
    p.add_argument("--identity", required=True, help="party name of the owner, e.g. police")
    p.add_argument("--out", required=True, type=Path, help="directory for NAME.key and NAME.pub.json")
    p.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    p.add_argument("--protect", action="store_true",
                   help=f"encrypt the private key with a passphrase (prompted; or --passphrase-file / {PASSPHRASE_ENV})")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_keygen)

    p = subparsers.add_parser("approve", help="sign an approval of a compiled plan")
    p.add_argument("plan", type=Path, help="compiled plan (JSON)")
    p.add_argument("--key", required=True, type=Path, help="private key file from `iq keygen`")
    p.add_argument("--expires", type=_date, help="last day the approval is valid (YYYY-MM-DD)")
    p.add_argument("--runs", type=_positive_int, help="number of runs allowed per party")
    p.add_argument("--signer", required=True, help="name of the person signing for the owner")
    p.add_argument("--role", required=True, help="the signer's role in the organisation")
    p.add_argument("--legal-basis", required=True, help="legal basis relied on, e.g. 'GDPR art. 6(1)(e)'")
    p.add_argument("--purpose", help="purpose relied on (default: the plan's @purpose)")
    p.add_argument("--reference", help="case or agreement number")
    p.add_argument("-o", "--output", type=Path, help="default: PLAN.approval.<identity>.json next to the plan")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_approve)

    p = subparsers.add_parser("revoke", help="revoke an approval before it is used")
    p.add_argument("approval", type=Path, help="the approval file to revoke")
    p.add_argument("--key", required=True, type=Path, help="the private key that signed the approval")
    p.add_argument("--reason", required=True, help="why the approval is withdrawn")
    p.add_argument("-o", "--output", type=Path, help="default: APPROVAL.revocation.json next to the approval")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_revoke)

    p = subparsers.add_parser("verify", help="check a plan's hash and its owners' approvals")
    p.add_argument("plan", type=Path, help="compiled plan (JSON)")
    p.add_argument("--approvals", nargs="+", type=Path, default=[], metavar="APPROVAL", help="approval files")
    p.add_argument("--trust", nargs="+", type=Path, required=True, metavar="KEYS",
                   help="trusted .pub.json files or directories of them")
    p.add_argument("--require", type=_csv, help="comma-separated approvers (default: owners of the plan's datasets)")
    p.add_argument("--revocations", nargs="+", type=Path, default=[], metavar="REVOCATION",
                   help="revocation files (default: *.revocation.json next to the approvals)")
    p.add_argument("--ledger", type=Path, help="this party's ledger, to enforce run limits")
    p.add_argument("--today", type=_date, help="evaluate expiry on this date (default: today, UTC)")
    p.set_defaults(fn=cmd_verify)

    audit = subparsers.add_parser("audit", help="inspect a party's ledger")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="{verify,show}", required=True)
    p = audit_sub.add_parser("verify", help="check the hash chain of a ledger")
    p.add_argument("ledger", type=Path)
    p.add_argument("--head", help="published head: '<seq>:sha256:<hex>', its JSON, or a file holding it")
    p.set_defaults(fn=cmd_audit_verify)
    p = audit_sub.add_parser("show", help="what was released and to whom, and every run (refused, failed, killed)")
    p.add_argument("ledger", type=Path)
    p.add_argument("--json", action="store_true", help="print the releases (with --runs: the runs) as JSON")
    p.add_argument("--runs", action="store_true", help="only the runs: started, finished, failed, refused, killed")
    p.set_defaults(fn=cmd_audit_show)
    p = audit_sub.add_parser("prove", help="check a result file against a release's commitment")
    p.add_argument("ledger", type=Path)
    p.add_argument("--entry", required=True, type=int, help="seq of the release entry")
    p.add_argument("--result", required=True, type=Path, help="the result file (JSON) the receiver wrote")
    p.add_argument("--salt", required=True, type=Path, help="the release's salt file (LEDGER.salts/<salt_id>.salt)")
    p.set_defaults(fn=cmd_audit_prove)


def _passphrase_option(p) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE",
                   help=f"read the key's passphrase from FILE (else {PASSPHRASE_ENV}, else a prompt)")


def _passphrase(args, key: Path | None = None) -> bytes | None:
    """The passphrase for ``key`` (None: not encrypted); for keygen (key None) only if asked for."""
    if args.passphrase_file:
        lines = args.passphrase_file.read_text(encoding="utf-8").splitlines()
        return (lines[0] if lines else "").encode("utf-8")
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode("utf-8")
    if key is None and not args.protect or key is not None and not key_is_encrypted(key):
        return None
    if not sys.stdin.isatty():
        raise KeyPassphraseError(f"{key or 'the new key'} needs a passphrase: give --passphrase-file FILE or set "
                                 f"{PASSPHRASE_ENV} (no terminal to prompt on)")
    first = getpass.getpass(f"passphrase for {key or 'the new key'}: ").encode("utf-8")
    if key is None and getpass.getpass("repeat the passphrase: ").encode("utf-8") != first:
        raise KeyPassphraseError("the two passphrases differ")
    return first


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _read_plan(path: Path) -> dict:
    plan = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(plan, dict):
        raise ValueError(f"{path}: a plan must be a JSON object")
    return plan


def cmd_keygen(args) -> int:
    try:
        passphrase = _passphrase(args)
        private_path, public_path = generate_key(args.identity, args.out, overwrite=args.force, passphrase=passphrase)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    protected = "passphrase-protected; " if passphrase else ""
    print(f"private key: {private_path}  ({protected}keep secret; only {args.identity} signs with it)")
    print(f"public key:  {public_path}  (give to every party)")
    return 0


def cmd_approve(args) -> int:
    try:
        plan = _read_plan(args.plan)
        record = approve(plan, args.key, expires=args.expires, runs=args.runs, passphrase=_passphrase(args, args.key),
                         signer={"name": args.signer, "role": args.role}, legal_basis=args.legal_basis,
                         purpose=args.purpose, reference=args.reference)
        out = args.output or default_approval_path(args.plan, record["approver"])
        write_approval(record, out)
    except ApprovalError as exc:
        for p in exc.problems:
            print(f"refused: {p}")
        return 1
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    cond = record["conditions"]
    print(f"{record['approver']} approved {record['query_name']!r} ({record['plan_hash']})")
    print(f"  expires: {cond['expires'] or 'never'}   runs: {cond['runs'] or 'unlimited'}")
    print(f"  signed by {record['signer']['name']} ({record['signer']['role']}); legal basis: "
          f"{record['legal_basis']}; purpose: {record['purpose']}; reference: {record['reference'] or '-'}")
    print(f"  written to {out}")
    return 0


def cmd_revoke(args) -> int:
    try:
        approval = read_approval(args.approval)
        record = revoke(approval, args.key, args.reason, passphrase=_passphrase(args, args.key))
        out = write_revocation(record, args.output or default_revocation_path(args.approval))
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print(f"{record['approver']} revoked its approval of {approval.get('query_name')!r} ({record['plan_hash']})")
    print(f"  written to {out}; give it to every party with the approvals (parties read *.revocation.json "
          "next to the approval files)")
    return 0


def cmd_verify(args) -> int:
    try:
        plan = _read_plan(args.plan)
        records = [read_approval(p) for p in args.approvals]
        revocations = [read_approval(p) for p in args.revocations or revocations_near(args.approvals)]
        trusted = load_trusted_keys(args.trust)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    required = set(args.require) if args.require else None
    problems = verify_approvals(plan, [r for r in records if not is_revocation(r)], trusted, required=required,
                                today=args.today, ledger=args.ledger,
                                revocations=revocations + [r for r in records if is_revocation(r)])
    name = plan.get("query", {}).get("name", "?")
    if problems:
        print(f"NOT APPROVED: plan {name!r} ({plan.get('hash')}) - {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    who = sorted(required if required is not None else required_approvers(plan))
    print(f"OK: plan {name!r} ({plan['hash']}) approved by {', '.join(who) or 'nobody required'}")
    return 0


def cmd_audit_verify(args) -> int:
    head = args.head
    if head is not None and Path(head).is_file():
        head = Path(head).read_text(encoding="utf-8")
    try:
        problems = ledger_mod.verify(args.ledger, head=head)
    except OSError as exc:
        return _fail(str(exc))
    if problems:
        print(f"LEDGER BROKEN: {args.ledger} - {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    h = ledger_mod.Ledger(args.ledger).head()
    checked = "head checked" if head is not None or Path(str(args.ledger) + ".head").exists() else "no head to check"
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
    if not args.ledger.exists():
        return _fail(f"{args.ledger}: ledger file does not exist")
    problems = ledger_mod.verify(args.ledger)
    try:
        rows, runs = ledger_mod.releases(args.ledger), history.runs(args.ledger)
    except (ValueError, KeyError) as exc:
        return _fail(f"{args.ledger}: cannot read entries ({exc})")
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
        problems = ledger_mod.verify(args.ledger)
        entry = next((e for e in ledger_mod.Ledger(args.ledger).entries() if e.get("seq") == args.entry), None)
        result = json.loads(args.result.read_text(encoding="utf-8"))
        salt = disclosure.read_salt(args.salt)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    if problems:
        print(f"NOT PROVEN: {args.ledger} does not verify ({problems[0]}); run `iq audit verify`")
        return 1
    if entry is None:
        return _fail(f"{args.ledger} has no entry {args.entry}")
    why = disclosure.prove(entry, result if isinstance(result, dict) else {}, salt)
    if why:
        print(f"NOT PROVEN: entry {args.entry}: {why}")
        return 1
    print(f"OK: {args.result} is the table released in entry {args.entry} "
          f"({entry['data'].get('query')}, {entry['plan_hash']})")
    return 0
