"""The `iq` command line. Exit codes: 0 clean, 1 findings or failed run, 2 usage or internal error.

Commands that only compile (`check`, `fmt`, `compile`, `explain`) never import MPyC, so they
stay fast enough for pre-commit hooks and CI.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from insightql.compiler import __version__
from insightql.compiler.catalog import find_catalog, load_catalog
from insightql.compiler.diagnostics import (Diagnostic, DiagnosticError, render_github, render_json,
                                            render_sarif)


class UsageError(Exception):
    pass


def _catalog_for(path: Path, explicit: str | None):
    cat_path = Path(explicit) if explicit else find_catalog(path)
    if cat_path is None:
        raise UsageError(f"no catalog.toml found in {path} or a parent folder; pass --catalog FILE")
    return load_catalog(cat_path), cat_path


def _iq_files(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.rglob("*.iq"))
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or folder")
    return out


def cmd_check(args) -> int:
    from insightql.compiler.pipeline import check_source, compile_source

    diags: list[Diagnostic] = []
    files = _iq_files(args.paths)
    if not files:
        raise UsageError("no .iq files found")
    explained = []
    for f in files:
        catalog, _ = _catalog_for(f, args.catalog)
        fn = compile_source if args.explain else check_source
        res = fn(f.read_text(encoding="utf-8"), str(f), catalog)
        diags += res.diagnostics
        if args.explain and res.plan is not None:
            from insightql.compiler.explain import explain_text
            explained.append(explain_text(res.plan))
    if args.format == "json":
        print(render_json(diags))
    elif args.format == "sarif":
        print(render_sarif(diags, __version__))
    elif args.format == "github":
        if diags:
            print(render_github(diags))
    else:
        for d in diags:
            print(d.render())
        for e in explained:
            print(e)
        n_err = sum(1 for d in diags if d.severity.value == "error")
        print(f"{len(files)} file(s) checked, {n_err} error(s)", file=sys.stderr)
    return 1 if diags else 0


def cmd_fmt(args) -> int:
    from insightql.compiler.formatter import format_query
    from insightql.compiler.syntax import parse

    status = 0
    for f in _iq_files(args.paths):
        text = f.read_text(encoding="utf-8")
        try:
            out = format_query(parse(text, str(f)))
        except DiagnosticError as e:
            print(str(e), file=sys.stderr)
            status = 1
            continue
        if args.write:
            if out != text:
                f.write_text(out, encoding="utf-8")
        elif args.check:
            if out != text:
                print(f"{f}: not in canonical form (run `iq fmt --write`)")
                status = 1
        else:
            sys.stdout.write(out)
    return status


def _compile(path: Path, catalog_arg, ledgers: list[Path] = ()):
    from insightql.compiler.pipeline import compile_source

    catalog, cat_path = _catalog_for(path, catalog_arg)
    earlier = None
    if ledgers:  # differencing guard: compare with every release these ledgers record
        from .governance import earlier_releases
        try:
            earlier = earlier_releases(ledgers)
        except ValueError as e:
            raise UsageError(str(e))
    res = compile_source(path.read_text(encoding="utf-8"), str(path), catalog, earlier=earlier)
    for d in res.diagnostics:
        print(d.render(), file=sys.stderr)
    return res, catalog, cat_path


def cmd_compile(args) -> int:
    from insightql.compiler.plan_io import dump_plan

    res, _, _ = _compile(Path(args.query), args.catalog, args.ledger)
    if res.plan is None:
        return 1
    if res.plan.get("guard"):
        n = sum(len(e["from"]) for e in res.plan["guard"])
        print(f"differencing guard: compared with {n} earlier release(s) from the ledger", file=sys.stderr)
    text = dump_plan(res.plan)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({res.plan['hash']})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _load_plan_or_compile(target: str, catalog_arg):
    from insightql.compiler.plan_io import load_plan

    p = Path(target)
    if p.suffix == ".json":
        return load_plan(p.read_text(encoding="utf-8"))
    res, _, _ = _compile(p, catalog_arg)
    return res.plan


def cmd_explain(args) -> int:
    from insightql.compiler import explain

    plan = _load_plan_or_compile(args.target, args.catalog)
    if plan is None:
        return 1
    render = {"text": explain.explain_text, "dot": explain.explain_dot, "html": explain.explain_html}[args.format]
    out = render(plan)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        print(out)
    return 0


def cmd_diff(args) -> int:
    from insightql.compiler.explain import diff_plans
    from insightql.compiler.plan_io import load_plan

    a, b = (load_plan(Path(p).read_text(encoding="utf-8")) for p in (args.a, args.b))
    text = diff_plans(a, b)
    print(text)
    return 0 if a["hash"] == b["hash"] else 1


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
        elif key in plan["parties"]:
            print(f"iq: note: party {key} holds no dataset this query reads; {path} is not used", file=sys.stderr)
        elif not owned:
            raise UsageError(f"--data {key}=...: {key} is neither a dataset of this query nor a party that owns one")
        else:
            raise UsageError(f"--data {key}=...: party {key} owns {', '.join(owned)}; name the dataset instead")
    return out


def _write_result(table, out: str | None):
    if out is None:
        return
    text = table.to_json() if out.endswith(".json") else table.to_csv()
    Path(out).write_text(text, encoding="utf-8")


def cmd_run(args) -> int:
    from .launcher import LaunchError, launch_local

    ledger_dir = Path(args.ledger_dir) if args.ledger_dir else None
    ledgers = sorted(ledger_dir.glob("*.ledger.jsonl")) if ledger_dir and ledger_dir.is_dir() else []
    res, catalog, cat_path = _compile(Path(args.query), args.catalog, ledgers)
    if res.plan is None:
        return 1
    data = _data_map(args.data, res.plan)
    gov_args = (["--approvals", *args.approvals] if args.approvals else []) + \
        (["--trust", *args.trust] if args.trust else [])
    try:
        table, _ = launch_local(res.plan, cat_path, data, quiet=args.quiet, timeout=args.timeout, tls=args.tls,
                                extra_args=gov_args, ledger_dir=ledger_dir)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code  # 3 when a party's data is bad, 7 when one refused the plan (spec/runtime.md)
    print(table.render())
    _write_result(table, args.out)
    return 0


def cmd_party(args) -> int:
    from .party import run_party
    from .parties import load_parties

    from .governance import GovernanceOptions, load_plan_unchecked

    plan = load_plan_unchecked(Path(args.plan).read_text(encoding="utf-8"))  # hash: checked by governance
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
        if args.out:
            _write_result(table, args.out)
        else:
            print(table.render())
    return code


def cmd_catalog(args) -> int:
    catalog, path = _catalog_for(Path("."), args.catalog)
    print(f"catalog {catalog.name} ({path}), digest {catalog.digest()}")
    for name, ds in catalog.datasets.items():
        print(f"\n{name}  (owner {ds.owner}, k={ds.policy.min_group_size})  {ds.description}")
        for c, col in ds.columns.items():
            print(f"  {c:28} {col.type:9} {col.role:10} {col.description}")
    return 0


def cmd_schema(args) -> int:
    from insightql.compiler.catalog import catalog_json_schema

    if args.what == "catalog":
        print(json.dumps(catalog_json_schema(), indent=2, sort_keys=True))
    else:
        from insightql.compiler.plan_schema import PLAN_SCHEMA
        print(json.dumps(PLAN_SCHEMA, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iq", description="InsightQL: insight queries over secret-shared data")
    p.add_argument("--version", action="version", version=f"iq {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="check queries (names, types, disclosure rules)")
    c.add_argument("paths", nargs="+")
    c.add_argument("--catalog")
    c.add_argument("--format", choices=["human", "json", "sarif", "github"], default="human")
    c.add_argument("--explain", action="store_true", help="also compile and show the plan and its leakage report")
    c.set_defaults(fn=cmd_check)

    f = sub.add_parser("fmt", help="print queries in canonical form")
    f.add_argument("paths", nargs="+")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    f.set_defaults(fn=cmd_fmt)

    c = sub.add_parser("compile", help="compile a query to a plan file")
    c.add_argument("query")
    c.add_argument("--catalog")
    c.add_argument("-o", "--output")
    c.add_argument("--ledger", action="extend", nargs="+", type=Path, default=[], metavar="LEDGER",
                   help="ledgers of earlier releases: the plan's differencing guard compares with them")
    c.set_defaults(fn=cmd_compile)

    e = sub.add_parser("explain", help="show a plan: placement, cost, leakage report")
    e.add_argument("target", help="a .iq query or a .plan.json file")
    e.add_argument("--catalog")
    e.add_argument("--format", choices=["text", "dot", "html"], default="text")
    e.add_argument("-o", "--output")
    e.set_defaults(fn=cmd_explain)

    d = sub.add_parser("diff", help="explain what changed between two plans")
    d.add_argument("a")
    d.add_argument("b")
    d.set_defaults(fn=cmd_diff)

    r = sub.add_parser("run", help="compile and run a query with every party as a local process")
    r.add_argument("query")
    r.add_argument("--catalog")
    r.add_argument("--data", action="append", default=[], help="PARTY=FILE or DATASET=FILE")
    r.add_argument("--out", help="also write the result to a .csv or .json file")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--timeout", type=float, default=900)
    r.add_argument("--tls", action="store_true", help="mutual TLS between the parties, with a throw-away test CA")
    r.add_argument("--approvals", action="extend", nargs="+", default=[], metavar="FILE",
                   help="approval files, passed to every party")
    r.add_argument("--trust", action="extend", nargs="+", default=[], metavar="KEYS",
                   help="trusted .pub.json files or folders, passed to every party")
    r.add_argument("--ledger-dir", help="folder of the parties' ledgers (<party>.ledger.jsonl); also the "
                   "differencing guard's history. Default: a temporary folder (no history)")
    r.set_defaults(fn=cmd_run)

    pp = sub.add_parser("party", help="run one party of a plan")
    pp.add_argument("--plan", required=True)
    pp.add_argument("--party", required=True)
    pp.add_argument("--data", action="append", help="FILE, or DATASET=FILE when the party owns several")
    pp.add_argument("--parties", required=True, help="parties file (names, host:port, TLS)")
    pp.add_argument("--catalog", required=True)
    pp.add_argument("--out", help="write the received result to a .csv or .json file")
    pp.add_argument("--quiet", action="store_true")
    pp.add_argument("--timeout", type=float, default=900)
    pp.add_argument("--connect-timeout", type=float, default=60,
                    help="seconds to wait for every peer to connect (default 60)")
    pp.add_argument("--approvals", action="extend", nargs="+", default=[], metavar="FILE",
                    help="approval files of the plan (spec/governance.md)")
    pp.add_argument("--trust", action="extend", nargs="+", default=[], metavar="KEYS",
                    help="trusted .pub.json files or folders of them")
    pp.add_argument("--ledger", help="this party's ledger (default: <party>.ledger.jsonl next to its data)")
    pp.add_argument("--source", help="the .iq source this party's owner reviewed; recompiled with its catalog "
                    "(default: the source inside the plan)")
    pp.add_argument("--allow-fewer-parties", action="store_true", help=argparse.SUPPRESS)
    pp.set_defaults(fn=cmd_party)

    k = sub.add_parser("catalog", help="list the datasets of a catalog")
    k.add_argument("--catalog")
    k.set_defaults(fn=cmd_catalog)

    s = sub.add_parser("schema", help="print a JSON Schema")
    s.add_argument("what", choices=["catalog", "plan"])
    s.set_defaults(fn=cmd_schema)

    for module, fn in (("cli_governance", "add_commands"), ("certs", "add_certs_command")):
        try:
            mod = __import__(f"insightql.runtime.{module}", fromlist=[fn])
            getattr(mod, fn)(sub)
        except (ImportError, AttributeError):
            pass
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "fn", None) or getattr(args, "func")
    try:
        return handler(args)
    except UsageError as e:
        print(f"iq: {e}", file=sys.stderr)
        return 2
    except DiagnosticError as e:
        for d in e.diagnostics:
            print(d.render(), file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"iq: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
