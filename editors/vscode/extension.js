// Starts `modelc lsp` for .model files. The server does all the work: diagnostics, hover,
// go to definition, completion, signature help and the outline.
'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration('modelc').get('path') || 'modelc';
  const serverOptions = { command, args: ['lsp'] };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'model' },
      { scheme: 'untitled', language: 'model' },
    ],
  };
  client = new LanguageClient('modelc', 'modelc', serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
