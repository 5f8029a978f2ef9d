"""The `iq` command line. Exit codes: 0 clean, 1 findings or failed run, 2 usage or internal error.

Every subcommand is registered here, explicitly, by the module of its group:

* cli_query.py: check, fmt, compile, explain, diff, catalog, schema (compile only: never import MPyC,
  so they stay fast enough for pre-commit hooks and CI);
* cli_run.py: run, party (MPyC is imported when a party starts);
* cli_governance.py: keygen, approve, verify, audit verify|show;
* certs.py: certs.
"""
from __future__ import annotations

import argparse
import sys

from insightql.compiler import __version__
from insightql.compiler.diagnostics import DiagnosticError

from . import certs, cli_governance, cli_query, cli_run
from .cli_common import UsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iq", description="InsightQL: insight queries over secret-shared data")
    p.add_argument("--version", action="version", version=f"iq {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    cli_query.add_commands(sub)  # check, fmt, compile, explain, diff
    cli_run.add_commands(sub)  # run, party
    cli_query.add_catalog_commands(sub)  # catalog, schema
    cli_governance.add_commands(sub)  # keygen, approve, verify, audit
    certs.add_certs_command(sub)  # certs
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
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
