"""`iq` subcommands for governance: keygen, approve, verify, audit verify|show.

runtime/cli/__init__.py calls ``add_commands(subparsers)``; every handler takes the parsed argparse
namespace and returns an exit code: 0 ok, 1 problems found, 2 the command could not run
(unreadable file, bad argument).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from insightql.runtime.governance import ledger as ledger_mod
from insightql.runtime.governance.approvals import (ApprovalError, approve, default_approval_path, generate_key, load_trusted_keys,
                        read_approval, required_approvers, verify_approvals, write_approval)


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
    p.set_defaults(fn=cmd_keygen)

    p = subparsers.add_parser("approve", help="sign an approval of a compiled plan")
    p.add_argument("plan", type=Path, help="compiled plan (JSON)")
    p.add_argument("--key", required=True, type=Path, help="private key file from `iq keygen`")
    p.add_argument("--expires", type=_date, help="last day the approval is valid (YYYY-MM-DD)")
    p.add_argument("--runs", type=_positive_int, help="number of runs allowed per party")
    p.add_argument("-o", "--output", type=Path, help="default: PLAN.approval.<identity>.json next to the plan")
    p.set_defaults(fn=cmd_approve)

    p = subparsers.add_parser("verify", help="check a plan's hash and its owners' approvals")
    p.add_argument("plan", type=Path, help="compiled plan (JSON)")
    p.add_argument("--approvals", nargs="+", type=Path, default=[], metavar="APPROVAL", help="approval files")
    p.add_argument("--trust", nargs="+", type=Path, required=True, metavar="KEYS",
                   help="trusted .pub.json files or directories of them")
    p.add_argument("--require", type=_csv, help="comma-separated approvers (default: owners of the plan's datasets)")
    p.add_argument("--ledger", type=Path, help="this party's ledger, to enforce run limits")
    p.add_argument("--today", type=_date, help="evaluate expiry on this date (default: today, UTC)")
    p.set_defaults(fn=cmd_verify)

    audit = subparsers.add_parser("audit", help="inspect a party's ledger")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="{verify,show}", required=True)
    p = audit_sub.add_parser("verify", help="check the hash chain of a ledger")
    p.add_argument("ledger", type=Path)
    p.add_argument("--head", help="published head: '<seq>:sha256:<hex>', its JSON, or a file holding it")
    p.set_defaults(fn=cmd_audit_verify)
    p = audit_sub.add_parser("show", help="table of what was released and to whom")
    p.add_argument("ledger", type=Path)
    p.add_argument("--json", action="store_true", help="print the releases as JSON")
    p.set_defaults(fn=cmd_audit_show)


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
        private_path, public_path = generate_key(args.identity, args.out, overwrite=args.force)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print(f"private key: {private_path}  (keep secret; only {args.identity} signs with it)")
    print(f"public key:  {public_path}  (give to every party)")
    return 0


def cmd_approve(args) -> int:
    try:
        plan = _read_plan(args.plan)
        record = approve(plan, args.key, expires=args.expires, runs=args.runs)
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
    print(f"  written to {out}")
    return 0


def cmd_verify(args) -> int:
    try:
        plan = _read_plan(args.plan)
        approvals = [read_approval(p) for p in args.approvals]
        trusted = load_trusted_keys(args.trust)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    required = set(args.require) if args.require else None
    problems = verify_approvals(plan, approvals, trusted, required=required, today=args.today,
                                ledger=args.ledger)
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


def cmd_audit_show(args) -> int:
    if not args.ledger.exists():
        return _fail(f"{args.ledger}: ledger file does not exist")
    problems = ledger_mod.verify(args.ledger)
    try:
        rows = ledger_mod.releases(args.ledger)
    except (ValueError, KeyError) as exc:
        return _fail(f"{args.ledger}: cannot read entries ({exc})")
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        table = [("TIME", "SEQ", "QUERY", "PLAN", "RECEIVERS", "RELEASED")]
        for r in rows:
            table.append((r["time"][:19].replace("T", " "), str(r["seq"]), r["query"] or "?",
                          (r["plan_hash"] or "?").removeprefix("sha256:")[:12],
                          ",".join(r["receivers"]) or "-", _released(r["outputs"])))
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
        for row in table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        print(f"{len(rows)} release(s)")
    if problems:
        print(f"warning: ledger verification failed ({len(problems)} problem(s)); "
              f"run `iq audit verify {args.ledger}`", file=sys.stderr)
        return 1
    return 0
