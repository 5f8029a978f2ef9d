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

from insightql.runtime.cli.common import error_words, examples, reading
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
    p = subparsers.add_parser(
        "keygen", help="create an Ed25519 approval key pair for a data owner",
        description="Create a data owner's approval key pair: PARTY.key (private, for iq approve) and "
                    "PARTY.pub.json (public, for every party's --trust folder). spec/governance.md 1.",
        **examples("iq keygen --identity police --out keys/",
                   "iq keygen --identity police --out keys/ --protect --expires 2027-06-30"))
    p.add_argument("--identity", required=True, metavar="PARTY",
                   help="party name of the owner, as in the catalog, e.g. --identity police")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for PARTY.key and PARTY.pub.json (created if missing), e.g. --out keys/")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing key pair, e.g. iq keygen --identity police --out keys/ --force")
    p.add_argument("--expires", type=_date, metavar="DATE",
                   help="last day (UTC) the key may sign; default: never, e.g. --expires 2027-06-30")
    p.add_argument("--protect", action="store_true",
                   help=f"encrypt the private key with a passphrase (prompted; or --passphrase-file / "
                        f"{PASSPHRASE_ENV}), e.g. iq keygen --identity police --out keys/ --protect")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_keygen)

    p = subparsers.add_parser(
        "approve", help="sign an approval of a compiled plan",
        description="Sign a data owner's approval of a compiled plan, with who signs, in which role and on "
                    "which legal basis; the parties check it before they read any data. spec/governance.md 1.",
        **examples("iq approve q.plan.json --key keys/police.key --signer 'A. Jansen' "
                   "--role 'data protection officer' --legal-basis 'GDPR art. 6(1)(e)'",
                   "iq approve q.plan.json --key keys/police.key --signer 'A. Jansen' --role DPO "
                   "--legal-basis 'GDPR art. 6(1)(e)' --runs 1 --expires 2027-01-31"))
    p.add_argument("plan", type=Path, metavar="PLAN", help="the compiled plan (iq compile), e.g. q.plan.json")
    p.add_argument("--key", required=True, type=Path, metavar="FILE",
                   help="the owner's private key from iq keygen, e.g. --key keys/police.key")
    p.add_argument("--expires", type=_date, metavar="DATE",
                   help="last day (UTC) the approval is valid; default: no end, e.g. --expires 2027-01-31")
    p.add_argument("--runs", type=_positive_int, metavar="N",
                   help="runs allowed, counted in each party's ledger; default: unlimited, e.g. --runs 1")
    p.add_argument("--signer", required=True, metavar="NAME",
                   help="name of the person signing for the owner, e.g. --signer 'A. Jansen'")
    p.add_argument("--role", required=True,
                   help="the signer's role in the organisation, e.g. --role 'data protection officer'")
    p.add_argument("--legal-basis", required=True, metavar="TEXT",
                   help="the legal basis relied on, e.g. --legal-basis 'GDPR art. 6(1)(e)'")
    p.add_argument("--purpose", help="the purpose relied on (default: the plan's @purpose), e.g. --purpose research")
    p.add_argument("--reference", help="case or agreement number, e.g. --reference DSA-2026-014")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="where to write the approval (default: PLAN.approval.<identity>.json next to the plan), "
                        "e.g. -o approvals/q.police.json")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_approve)

    p = subparsers.add_parser(
        "revoke", help="revoke an approval before it is used, or a key (its .pub.json)",
        description="Withdraw an approval (signed with the key that signed it), or revoke a key (given its "
                    ".pub.json, signed with that key). Give the file written to every party. "
                    "spec/governance.md 1.",
        **examples("iq revoke q.plan.approval.police.json --key keys/police.key --reason 'agreement ended'",
                   "iq revoke keys/police.pub.json --key keys/police.key --reason 'laptop stolen'"))
    p.add_argument("approval", type=Path, metavar="FILE",
                   help="the approval file to revoke, or the public key file of a key to revoke, "
                        "e.g. q.plan.approval.police.json or keys/police.pub.json")
    p.add_argument("--key", required=True, type=Path, metavar="FILE",
                   help="the private key that signed the approval (or the key revoked), e.g. --key keys/police.key")
    p.add_argument("--reason", required=True, metavar="TEXT",
                   help="why it is withdrawn, recorded in the revocation, e.g. --reason 'agreement ended'")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="where to write the revocation (default: APPROVAL.revocation.json next to the approval; "
                        "for a key: PARTY.key-revocation.json next to its public key), "
                        "e.g. -o revocations/q.police.json")
    _passphrase_option(p)
    p.set_defaults(fn=cmd_revoke)

    p = subparsers.add_parser(
        "verify", help="check a plan's hash and its owners' approvals",
        description="Check a plan's hash and its owners' approvals (signatures, expiry, revocations, run "
                    "limits) as a party does before it runs. Exit 0 approved, 1 not approved, 2 could not check.",
        **examples("iq verify q.plan.json --approvals q.plan.approval.*.json --trust keys/",
                   "iq verify q.plan.json --approvals q.plan.approval.police.json --trust keys/ "
                   "--ledger police.ledger.jsonl"))
    p.add_argument("plan", type=Path, metavar="PLAN", help="the compiled plan, e.g. q.plan.json")
    p.add_argument("--approvals", nargs="+", type=Path, default=[], metavar="APPROVAL",
                   help="approval files (and revocations), e.g. --approvals q.plan.approval.*.json")
    p.add_argument("--trust", nargs="+", type=Path, required=True, metavar="KEYS",
                   help="trusted .pub.json files or folders of them, e.g. --trust keys/")
    p.add_argument("--require", type=_csv, metavar="PARTIES",
                   help="comma-separated approvers (default: owners of the plan's datasets), e.g. --require police,ngo")
    p.add_argument("--revocations", nargs="+", type=Path, default=[], metavar="REVOCATION",
                   help="revocation files (default: *.revocation.json next to the approvals), "
                        "e.g. --revocations revocations/*.json")
    p.add_argument("--ledger", type=Path, metavar="FILE",
                   help="this party's ledger, to count runs against --runs limits, e.g. --ledger police.ledger.jsonl")
    p.add_argument("--today", type=_date, metavar="DATE",
                   help="evaluate expiry on this date (default: today, UTC), e.g. --today 2027-02-01")
    p.set_defaults(fn=cmd_verify)


