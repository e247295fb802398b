#!/usr/bin/env bash
# Starts crmscore on the shipped models and sample snapshot (http://127.0.0.1:8080), fetching ONNX Runtime first
# if needed. Extra arguments go to `crmscore serve` (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-onnxruntime.sh
# KServe v2 over gRPC beside HTTP, for tritonclient.grpc (README); CRMSCORE_GRPC_BIND= (empty) turns it off.
export CRMSCORE_GRPC_BIND="${CRMSCORE_GRPC_BIND-127.0.0.1:8001}"
[[ -n "$CRMSCORE_GRPC_BIND" ]] || unset CRMSCORE_GRPC_BIND
exec cargo run --release --locked -- serve "$@"
