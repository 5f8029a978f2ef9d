// InsightQL for VS Code: starts `iq lsp` (the language server in runtime/lsp/) for .iq files.
// Diagnostics as you type, completion of datasets, columns, categories and functions, hover with a
// column's policy. The command is the setting `insightql.command` (default: `iq` on PATH, e.g. the
// project's .venv/bin/iq); the catalog is found next to the document, as `iq check` finds it.
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("insightql");
  const command = config.get("command", "iq");
  const args = ["lsp"];
  const catalog = config.get("catalog", "");
  if (catalog) {
    args.push("--catalog", catalog);
  }
  return { command, args, transport: TransportKind.stdio };
}

function activate(context) {
  client = new LanguageClient(
    "insightql",
    "InsightQL",
    serverOptions(),
    { documentSelector: [{ scheme: "file", language: "iq" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, serverOptions };
