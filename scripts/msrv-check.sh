#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version holds for every normal and build dependency that
# Cargo.lock resolves, for the default features, each feature alone and all features; fails with
# the list of those that need a newer Rust. Dev-dependencies do not count: a user's build never
# compiles them. Reads `cargo metadata` and `cargo tree` with --locked (offline when the crates
# are already downloaded); the details are in scripts/msrv-check.py. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/msrv-check.py "$@"
