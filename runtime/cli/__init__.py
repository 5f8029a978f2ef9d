"""The `iq` command line. Exit codes: 0 clean, 1 findings or failed run, 2 usage or internal error.

Every subcommand is registered here, explicitly, by the module of its group:

* query.py: check, fmt, compile, explain, diff, catalog, schema (compile only: never import MPyC,
  so they stay fast enough for pre-commit hooks and CI);
* run.py: run, party (MPyC is imported when a party starts);
* governance.py: keygen, approve, revoke, verify;
* audit.py: audit verify|show|prove|head|verify-heads|compare|report;
* runtime/launch/certs.py: certs;
* lsp.py: lsp (the language server, runtime/lsp/; never MPyC).
"""
from __future__ import annotations

import argparse
import sys

from insightql.compiler import __version__
from insightql.compiler.diagnostics import DiagnosticError

from insightql.runtime.cli import audit, governance, lsp, query, run
from insightql.runtime.cli.common import UsageError, error_words
from insightql.runtime.launch import certs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iq", description="InsightQL: insight queries over secret-shared data")
    p.add_argument("--version", action="version", version=f"iq {__version__}",
                   help="print iq's version and exit, e.g. iq --version")
    sub = p.add_subparsers(dest="command", required=True)
    query.add_commands(sub)  # check, fmt, compile, explain, diff
    run.add_commands(sub)  # run, party
    query.add_catalog_commands(sub)  # catalog, schema
    governance.add_commands(sub)  # keygen, approve, revoke, verify
    audit.add_commands(sub)  # audit
    certs.add_certs_command(sub)  # certs
    lsp.add_commands(sub)  # lsp
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
        print(f"iq: {error_words(e)}", file=sys.stderr)
        return 2
