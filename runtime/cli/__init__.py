"""The `iq` command line. Exit codes: 0 clean, 1 findings or failed run, 2 usage or internal error.

Every subcommand is registered here, explicitly, by the module of its group (GROUPS):

* query.py: check, fmt, compile, explain, diff, catalog, schema (compile only: never import MPyC,
  so they stay fast enough for pre-commit hooks and CI);
* run.py: run, party (MPyC is imported when a party starts);
* governance.py: keygen, approve, revoke, verify;
* audit.py: audit verify|show|prove|head|verify-heads|compare|report;
* runtime/launch/certs.py: certs;
* lsp.py: lsp (the language server, runtime/lsp/; never MPyC).

`iq COMMAND ...` imports only the group of COMMAND (the others are named, without their options):
the groups pull in what they need (pydantic and cryptography for governance, numpy for results),
and `iq run` pays that before any party starts (spec/runtime.md, "Fixed cost of a small run").
`iq`, `iq --help` and `build_parser()` register every group in full.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import sys

from insightql.compiler import __version__


@contextlib.contextmanager
def collector_paused():
    """No cyclic garbage collection inside: importing and compiling make long-lived objects, which
    the collector traverses again and again (a tenth to a fifth of `iq run`'s CPU before the parties
    start; spec/runtime.md, "Fixed cost of a small run"). Cyclic garbage made inside waits until after."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _query_commands(sub) -> None:
    from insightql.runtime.cli import query
    query.add_commands(sub)


def _run_commands(sub) -> None:
    from insightql.runtime.cli import run
    run.add_commands(sub)


def _catalog_commands(sub) -> None:
    from insightql.runtime.cli import query
    query.add_catalog_commands(sub)


def _governance_commands(sub) -> None:
    from insightql.runtime.cli import governance
    governance.add_commands(sub)


def _audit_commands(sub) -> None:
    from insightql.runtime.cli import audit
    audit.add_commands(sub)


def _certs_commands(sub) -> None:
    from insightql.runtime.launch import certs
    certs.add_certs_command(sub)


def _lsp_commands(sub) -> None:
    from insightql.runtime.cli import lsp
    lsp.add_commands(sub)


GROUPS = (  # (the commands a group registers, in its order; how to register them), in `iq --help` order
    (("check", "fmt", "compile", "explain", "diff"), _query_commands),
    (("run", "party", "report"), _run_commands),
    (("catalog", "schema"), _catalog_commands),
    (("keygen", "approve", "revoke", "verify"), _governance_commands),
    (("audit",), _audit_commands),
    (("certs",), _certs_commands),
    (("lsp",), _lsp_commands),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `iq` parser: every group in full, or (`command` one of GROUPS' names) only the group of
    `command` in full and the other commands by name (enough to parse a command line of `command`)."""
    p = argparse.ArgumentParser(prog="iq", description="InsightQL: insight queries over secret-shared data")
    p.add_argument("--version", action="version", version=f"iq {__version__}",
                   help="print iq's version and exit, e.g. iq --version")
    sub = p.add_subparsers(dest="command", required=True)
    known = {name for names, _ in GROUPS for name in names}
    for names, register in GROUPS:
        if command not in known or command in names:
            register(sub)
        else:
            for name in names:
                sub.add_parser(name, add_help=False)
    return p


def _command_word(argv: list[str]) -> str | None:
    """The subcommand of a command line: its first word that is not an option (`iq` itself has
    only --help and --version, which take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    program, argv = argv is None, sys.argv[1:] if argv is None else argv
    with collector_paused():  # while the command's group is imported
        args = build_parser(_command_word(argv)).parse_args(argv)
        if args.command == "run":  # compiles, forks the parties, waits: its objects live until it exits
            code = _run(args)
            if program:  # the process ends next: its last collection would only traverse them once more
                gc.freeze()
            return code
    return _run(args)


def _run(args) -> int:
    from insightql.compiler.diagnostics import DiagnosticError
    from insightql.runtime.cli.common import UsageError, error_words

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
