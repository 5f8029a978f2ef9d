"""`iq` subcommands that run a plan under MPC: run (every party as a local process) and party
(one organisation's process); report renders a saved result (runtime/results/). MPyC is imported only when one of them runs (runtime/launch/party.py).
runtime/cli/__init__.py registers them with ``add_commands(subparsers)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from insightql.compiler.check.catalog import load_catalog

from insightql.runtime.cli.common import UsageError, compile_query, examples
from insightql.runtime.results import FORMATS


def _data_map(items: list[str], plan: dict) -> dict[str, str]:
    """--data accepts DATASET=FILE or PARTY=FILE (a party that owns one dataset in the plan)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--data {item}: write NAME=FILE (a dataset or party name)")
        key, path = item.split("=", 1)
        if key in plan["datasets"]:
            out[key] = path
            continue
        owned = [d for d, v in plan["datasets"].items() if v["owner"] == key]
        if len(owned) == 1:
            out[owned[0]] = path
        elif key in plan["parties"] or key in plan.get("output_parties", []):
            print(f"iq: note: party {key} holds no dataset this query reads; {path} is not used", file=sys.stderr)
        elif not owned:
            raise UsageError(f"--data {key}=...: {key} is neither a dataset of this query nor a party that owns one")
        else:
            raise UsageError(f"--data {key}=...: party {key} owns {', '.join(owned)}; name the dataset instead")
    return out


def _csv_rows(data: dict[str, str]) -> dict[str, int]:
    """Line counts of the CSV files `iq run` was given (its own machine holds them all): rows for the
    time estimate, at most the header too many; other sources keep their max_rows bound."""
    out = {}
    for d, path in data.items():
        if str(path).lower().endswith(".csv"):
            try:
                with open(path, "rb") as fh:
                    out[d] = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
            except OSError:
                pass
    return out


def _output_format(args) -> str | None:
    """The result format asked for (--format, else --out's extension), checked before anything runs;
    None: only the terminal table."""
    from insightql.runtime.results import format_of
    if args.out is None and args.format is None:
        return None
    try:
        fmt = format_of(args.out, args.format)
    except ValueError as e:
        raise UsageError(str(e))
    if fmt == "parquet" and args.out is None:
        raise UsageError("--format parquet writes a file: add --out result.parquet")
    return fmt


def _emit(table, plan: dict, args, fmt: str | None, terminal: bool) -> None:
    """The terminal table (unless a format goes to stdout instead), and the --out file. Written from
    the plan and the released table only, so every receiver writes the same (runtime/results/)."""
    from insightql.runtime.results import render_result, write_result
    from insightql.runtime.results.document import result_meta
    if fmt is not None and args.out is None:
        sys.stdout.write(render_result(table, result_meta(plan), fmt))
        return
    if terminal:
        print(table.render())
    if args.out:
        write_result(table, plan, args.out, fmt)


def cmd_run(args) -> int:
    from insightql.runtime.launch.launcher import LaunchError, launch_local

    fmt = _output_format(args)
    ledger_dir = Path(args.ledger_dir) if args.ledger_dir else None
    ledgers = sorted(ledger_dir.glob("*.ledger.jsonl")) if ledger_dir and ledger_dir.is_dir() else []
    res, catalog, cat_path = compile_query(Path(args.query), args.catalog, ledgers)
    if res.plan is None:
        return 1
    data = _data_map(args.data, res.plan)
    if args.timeout is None:  # from the estimate (compiler/review/timing.py) with the files' row counts
        from insightql.compiler.review.timing import catalog_rows, default_time_limit, estimate_seconds
        rows = {**catalog_rows(res.plan, catalog), **_csv_rows(data)}
        est = estimate_seconds(res.plan, rows)
        args.timeout = default_time_limit(est)
        if not args.quiet:
            from insightql.compiler.review.timing import human, stages_text
            print(f"iq: {len(res.plan['parties'])} computing parties ({', '.join(res.plan['parties'])}); estimated "
                  f"~{human(est['total'])} on a quiet machine ({stages_text(est)}); time limit {human(args.timeout)}",
                  file=sys.stderr)
    gov_args = (["--approvals", *args.approvals] if args.approvals else []) + \
        (["--trust", *args.trust] if args.trust else [])
    try:
        table, _ = launch_local(res.plan, cat_path, data, quiet=args.quiet, timeout=args.timeout, tls=args.tls,
                                extra_args=gov_args, ledger_dir=ledger_dir)
    except LaunchError as e:
        print(f"iq: {e}", file=sys.stderr)
        return e.code  # 3 when a party's data is bad, 7 when one refused the plan (spec/runtime.md)
    _emit(table, res.plan, args, fmt, terminal=True)
    return 0


