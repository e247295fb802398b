#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches ONNX Runtime if missing, then formatting, lints, unit and
# integration tests (the real server over HTTP), and one pass of every criterion bench in test mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-onnxruntime.sh
# The OpenAPI validator that tests/openapi.rs runs on /openapi.json.
scripts/setup-python.sh --openapi >/dev/null
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
