#!/usr/bin/env bash
# A real LSP client against `modelc lsp`: headless Neovim opens a .model file with an error,
# starts the server for it (scripts/nvim_lsp_test.lua) and prints each diagnostic it received
# as `code line:column message` (1-based; Neovim's columns are bytes).
#
#   MODELC=target/debug/modelc bash scripts/nvim_lsp_test.sh
#
# tests/lsp.rs runs it when `nvim` is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
modelc="${MODELC:-$here/../target/debug/modelc}"
command -v nvim >/dev/null || { echo "nvim is not installed" >&2; exit 2; }
[ -x "$modelc" ] || { echo "no modelc binary at $modelc (build it, or set MODELC)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `yy` is unknown; the characters before it are 1, 2 and 4 bytes wide in UTF-8 and 1 and 2
# units in UTF-16, so Neovim must convert the server's UTF-16 range to reach column 16.
cat > "$work/broken.model" <<'MODEL'
# é😀 é
fn f(x) {
    "é😀" + yy
}
MODEL

# Neovim writes its LSP log under XDG_STATE_HOME: keep it in the scratch folder.
MODELC="$modelc" MODEL_FILE="$work/broken.model" XDG_STATE_HOME="$work/state" \
    XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
    timeout 120 nvim --headless --clean -n \
    -c "luafile $here/nvim_lsp_test.lua" "$work/broken.model"