def cmd_party(args) -> int:
    from insightql.runtime.governance.party_checks import GovernanceOptions, load_plan_unchecked
    from insightql.runtime.launch.parties import load_parties
    from insightql.runtime.launch.party import run_party

    plan = load_plan_unchecked(Path(args.plan).read_text(encoding="utf-8"))  # hash: checked by governance
    fmt = _output_format(args)
    gov = GovernanceOptions(approvals=args.approvals, trust=args.trust, ledger=args.ledger, source=args.source)
    catalog = load_catalog(args.catalog)
    data = {}
    for item in args.data or []:
        key, _, path = item.rpartition("=")
        data[key or "*"] = path
    config = load_parties(args.parties, me=args.party)
    try:
        code, table, progress = run_party(plan, args.party, catalog, data, config, quiet=args.quiet,
                                          timeout=args.timeout, connect_timeout=args.connect_timeout,
                                          allow_fewer=args.allow_fewer_parties, governance=gov,
                                          plan_path=args.plan)
    except Exception as e:  # connection timeouts and the like: one clear line, no traceback
        if type(e).__name__ in ("ConnectTimeoutError", "PortInUseError", "PartiesError"):
            print(f"error: [{args.party}] {e}", file=sys.stderr)
            return 1
        raise
    if code == 0 and not args.quiet:
        print(f"[{args.party}] timings: {progress.summary()}", file=sys.stderr)
    if table is not None:
        _emit(table, plan, args, fmt, terminal=args.out is None)
    return code


def cmd_report(args) -> int:
    """Render a saved result (JSON or Parquet, with the plan's meta) as a page, or convert it."""
    from insightql.runtime.results import EXTENSIONS, read_result, render_result
    fmt = args.format or (EXTENSIONS.get(Path(args.out).suffix.lower()) if args.out else None) or "html"
    try:
        table, meta = read_result(args.result)
    except (ValueError, KeyError) as e:
        raise UsageError(f"{args.result}: {e}")
    if not meta:
        print(f"iq: note: {args.result} holds no plan metadata (written before results carried it); it has "
              "the table only", file=sys.stderr)
    content = render_result(table, meta, fmt)
    if args.out is None:
        if isinstance(content, bytes):
            raise UsageError("--format parquet writes a file: add -o result.parquet")
        sys.stdout.write(content)
    elif isinstance(content, bytes):
        Path(args.out).write_bytes(content)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
    return 0


