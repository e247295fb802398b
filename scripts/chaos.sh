#!/usr/bin/env bash
# Chaos run on loopback (about 2 minutes after the build): builds the release binary, then scripts/chaos.py drives
# it with small, 100-id and very large requests, slow-body and never-reading clients, a load at 2x capacity,
# good and bad snapshot drops, a model version swap and SIGTERM, and prints requests, errors by class, the small
# requests' p99, peak RSS, whether any acknowledged request failed, and the targets (exit 1 if one is missed).
# Usage: scripts/chaos.sh [--seconds N] [--budget-mb MB] [--out summary.json]
# Without .bench/tools/bin/oha (scripts/loadtest.sh installs it) the overload phase is offered by Python threads,
# which cannot reach 2x the server's capacity.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --locked --bin crmscore
# The overload phase needs a load generator faster than Python: oha, as scripts/loadtest.sh installs it.
oha=()
if [[ -x .bench/tools/bin/oha ]]; then oha=(--oha .bench/tools/bin/oha); fi
exec timeout 900 python3 scripts/chaos.py --binary target/release/crmscore "${oha[@]}" "$@"
