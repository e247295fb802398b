#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches ONNX Runtime if missing, makes the tritonclient venv of the
# interop check (tests/tritonclient.rs), then formatting, lints, unit and integration tests (the real server over
# HTTP and gRPC), and one pass of every criterion bench in test mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-onnxruntime.sh
# The interop check's tritonclient venv (tests/tritonclient.rs) and the OpenAPI validator (tests/openapi.rs).
scripts/setup-python.sh --triton >/dev/null
scripts/setup-python.sh --openapi >/dev/null
# Reading Parquet output back (pyarrow, pandas, DuckDB) and independent report figures (scikit-learn).
scripts/setup-python.sh --dataeng >/dev/null
# Offline Kubernetes schema validation of deploy/ (tests/deploy.rs).
scripts/setup-python.sh --deploy >/dev/null
# A fresh clone gains nothing from incremental caches; they cost gigabytes of disk across ~50 test binaries.
export CARGO_INCREMENTAL=0
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
