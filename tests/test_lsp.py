"""`iq lsp`, the language server: started as a subprocess speaking JSON-RPC over stdio (messages
framed by Content-Length here, not by a client library), it publishes a document's diagnostics,
completes datasets, columns and category values, and hovers a column with its type and policy.
Every exchange has a deadline and every server is killed. Also: the TextMate grammar knows every
keyword, and `iq lsp` without pygls says how to install it."""
from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from insightql.compiler.syntax.parser import KEYWORDS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEADLINE = 30.0

pytestmark = pytest.mark.timeout(120)


class Server:
    """`iq lsp` in a subprocess; a reader thread puts each decoded message on a queue."""

    def __init__(self, *args: str):
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a talkative server never blocks on it
        self.proc = subprocess.Popen([sys.executable, "-m", "insightql.runtime.cli", "lsp", *args], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(out.read(length)))

    def send(self, method: str, params, request: bool = False):
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return msg.get("id")

    def wait_for(self, test) -> dict:
        end = time.monotonic() + DEADLINE
        while (left := end - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if test(msg):
                return msg
        raise AssertionError(f"no answer from iq lsp within {DEADLINE} s; stderr: {self._stderr()}")

    def request(self, method: str, params) -> dict:
        rid = self.send(method, params, request=True)
        msg = self.wait_for(lambda m: m.get("id") == rid and "method" not in m)
        assert "error" not in msg, msg
        return msg["result"]

    def diagnostics(self, uri: str) -> list[dict]:
        msg = self.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                            and m["params"]["uri"] == uri)
        return msg["params"]["diagnostics"]

    def open(self, uri: str, text: str):
        self.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "iq", "version": 1, "text": text}})

    def _stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            f.close()


@pytest.fixture
def server():
    s = Server()
    try:
        s.request("initialize", {"processId": None, "rootUri": EXAMPLES.as_uri(), "capabilities": {}})
        s.send("initialized", {})
        yield s
    finally:
        s.kill()


BAD = "@purpose research\nSELECT exp_Type, COUNT(*) AS n\nFROM police_victims\nGROUP BY exp_Typo;\n"


def test_open_document_with_an_error_publishes_the_diagnostic(server):
    """A document beside examples/catalog.toml that groups by an unknown column: the diagnostic
    names the column, carries its IQ code and covers the column's name (0-based positions)."""
    uri = (EXAMPLES / "editor_scratch.iq").as_uri()  # never written: the editor's text is checked
    server.open(uri, BAD)
    diags = server.diagnostics(uri)
    (d,) = [d for d in diags if "exp_Typo" in d["message"]]
    assert re.fullmatch(r"IQ2\d\d", d["code"]), d
    assert "exp_Typo" in d["message"] and d["severity"] == 1 and d["source"] == "iq"
    assert d["range"] == {"start": {"line": 3, "character": 9}, "end": {"line": 3, "character": 17}}

    # fixed as you type: the next publish is empty
    fixed = BAD.replace("exp_Typo", "exp_Type")
    server.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                           "contentChanges": [{"text": fixed}]})
    assert server.diagnostics(uri) == []


def test_syntax_error_range(server):
    uri = (EXAMPLES / "editor_syntax.iq").as_uri()
    server.open(uri, "SELECT COUNT(*)\nFROM police_victims\nWHERE prs_Age >;\n")
    (d,) = server.diagnostics(uri)
    assert d["code"].startswith("IQ1") and d["range"]["start"] == {"line": 2, "character": 15}


def _labels(result) -> dict[str, dict]:
    items = result["items"] if isinstance(result, dict) else result
    return {i["label"]: i for i in items}


