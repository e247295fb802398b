#!/usr/bin/env bash
# Starts crmscore on the shipped models and sample snapshot (http://127.0.0.1:8080), fetching ONNX Runtime first
# if needed. Extra arguments go to `crmscore serve` (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-onnxruntime.sh
exec cargo run --release --locked -- serve "$@"
