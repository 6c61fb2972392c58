#!/usr/bin/env bash
# Builds the VS Code extension into editors/vscode/modelc-<version>.vsix.
# Needs Node.js and npm; installs its dependencies from the npm registry into node_modules/
# (not committed). Install the result with `code --install-extension modelc-0.1.0.vsix`.
set -euo pipefail
cd "$(dirname "$0")"
# The grammar and the manifest must be valid JSON before anything is fetched.
node -e 'for (const f of ["package.json", "language-configuration.json", "syntaxes/model.tmLanguage.json"]) JSON.parse(require("fs").readFileSync(f, "utf8"))'
npm install --no-audit --no-fund
npx vsce package --skip-license --allow-missing-repository
ls -1 ./*.vsix
