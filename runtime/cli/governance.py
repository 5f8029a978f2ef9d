"""`iq` subcommands for governance: keygen, approve, revoke, verify (the audit group: audit.py).

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

from insightql.runtime.governance.approvals import (ApprovalError, KeyPassphraseError, approve, default_approval_path,
                                                    generate_key, key_is_encrypted, load_trusted_keys, read_approval,
                                                    required_approvers, verify_approvals, write_approval)
from insightql.runtime.governance.keys import PUBLIC_KEY_FORMAT, default_key_revocation_path, revoke_key
from insightql.runtime.governance.ledger import verify as ledger_verify
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
    """Register keygen, approve, revoke and verify on the `iq` subparsers object."""
    p = subparsers.add_parser("keygen", help="create an Ed25519 approval key pair for a data owner")
    p.add_argument("--identity", required=True, help="party name of the owner, e.g. police")
    p.add_argument("--out", required=True, type=Path, help="directory for NAME.key and NAME.pub.json")
    p.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    p.add_argument("--expires", type=_date, help="last day the key may sign (YYYY-MM-DD; default: never)")
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

    p = subparsers.add_parser("revoke", help="revoke an approval before it is used, or a key (its .pub.json)")
    p.add_argument("approval", type=Path, help="the approval file to revoke, or the public key file of a key to revoke")
    p.add_argument("--key", required=True, type=Path, help="the private key that signed the approval (or the key revoked)")
    p.add_argument("--reason", required=True, help="why the approval is withdrawn")
    p.add_argument("-o", "--output", type=Path, help="default: APPROVAL.revocation.json next to the approval "
                   "(for a key: IDENTITY.key-revocation.json next to its public key)")
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
    print(f"iq: {message}", file=sys.stderr)
    return 2


def _read_plan(path: Path) -> dict:
    plan = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(plan, dict):
        raise ValueError(f"{path}: a plan must be a JSON object")
    return plan


def cmd_keygen(args) -> int:
    try:
        passphrase = _passphrase(args)
        private_path, public_path = generate_key(args.identity, args.out, overwrite=args.force, passphrase=passphrase,
                                                 expires=args.expires)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    protected = "passphrase-protected; " if passphrase else ""
    print(f"private key: {private_path}  ({protected}keep secret; only {args.identity} signs with it)")
    print(f"public key:  {public_path}  (give to every party)")
    if args.expires:
        print(f"expires:     {args.expires.isoformat()} (approvals signed with it are refused after that day)")
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
        if approval.get("format") == PUBLIC_KEY_FORMAT:
            return _revoke_key(args)
        record = revoke(approval, args.key, args.reason, passphrase=_passphrase(args, args.key))
        out = write_revocation(record, args.output or default_revocation_path(args.approval))
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print(f"{record['approver']} revoked its approval of {approval.get('query_name')!r} ({record['plan_hash']})")
    print(f"  written to {out}; give it to every party with the approvals (parties read *.revocation.json "
          "next to the approval files)")
    return 0


def _revoke_key(args) -> int:
    record = revoke_key(args.approval, args.key, args.reason, passphrase=_passphrase(args, args.key))
    out = write_approval(record, args.output or default_key_revocation_path(args.approval, record["identity"]))
    print(f"{record['identity']} revoked its key {record['public_key_fingerprint']}")
    print(f"  written to {out}; every party puts it in its trust folder (--trust), and then refuses every "
          "approval signed with that key")
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
    notes, broken = [], []
    if args.ledger is not None and not args.ledger.exists():
        notes.append(f"warning: ledger {args.ledger} does not exist; treated as a new ledger with no runs recorded "
                     "(check the path: run limits are counted in it)")
    elif args.ledger is not None and (bad := ledger_verify(args.ledger)):
        broken = [f"ledger {args.ledger} does not verify ({bad[0]}); run limits cannot be counted in it"]
    problems = broken + verify_approvals(plan, [r for r in records if not is_revocation(r)], trusted, required=required,
                                today=args.today, ledger=args.ledger,
                                revocations=revocations + [r for r in records if is_revocation(r)])
    name = plan.get("query", {}).get("name", "?")
    for n in notes:
        print(n)
    if problems:
        print(f"NOT APPROVED: plan {name!r} ({plan.get('hash')}) - {len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    who = sorted(required if required is not None else required_approvers(plan))
    print(f"OK: plan {name!r} ({plan['hash']}) approved by {', '.join(who) or 'nobody required'}")
    return 0