def _passphrase_option(p) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE",
                   help=f"read the key's passphrase from the first line of FILE (else {PASSPHRASE_ENV}, else a "
                        "prompt), e.g. --passphrase-file ~/.iq/police.pass")


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


_PEM_ERRORS = ("Unable to load PEM", "Could not deserialize", "Valid PEM but")  # the cryptography library's


def _fail(message, key: Path | None = None) -> int:
    """`iq: ` and the message (an exception: in words, error_words; one from reading the private
    key `key`: that the file is not a key) on stderr; exit code 2."""
    if key is not None and (isinstance(message, UnicodeDecodeError) or isinstance(message, ValueError)
                            and str(message).startswith(_PEM_ERRORS)):
        message = f"{key}: not an InsightQL private key file, or a damaged one (iq keygen writes them)"
    print(f"iq: {message if isinstance(message, str) else error_words(message)}", file=sys.stderr)
    return 2


def _read_plan(path: Path) -> dict:
    plan = reading(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
    if not isinstance(plan, dict) or "hash" not in plan:
        raise ValueError(f"{path}: not a compiled plan (iq compile writes one)")
    return plan


def trusted_keys(paths: list[Path]):
    """load_trusted_keys, its errors in words (a file under a folder that is not JSON: the folder)."""
    try:
        return load_trusted_keys(paths)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(error_words(e, "a key file under --trust " + " ".join(map(str, paths)))) from None


def cmd_keygen(args) -> int:
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out} is a file; give the folder for the key pair, e.g. --out keys/")
    try:
        passphrase = _passphrase(args)
        private_path, public_path = generate_key(args.identity, args.out, overwrite=args.force, passphrase=passphrase,
                                                 expires=args.expires)
    except FileExistsError as exc:
        return _fail(f"{exc} (--force replaces the key pair)")
    except (ValueError, OSError) as exc:
        return _fail(exc)
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
        return _fail(exc, key=args.key)
    cond = record["conditions"]
    print(f"{record['approver']} approved {record['query_name']!r} ({record['plan_hash']})")
    print(f"  expires: {cond['expires'] or 'never'}   runs: {cond['runs'] or 'unlimited'}")
    print(f"  signed by {record['signer']['name']} ({record['signer']['role']}); legal basis: "
          f"{record['legal_basis']}; purpose: {record['purpose']}; reference: {record['reference'] or '-'}")
    print(f"  written to {out}")
    return 0


def cmd_revoke(args) -> int:
    try:
        approval = reading(args.approval, read_approval)
        if approval.get("format") == PUBLIC_KEY_FORMAT:
            return _revoke_key(args)
        record = revoke(approval, args.key, args.reason, passphrase=_passphrase(args, args.key))
        out = write_revocation(record, args.output or default_revocation_path(args.approval))
    except (ValueError, OSError) as exc:
        return _fail(exc, key=args.key)
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
        records = [reading(p, read_approval) for p in args.approvals]
        revocations = [reading(p, read_approval) for p in args.revocations or revocations_near(args.approvals)]
        trusted = trusted_keys(args.trust)
    except (ValueError, OSError) as exc:
        return _fail(exc)
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
