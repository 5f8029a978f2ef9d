"""`iq lsp`: a language server for .iq files (spec/tooling.md "Editors").

`analysis.py` holds what the editor asks, in plain data and without the protocol library:
diagnostics as LSP ranges, completion candidates, hover text. `server.py` is the pygls glue (the
optional `lsp` extra): it finds each document's catalog like `iq check` does and answers
didOpen/didChange (publishDiagnostics), completion and hover.
"""
