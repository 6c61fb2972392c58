#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: formatting, lints, then every test.
# Needs only the Rust toolchain; tests that read ../shared/peers skip (and say so) when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
export INSTA_UPDATE=no
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# Headless Neovim is the real LSP client of tests/lsp.rs (skipped, saying so, without it);
# installing it may fail (no root, no network): the rest still runs.
command -v nvim >/dev/null || { (apt-get update && apt-get install -y neovim) >/dev/null 2>&1 || true; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
