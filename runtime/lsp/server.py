"""The pygls glue of `iq lsp`: each .iq document is checked on open and on every change (the
diagnostics of `iq check`, against the catalog `iq check` would use: `--catalog`, else
catalog.toml in the document's folder or a parent), and completion and hover read that catalog
(runtime/lsp/analysis.py). Speaks JSON-RPC over stdin/stdout."""
from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from insightql.compiler import __version__
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, Severity
from insightql.compiler.pipeline import check_source
from insightql.compiler.syntax.parser import parse
from insightql.runtime.cli.common import UsageError, catalog_path, load_catalog_file
from insightql.runtime.lsp import analysis

_SEVERITY = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
             Severity.NOTE: lsp.DiagnosticSeverity.Information}
_KIND = {"keyword": lsp.CompletionItemKind.Keyword, "dataset": lsp.CompletionItemKind.Class,
         "column": lsp.CompletionItemKind.Field, "function": lsp.CompletionItemKind.Function,
         "value": lsp.CompletionItemKind.EnumMember}


class IQServer(LanguageServer):
    def __init__(self, catalog: str | None):
        super().__init__("iq", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
        self.explicit_catalog = catalog
        self._catalogs: dict[Path, tuple[float, object]] = {}  # path -> (mtime, Catalog or the error)

    def catalog_of(self, uri: str):
        """(Catalog, None) or (None, the reason there is none) for a document."""
        fs = to_fs_path(uri)
        where = Path(fs).parent if fs else Path.cwd()
        try:
            path = catalog_path(where, self.explicit_catalog).resolve()
        except UsageError as e:
            return None, str(e)
        try:
            mtime = path.stat().st_mtime
        except OSError as e:
            return None, f"cannot read the catalog {path}: {e.strerror}"
        cached = self._catalogs.get(path)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, load_catalog_file(path))
            except DiagnosticError as e:
                first = e.diagnostics[0]
                pos = first.position()
                at = f" (line {pos[0]}, column {pos[1]})" if pos else ""
                cached = (mtime, f"the catalog {path} has errors: {first.code} {first.message}{at}")
            self._catalogs[path] = cached
        value = cached[1]
        return (None, value) if isinstance(value, str) else (value, None)


def _to_lsp(text: str, d: Diagnostic) -> lsp.Diagnostic:
    (l0, c0), (l1, c1) = analysis.diagnostic_range(text, d)
    return lsp.Diagnostic(range=lsp.Range(lsp.Position(l0, c0), lsp.Position(l1, c1)),
                          message=analysis.diagnostic_message(d), severity=_SEVERITY[d.severity],
                          code=d.code, source="iq")


def diagnostics(server: IQServer, uri: str, text: str) -> list[lsp.Diagnostic]:
    """`iq check` on the document; without a usable catalog, its syntax errors and a warning
    that says why names and policies are not checked."""
    catalog, why = server.catalog_of(uri)
    name = to_fs_path(uri) or uri
    if catalog is not None:
        return [_to_lsp(text, d) for d in check_source(text, name, catalog).diagnostics]
    out = [lsp.Diagnostic(range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), source="iq",
                          severity=lsp.DiagnosticSeverity.Warning,
                          message=f"names and policies are not checked: {why}")]
    try:
        parse(text, name)
    except DiagnosticError as e:
        out += [_to_lsp(text, d) for d in e.diagnostics]
    return out


def make_server(catalog: str | None) -> IQServer:
    server = IQServer(catalog)

    def publish(ls: IQServer, uri: str):
        doc = ls.workspace.get_text_document(uri)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=diagnostics(ls, uri, doc.source)))

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: IQServer, params: lsp.DidOpenTextDocumentParams):
        publish(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: IQServer, params: lsp.DidChangeTextDocumentParams):
        publish(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: IQServer, params: lsp.DidSaveTextDocumentParams):
        publish(ls, params.text_document.uri)  # the catalog may have changed beside it

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: IQServer, params: lsp.DidCloseTextDocumentParams):
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" ", "'", "."]))
    def completion(ls: IQServer, params: lsp.CompletionParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        text = doc.source
        at = analysis.offset(text, params.position.line, params.position.character)
        catalog, _ = ls.catalog_of(params.text_document.uri)
        items = [lsp.CompletionItem(label=c.label, kind=_KIND[c.kind], detail=c.detail or None,
                                    insert_text=c.insert) for c in analysis.complete(text, at, catalog)]
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: IQServer, params: lsp.HoverParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        text = doc.source
        catalog, _ = ls.catalog_of(params.text_document.uri)
        value = analysis.hover(text, analysis.offset(text, params.position.line, params.position.character), catalog)
        if value is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=value))

    return server


def serve(catalog: str | None) -> int:
    make_server(catalog).start_io()
    return 0
