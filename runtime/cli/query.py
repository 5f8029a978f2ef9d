"""`iq` subcommands that only compile: check, fmt, compile, explain, diff, catalog, schema.

They never import MPyC, so they stay fast enough for pre-commit hooks and CI. runtime/cli/__init__.py
registers them with ``add_commands(subparsers)`` and ``add_catalog_commands(subparsers)``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from insightql.compiler import __version__
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, render_github, render_json, render_sarif

from insightql.runtime.cli.common import UsageError, locate, catalog_for, catalog_path, compile_query, examples, \
    load_catalog_file, read_source


def _iq_files(paths: list[str], suffixes=(".iq",)) -> list[Path]:
    """The files named, and the .iq files below the folders named (a catalog given by name too)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.rglob("*.iq"))
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or folder")
    return out


def _emit(diags: list[Diagnostic], fmt: str, docs_url: str | None) -> None:
    """Print the findings in one format; the machine formats print a whole document even when
    there is nothing to report (github: nothing at all, as Actions expects)."""
    if fmt == "json":
        print(render_json(diags))
    elif fmt == "sarif":
        print(render_sarif(diags, __version__, docs_url or os.environ.get("IQ_DOCS_URL")))
    elif fmt == "github":
        if diags:
            print(render_github(diags))
    else:
        for d in diags:
            print(d.render())


def _catalog_once(path: Path, loaded: dict, diags: list[Diagnostic]):
    """The catalog at `path`, loaded once; its errors are reported once, however many queries use it."""
    key = path.resolve()
    if key not in loaded:
        try:
            loaded[key] = load_catalog_file(path)
        except DiagnosticError as e:
            diags += e.diagnostics
            loaded[key] = None
        else:
            from insightql.compiler.check.privacy_policy import large_epsilon_warnings
            from insightql.compiler.diagnostics import Source
            text = path.read_text(encoding="utf-8")
            diags += [locate(d) for d in large_epsilon_warnings(loaded[key], Source(str(path), text))]
    return loaded[key]


def cmd_check(args) -> int:
    from insightql.compiler.pipeline import check_source, compile_source

    diags: list[Diagnostic] = []
    files = _iq_files(args.paths)
    if not files:
        raise UsageError("no .iq files found")
    explained, catalogs = [], {}
    for f in files:
        if f.suffix == ".toml":  # a catalog: check it, do not read it as a query
            _catalog_once(f, catalogs, diags)
            continue
        catalog = _catalog_once(catalog_path(f, args.catalog), catalogs, diags)
        try:
            text = read_source(f)
        except DiagnosticError as e:
            diags += e.diagnostics
            continue
        if catalog is None:  # its errors are reported above
            continue
        fn = compile_source if args.explain or args.max_seconds is not None else check_source
        res = fn(text, str(f), catalog)
        diags += res.diagnostics
        if args.max_seconds is not None and res.plan is not None:
            diags += _over_time(res.plan, catalog, text, str(f), args.max_seconds)
        if args.explain and res.plan is not None:
            from insightql.compiler.review.explain import explain_text
            explained.append(explain_text(res.plan, _rows_bound(res.plan, catalog)))
    _emit(diags, args.format, args.docs_url)
    if args.format == "human":
        for e in explained:
            print(e)
        n_err = sum(1 for d in diags if d.severity.value == "error")
        print(f"iq: {len(files)} file(s) checked, {n_err} error(s)", file=sys.stderr)
    return 1 if diags else 0


def _over_time(plan: dict, catalog, text: str, name: str, limit: float) -> list[Diagnostic]:
    """IQ410 when the plan's estimated run time (rows bounded by max_rows) is above `limit` seconds."""
    from insightql.compiler.diagnostics import Severity, Source, Span
    from insightql.compiler.review.timing import estimate_seconds, human, stages_text

    est = estimate_seconds(plan, _rows_bound(plan, catalog))
    if est["total"] <= limit:
        return []
    stages = stages_text(est)
    hints = ["record linkage grows with the rows: a lower max_rows in the catalog, a WHERE, or linkage = \"fast\" "
             "where the owners allow it"] if "linkage" in est["stages"] else []
    return [Diagnostic("IQ410", f"estimated run time ~{human(est['total'])} is above the limit of {limit:g} s "
                       f"({stages}; rows bounded by max_rows)", Span(0, len(text.rstrip())),
                       hints + [f"see `iq explain {name}` for the estimate per stage"], Severity.WARNING,
                       Source(name, text))]


