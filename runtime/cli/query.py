"""`iq` subcommands that only compile: check, fmt, compile, explain, diff, catalog, schema.

They never import MPyC, so they stay fast enough for pre-commit hooks and CI. runtime/cli/__init__.py
registers them with ``add_commands(subparsers)`` and ``add_catalog_commands(subparsers)``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from insightql.compiler import __version__
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, render_github, render_json, render_sarif

from insightql.runtime.cli.common import UsageError, catalog_for, compile_query


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
        catalog, _ = catalog_for(f, args.catalog)
        fn = compile_source if args.explain else check_source
        res = fn(f.read_text(encoding="utf-8"), str(f), catalog)
        diags += res.diagnostics
        if args.explain and res.plan is not None:
            from insightql.compiler.review.explain import explain_text
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
    from insightql.compiler.syntax.comments import format_source

    status = 0
    for f in _iq_files(args.paths):
        text = f.read_text(encoding="utf-8")
        try:
            out = format_source(text, str(f))
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


def cmd_compile(args) -> int:
    from insightql.compiler.plan.plan_io import dump_plan

    res, _, _ = compile_query(Path(args.query), args.catalog, args.ledger)
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
    from insightql.compiler.plan.plan_io import load_plan

    p = Path(target)
    if p.suffix == ".json":
        return load_plan(p.read_text(encoding="utf-8"))
    res, _, _ = compile_query(p, catalog_arg)
    return res.plan


def cmd_explain(args) -> int:
    from insightql.compiler.review import explain

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
    from insightql.compiler.review.explain import diff_plans
    from insightql.compiler.plan.plan_io import load_plan

    a, b = (load_plan(Path(p).read_text(encoding="utf-8")) for p in (args.a, args.b))
    text = diff_plans(a, b)
    print(text)
    return 0 if a["hash"] == b["hash"] else 1


def cmd_catalog(args) -> int:
    catalog, path = catalog_for(Path("."), args.catalog)
    print(f"catalog {catalog.name} ({path}), digest {catalog.digest()}")
    for name, ds in catalog.datasets.items():
        print(f"\n{name}  (owner {ds.owner}, k={ds.policy.min_group_size})  {ds.description}")
        for c, col in ds.columns.items():
            print(f"  {c:28} {col.type:9} {col.role:10} {col.description}")
    return 0


def cmd_schema(args) -> int:
    from insightql.compiler.check.catalog import catalog_json_schema

    if args.what == "catalog":
        print(json.dumps(catalog_json_schema(), indent=2, sort_keys=True))
    else:
        from insightql.compiler.plan.plan_schema import PLAN_SCHEMA
        print(json.dumps(PLAN_SCHEMA, indent=2, sort_keys=True))
    return 0


def add_commands(sub) -> None:
    """Register check, fmt, compile, explain and diff on the `iq` subparsers object."""
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


def add_catalog_commands(sub) -> None:
    """Register catalog and schema on the `iq` subparsers object."""
    k = sub.add_parser("catalog", help="list the datasets of a catalog")
    k.add_argument("--catalog")
    k.set_defaults(fn=cmd_catalog)

    s = sub.add_parser("schema", help="print a JSON Schema")
    s.add_argument("what", choices=["catalog", "plan"])
    s.set_defaults(fn=cmd_schema)