def add_commands(sub) -> None:
    """Register run and party on the `iq` subparsers object."""
    r = sub.add_parser("run", help="compile and run a query with every party as a local process",
                       **examples("iq run examples/victims_by_exploitation.iq "
                                  "--data police=examples/data/police_victims.csv "
                                  "--data ngo=examples/data/ngo_clients.csv",
                                  "iq run q.iq --catalog catalog.toml --data police=police.parquet --out result.json "
                                  "--quiet"))
    r.add_argument("query", metavar="QUERY", help="the .iq file to compile and run, e.g. examples/victims_by_exploitation.iq")
    r.add_argument("--catalog", metavar="FILE", help="the catalog (default: catalog.toml in the query's folder or a parent), "
                   "e.g. --catalog examples/catalog.toml")
    r.add_argument("--data", action="append", default=[], metavar="DATASET=SOURCE",
                   help="one dataset's data, repeated per dataset: a .csv, .parquet or .xlsx file, or "
                        "postgresql:TABLE / postgresql:QUERY.sql (spec/runtime.md), e.g. "
                        "--data police_victims=examples/data/police_victims.csv (PARTY=FILE also works)")
    r.add_argument("--out", help="also write the result to a file: .csv, .json, .parquet or .html (spec/results.md), e.g. --out result.csv")
    r.add_argument("--format", choices=FORMATS, help="the result file's format (default: by --out's extension); "
                   "without --out the result goes to stdout in this format instead of the terminal table, "
                   "e.g. --format json")
    r.add_argument("--quiet", action="store_true",
                   help="print only the result and errors: no stage lines, no MPC library log, e.g. iq run q.iq --quiet")
    r.add_argument("--timeout", type=float, default=None,
                   help="seconds before every party is stopped (default: ten times the estimated run time, "
                        "at least 900), e.g. --timeout 120")
    r.add_argument("--tls", action="store_true", help="mutual TLS between the parties, with a throw-away test CA "
                   "(across hosts use iq certs and iq party), e.g. iq run q.iq --tls")
    r.add_argument("--approvals", action="extend", nargs="+", default=[], metavar="FILE",
                   help="approval files, passed to every party, e.g. --approvals approvals/*.json")
    r.add_argument("--trust", action="extend", nargs="+", default=[], metavar="KEYS",
                   help="trusted .pub.json files or folders, passed to every party, e.g. --trust keys/")
    r.add_argument("--ledger-dir", help="folder of the parties' ledgers (<party>.ledger.jsonl); also the "
                   "differencing guard's history. Default: a temporary folder (no history), e.g. --ledger-dir ledgers/")
    r.set_defaults(fn=cmd_run)

    pp = sub.add_parser("party", help="run one party of a plan",
                        **examples("iq party --plan q.plan.json --party ngo --data ngo.csv --parties parties.toml "
                                   "--catalog catalog.toml",
                                   "iq party --plan q.plan.json --party police --data police.csv "
                                   "--parties parties.toml --catalog catalog.toml "
                                   "--approvals q.plan.approval.*.json --trust keys/"))
    pp.add_argument("--plan", required=True, metavar="FILE", help="the compiled plan this party runs "
                    "(iq compile), e.g. --plan q.plan.json")
    pp.add_argument("--party", required=True, metavar="NAME", help="this party's name in the catalog, e.g. --party police")
    pp.add_argument("--data", action="append", metavar="SOURCE", help="FILE (or postgresql:TABLE) when the party owns one "
                    "dataset in the catalog, else DATASET=FILE, e.g. --data police_victims=police.csv")
    pp.add_argument("--parties", required=True, metavar="FILE", help="parties file (names, host:port, TLS), "
                    "e.g. --parties parties.toml (spec/deployment.md)")
    pp.add_argument("--catalog", required=True, metavar="FILE", help="this party's copy of the catalog, which it "
                    "compiles the query with itself, e.g. --catalog catalog.toml")
    pp.add_argument("--out", help="write the received result to a file: .csv, .json, .parquet or .html, "
                    "e.g. --out result.csv")
    pp.add_argument("--format", choices=FORMATS, help="the result file's format (default: by --out's extension), "
                    "e.g. --format json")
    pp.add_argument("--quiet", action="store_true", help="print only the result and errors (no MPC library log), e.g. iq party ... --quiet")
    pp.add_argument("--timeout", type=float, default=900,
                    help="seconds before this party stops the run (default 900), e.g. --timeout 1800")
    pp.add_argument("--connect-timeout", type=float, default=60,
                    help="seconds to wait for every peer to connect (default 60), e.g. --connect-timeout 300")
    pp.add_argument("--approvals", action="extend", nargs="+", default=[], metavar="FILE",
                    help="approval files of the plan (spec/governance.md), e.g. --approvals approvals/*.json")
    pp.add_argument("--trust", action="extend", nargs="+", default=[], metavar="KEYS",
                    help="trusted .pub.json files or folders of them, e.g. --trust keys/")
    pp.add_argument("--ledger", help="this party's ledger (default: <party>.ledger.jsonl next to its data), "
                    "e.g. --ledger /srv/iq/police.ledger.jsonl")
    pp.add_argument("--source", help="the .iq source this party's owner reviewed; recompiled with its catalog "
                    "(default: the source inside the plan), e.g. --source q.iq")
    pp.add_argument("--allow-fewer-parties", action="store_true",
                    help="tests only: run with fewer than 3 computing parties (no privacy at t = 0), "
                    "e.g. in a two-party unit test")
    pp.set_defaults(fn=cmd_party)

    rp = sub.add_parser("report", help="render a saved result (.json or .parquet) as an HTML page, or convert it",
                        **examples("iq report result.json -o briefing.html", "iq report result.parquet --format csv"))
    rp.add_argument("result", metavar="RESULT", help="a result iq run or iq party wrote as .json or .parquet, "
                    "e.g. result.json")
    rp.add_argument("-o", "--out", help="the file to write (default: stdout), e.g. -o briefing.html")
    rp.add_argument("--format", choices=FORMATS, help="default: html, or by --out's extension, e.g. --format csv")
    rp.set_defaults(fn=cmd_report)
