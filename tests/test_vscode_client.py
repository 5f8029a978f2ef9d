"""The VS Code extension (editors/vscode/) starts `iq lsp` for .iq files (issue 20 item 2).

Run under Node with stand-ins for the `vscode` and `vscode-languageclient` modules (skipped without
node): activation creates a client for the `iq` language that package.json declares, whose server
is `iq lsp` (or the configured command and catalog). The server itself is tested in test_lsp.py."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "editors" / "vscode"
NODE = shutil.which("node")

HARNESS = r"""
const Module = require("module");
const settings = JSON.parse(process.argv[3]);
const created = [];
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === "vscode") {
    return { workspace: { getConfiguration: () => ({ get: (k, d) => (k in settings ? settings[k] : d) }) } };
  }
  if (request === "vscode-languageclient/node") {
    return {
      TransportKind: { stdio: 0 },
      LanguageClient: class { constructor(...a) { created.push(a); } start() { return Promise.resolve(); } stop() {} },
    };
  }
  return load.call(this, request, ...rest);
};
const ext = require(process.argv[2]);
const context = { subscriptions: [] };
Promise.resolve(ext.activate(context)).then(() => {
  console.log(JSON.stringify({ created, subscriptions: context.subscriptions.length }));
});
"""


def _activate(tmp_path: Path, settings: dict) -> dict:
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    r = subprocess.run([NODE, str(harness), str(EXT / "extension.js"), json.dumps(settings)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(NODE is None, reason="no node")
def test_activation_starts_iq_lsp_for_the_iq_language(tmp_path):
    pkg = json.loads((EXT / "package.json").read_text(encoding="utf-8"))
    assert pkg["main"] == "./extension.js" and "onLanguage:iq" in pkg["activationEvents"]
    assert [lang["id"] for lang in pkg["contributes"]["languages"]] == ["iq"]
    out = _activate(tmp_path, {})
    (cid, name, server, client), = out["created"]
    assert server == {"command": "iq", "args": ["lsp"], "transport": 0}
    assert client["documentSelector"] == [{"scheme": "file", "language": "iq"}]
    assert out["subscriptions"] == 1


@pytest.mark.skipif(NODE is None, reason="no node")
def test_configured_command_and_catalog(tmp_path):
    out = _activate(tmp_path, {"command": "/srv/iq/.venv/bin/iq", "catalog": "catalog.toml"})
    server = out["created"][0][2]
    assert server["command"] == "/srv/iq/.venv/bin/iq" and server["args"] == ["lsp", "--catalog", "catalog.toml"]