def test_completion(server):
    uri = (EXAMPLES / "editor_complete.iq").as_uri()
    text = "SELECT COUNT(*)\nFROM \n"
    server.open(uri, text)
    server.diagnostics(uri)
    after_from = _labels(server.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": {"line": 1, "character": 5}}))
    assert {"police_victims", "ngo_clients"} <= set(after_from)
    assert "SELECT" not in after_from and "prs_Age" not in after_from

    text = "SELECT COUNT(*)\nFROM police_victims\nWHERE exp_Type = 'Fo\n"
    server.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": text}]})
    server.diagnostics(uri)
    values = _labels(server.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": {"line": 2, "character": 20}}))
    assert {"ForcedLabour", "ForcedMarriage", "Other"} <= set(values) and "North" not in values

    anywhere = _labels(server.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": {"line": 0, "character": 7}}))
    assert {"prs_Age", "exp_Type", "WHERE", "GROUP", "age_band", "MEDIAN"} <= set(anywhere)
    assert anywhere["prs_Age"]["detail"].startswith("integer")


def test_hover_on_a_column_shows_type_and_policy(server):
    uri = (EXAMPLES / "editor_hover.iq").as_uri()
    text = "SELECT exp_Type, AVG(prs_Age) AS a\nFROM police_victims\nGROUP BY exp_Type;\n"
    server.open(uri, text)
    server.diagnostics(uri)
    result = server.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 23}})
    value = result["contents"]["value"]
    assert "**prs_Age**: integer, measure" in value
    assert "range: 0 to 99" in value and "AVG" in value
    assert "k = 10" in value and "receivers: police, ngo, helpline" in value
    cat = server.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 11}})
    assert "ForcedLabour" in cat["contents"]["value"]


def test_without_a_catalog_syntax_is_still_checked(tmp_path):
    """A document with no catalog.toml above it: a warning that says so, and the syntax errors."""
    s = Server()
    try:
        s.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        s.send("initialized", {})
        uri = (tmp_path / "q.iq").as_uri()
        s.open(uri, "SELEC 1;\n")
        diags = s.diagnostics(uri)
        assert "no catalog.toml" in diags[0]["message"] and diags[0]["severity"] == 2
        assert any(d.get("code", "").startswith("IQ1") for d in diags[1:])
    finally:
        s.kill()


def test_without_pygls_iq_lsp_says_how_to_install_it():
    code = ("import sys\nsys.modules['pygls'] = None\nfrom insightql.runtime.cli import main\n"
            "sys.exit(main(['lsp']))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'insightql[lsp]'" in r.stderr, r.stderr


def _grammar_keyword_words() -> set[str]:
    grammar = json.loads((ROOT / "editors/vscode/syntaxes/iq.tmLanguage.json").read_text(encoding="utf-8"))
    keyword = grammar["repository"]["keywords"]["patterns"]
    words: set[str] = set()
    for p in keyword:
        m = re.search(r"\\b\((.*)\)\\b", p["match"])
        assert m, p["match"]
        words |= {w.lower() for w in m[1].split("|")}
    return words


def test_textmate_grammar_has_every_keyword():
    assert _grammar_keyword_words() == set(KEYWORDS)


def test_vscode_extension_files_agree():
    pkg = json.loads((ROOT / "editors/vscode/package.json").read_text(encoding="utf-8"))
    (lang,) = pkg["contributes"]["languages"]
    (gram,) = pkg["contributes"]["grammars"]
    assert lang["extensions"] == [".iq"] and gram["language"] == lang["id"] == "iq"
    grammar = json.loads((ROOT / "editors/vscode" / gram["path"]).read_text(encoding="utf-8"))
    assert grammar["scopeName"] == gram["scopeName"]
    conf = json.loads((ROOT / "editors/vscode" / lang["configuration"]).read_text(encoding="utf-8"))
    assert conf["comments"]["lineComment"] == "--"


def test_positions_count_utf16_units_and_lines_from_zero():
    from insightql.runtime.lsp.analysis import offset, position

    text = "-- 😀 é\nSELECT x"
    assert position(text, text.index("é")) == (0, 6)  # the emoji is two UTF-16 units
    assert offset(text, 0, 6) == text.index("é")
    assert position(text, text.index("x")) == (1, 7) and offset(text, 1, 7) == text.index("x")
    assert offset(text, 0, 99) == text.index("\n") and offset(text, 9, 0) == len(text)


def test_no_completion_inside_a_string_that_is_not_a_category_value():
    from insightql.compiler.check.catalog import load_catalog
    from insightql.runtime.lsp.analysis import complete

    catalog = load_catalog(EXAMPLES / "catalog.toml")
    text = "@description 'Counts by ty\nSELECT COUNT(*) FROM police_victims"
    assert complete(text, text.index("\n"), catalog) == []
    done = "SELECT COUNT(*) -- it's a comment\nFROM police_victims WHERE exp_Type = 'x' AND "
    assert "prs_Age" in {c.label for c in complete(done, len(done), catalog)}
