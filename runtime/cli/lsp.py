"""`iq lsp`: the language server for editors (runtime/lsp/). Needs the optional `lsp` extra
(pygls); without it the command says how to install it and exits 2. Never imports MPyC."""
from __future__ import annotations

from insightql.runtime.cli.common import UsageError, examples

_MISSING = ("iq lsp needs the language server library pygls, which is not installed; "
            "install it with: pip install 'insightql[lsp]'")


def cmd_lsp(args) -> int:
    try:
        from insightql.runtime.lsp.server import serve
    except ImportError as e:
        if (e.name or "").split(".")[0] in ("pygls", "lsprotocol", "cattrs", "attrs"):
            raise UsageError(_MISSING)
        raise
    return serve(args.catalog)


def add_commands(sub) -> None:
    p = sub.add_parser("lsp", help="language server for editors (JSON-RPC over stdin/stdout)",
                       description="Serve the Language Server Protocol over stdin/stdout: diagnostics as "
                                   "you type, completion and hover (spec/tooling.md, Editors). An editor "
                                   "starts it; it is not run by hand.",
                       **examples("iq lsp", "iq lsp --catalog examples/catalog.toml"))
    p.add_argument("--catalog", metavar="FILE",
                   help="catalog for every document (default: catalog.toml in the document's folder or a parent), "
                        "e.g. --catalog examples/catalog.toml")
    p.set_defaults(fn=cmd_lsp)