def cmd_fmt(args) -> int:
    from insightql.compiler.syntax.comments import format_source

    status = 0
    for f in _iq_files(args.paths):
        try:
            text = read_source(f)
            out = format_source(text, str(f))
        except DiagnosticError as e:
            for d in e.diagnostics:
                print(d.render(), file=sys.stderr)
            status = 1
            continue
        if args.write:
            if out != text:
                f.write_text(out, encoding="utf-8")
                print(f"iq: reformatted {f}", file=sys.stderr)
        elif args.check:
            if out != text:
                print(f"iq: {f} is not in canonical form (run `iq fmt --write {f}`)", file=sys.stderr)
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
    """(plan, catalog or None): a plan file's catalog only when --catalog names one."""
    p = Path(target)
    if p.suffix == ".toml":
        raise UsageError(f"{p} is a catalog; give a .iq query or a .plan.json file (and the catalog as --catalog {p})")
    if p.suffix == ".json":
        return _read_plan(p), (catalog_for(p, catalog_arg)[0] if catalog_arg else None)
    res, catalog, _ = compile_query(p, catalog_arg)
    return res.plan, catalog


def _rows_bound(plan: dict, catalog) -> dict[str, int] | None:
    from insightql.compiler.review.timing import catalog_rows
    return None if catalog is None else catalog_rows(plan, catalog)


def _read_plan(path: Path) -> dict:
    from insightql.compiler.plan.plan_io import load_plan

    text = read_source(path)
    try:
        return load_plan(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not a plan file: not JSON (line {e.lineno}, column {e.colno}: "
                         f"{e.msg.lower()}); make one with `iq compile QUERY.iq -o NAME.plan.json`")
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path} is not a plan file (no {e}); make one with `iq compile QUERY.iq -o NAME.plan.json`")


def cmd_explain(args) -> int:
    from insightql.compiler.review import explain

    if Path(args.target).suffix == ".toml":  # a catalog: each dataset's effective policy
        if args.format != "text":
            raise UsageError(f"{args.target} is a catalog; it is explained as text only (omit --format)")
        return _print_catalog(Path(args.target), args.output)
    plan, catalog = _load_plan_or_compile(args.target, args.catalog)
    if plan is None:
        return 1
    if args.format == "dot":
        out = explain.explain_dot(plan)
    else:
        out = {"text": explain.explain_text, "html": explain.explain_html,
               "json": explain.explain_json}[args.format](plan, _rows_bound(plan, catalog))
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        print(out)
    return 0


def cmd_diff(args) -> int:
    """Exit 0: the same plan; 1: plans differ, nothing weaker; 3: the new plan is weaker (spec/plan.md)."""
    from insightql.compiler.review.explain import diff_plans
    from insightql.compiler.review.weakening import weakenings

    if Path(args.a).suffix == ".toml" and Path(args.b).suffix == ".toml":  # two versions of a catalog
        from insightql.compiler.review.catalog_text import diff_catalogs

        a, b = (load_catalog_file(Path(p)) for p in (args.a, args.b))
        text, looser = diff_catalogs(a, b)
        print(text)
        return 0 if a.digest() == b.digest() else 3 if looser else 1
    plans = [_load_plan_or_compile(p, args.catalog)[0] for p in (args.a, args.b)]
    if any(p is None for p in plans):
        return 1
    a, b = plans
    print(diff_plans(a, b))
    if a["hash"] == b["hash"]:
        return 0
    return 3 if weakenings(a, b) else 1


def _print_catalog(path: Path | None, output: str | None = None, explicit: str | None = None) -> int:
    from insightql.compiler.review.catalog_text import explain_catalog

    catalog, path = catalog_for(Path("."), explicit or (str(path) if path else None))
    text = explain_catalog(catalog, path)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def cmd_catalog(args) -> int:
    if args.catalog_file == "infer":
        return _catalog_infer(args)
    if args.data is not None:
        raise UsageError(f"iq catalog takes one catalog; did you mean `iq catalog infer {args.data}`?")
    return _print_catalog(None, args.output, args.catalog or args.catalog_file)


def _catalog_infer(args) -> int:
    """`iq catalog infer DATA`: a draft dataset for the owner to review (runtime/data/infer.py)."""
    from insightql.runtime.data.checks import DataError
    from insightql.runtime.data.infer import InferOptions, infer_dataset

    if args.data is None:
        raise UsageError("iq catalog infer needs the data file, e.g. iq catalog infer police.csv --owner police")
    options = InferOptions(name=args.name, owner=args.owner, min_count=args.min_count,
                           max_categories=args.max_categories)
    try:
        text = infer_dataset(Path(args.data), options)
    except DataError as e:
        for issue in e.issues:
            print(f"iq: {issue}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: a DRAFT for the owner to review before use", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema(args) -> int:
    from insightql.compiler.check.catalog import catalog_json_schema

    if args.what == "catalog":
        print(json.dumps(catalog_json_schema(), indent=2, sort_keys=True))
    else:
        from insightql.compiler.plan.plan_schema import PLAN_SCHEMA
        print(json.dumps(PLAN_SCHEMA, indent=2, sort_keys=True))
    return 0


_CATALOG_HELP = "the catalog (default: catalog.toml in the query's folder or a parent), e.g. --catalog examples/catalog.toml"


def add_commands(sub) -> None:
    """Register check, fmt, compile, explain and diff on the `iq` subparsers object."""
    c = sub.add_parser("check", help="check queries (names, types, disclosure rules) and catalogs",
                       **examples("iq check examples/", "iq check queries/ --catalog catalog.toml --format github"))
    c.add_argument("paths", nargs="+", metavar="PATH",
                   help=".iq files, folders (every .iq below) or catalog .toml files, e.g. examples/ "
                        "or examples/catalog.toml")
    c.add_argument("--catalog", metavar="FILE", help=_CATALOG_HELP)
    c.add_argument("--format", choices=["human", "json", "sarif", "github"], default="human",
                   help="how findings are printed: human (default), json, sarif (code scanning) or github "
                        "(Actions annotations), e.g. --format sarif > iq.sarif")
    c.add_argument("--explain", action="store_true",
                   help="also compile and show the plan and its leakage report, e.g. iq check --explain q.iq")
    c.add_argument("--max-seconds", type=float, metavar="S",
                   help="warn (IQ410) when a query's estimated run time is above S seconds, e.g. --max-seconds 60")
    c.add_argument("--docs-url", metavar="URL",
                   help="where the spec is published, for SARIF helpUri links (default: $IQ_DOCS_URL or the "
                        "project's repository), e.g. --docs-url https://git.example.org/insightql/")
    c.set_defaults(fn=cmd_check)

    f = sub.add_parser("fmt", help="print queries in canonical form, comments kept",
                       **examples("iq fmt examples/overlap.iq", "iq fmt --check examples/"))
    f.add_argument("paths", nargs="+", metavar="PATH", help=".iq files or folders (every .iq below), e.g. examples/")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite the files in place, e.g. iq fmt --write examples/")
    g.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 and name each file not in canonical form (for CI), "
                        "e.g. iq fmt --check examples/")
    f.set_defaults(fn=cmd_fmt)

    c = sub.add_parser("compile", help="compile a query to a plan file",
                       **examples("iq compile examples/victims_by_exploitation.iq -o q.plan.json",
                                  "iq compile q.iq --catalog catalog.toml --ledger ledgers/police.ledger.jsonl "
                                  "-o q.plan.json"))
    c.add_argument("query", help="the .iq query, e.g. examples/overlap.iq")
    c.add_argument("--catalog", metavar="FILE", help=_CATALOG_HELP)
    c.add_argument("-o", "--output", metavar="FILE", help="write the plan here instead of printing it, e.g. -o q.plan.json")
    c.add_argument("--ledger", action="extend", nargs="+", type=Path, default=[], metavar="LEDGER",
                   help="ledgers of earlier releases: the plan's differencing guard compares with them, "
                        "e.g. --ledger police.ledger.jsonl")
    c.set_defaults(fn=cmd_compile)

    e = sub.add_parser("explain", help="show a plan: placement, cost, leakage report",
                       **examples("iq explain examples/overlap.iq",
                                  "iq explain q.plan.json --format html -o plan.html"))
    e.add_argument("target", help="a .iq query or a .plan.json file, e.g. examples/overlap.iq")
    e.add_argument("--catalog", metavar="FILE", help=_CATALOG_HELP)
    e.add_argument("--format", choices=["text", "dot", "html", "json"], default="text",
                   help="text (default), dot (Graphviz), html (the auditor's page) or json (for tools), "
                        "e.g. --format html -o plan.html")
    e.add_argument("-o", "--output", metavar="FILE", help="write to this file instead of printing, e.g. -o plan.html")
    e.set_defaults(fn=cmd_explain)

    d = sub.add_parser("diff", help="explain what changed between two plans, weakenings first "
                       "(exit 0 same, 1 different, 3 weaker)",
                       **examples("iq diff old.plan.json new.plan.json", "iq diff old/catalog.toml catalog.toml"))
    d.add_argument("a", metavar="OLD", help="the earlier plan file or .iq query, e.g. old.plan.json")
    d.add_argument("b", metavar="NEW", help="the later plan file or .iq query, e.g. new.iq")
    d.add_argument("--catalog", metavar="FILE", help=_CATALOG_HELP + " (for .iq files)")
    d.set_defaults(fn=cmd_diff)


def add_catalog_commands(sub) -> None:
    """Register catalog and schema on the `iq` subparsers object."""
    k = sub.add_parser("catalog", usage="iq catalog [FILE] | iq catalog infer DATA [--name DS] [--owner P] [-o OUT]",
                       help="list a catalog's datasets with their effective policies, or draft a dataset "
                            "from a data file (infer)",
                       **examples("iq catalog examples/catalog.toml",
                                  "iq catalog infer examples/data/police_victims.csv --owner police -o draft.toml"))
    k.add_argument("catalog_file", nargs="?", metavar="FILE",
                   help="the catalog, as with --catalog, e.g. iq catalog examples/catalog.toml; or `infer`, "
                        "e.g. iq catalog infer police.csv --owner police")
    k.add_argument("data", nargs="?", metavar="DATA",
                   help="with infer: a CSV, Parquet or .xlsx file, e.g. iq catalog infer examples/data/police.csv")
    k.add_argument("--catalog", metavar="FILE", help=_CATALOG_HELP.replace("the query's folder", "this folder"))
    k.add_argument("--name", metavar="DS", help="with infer: the dataset's name (default: the file's stem), "
                                                 "e.g. --name police_victims")
    k.add_argument("--owner", metavar="P", help="with infer: the owning party (default: a placeholder to fill "
                                                "in), e.g. --owner police")
    k.add_argument("--min-count", type=int, default=10, metavar="N",
                   help="with infer: a text value becomes a category domain member only if at least N rows hold "
                        "it (default 10); rarer values are left out and counted, e.g. --min-count 20")
    k.add_argument("--max-categories", type=int, default=50, metavar="N",
                   help="with infer: a text column with more distinct values is not a category (default 50), "
                        "e.g. --max-categories 100")
    k.add_argument("-o", "--output", metavar="FILE", help="write to this file instead of printing, "
                                                          "e.g. -o draft.toml")
    k.set_defaults(fn=cmd_catalog)

    s = sub.add_parser("schema", help="print a JSON Schema", **examples("iq schema plan"))
    s.add_argument("what", choices=["catalog", "plan"], help="which schema: catalog or plan, e.g. iq schema catalog")
    s.set_defaults(fn=cmd_schema)
