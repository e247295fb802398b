#!/usr/bin/env bash
# Cost of the drift check at swap against the load it rides on, in the same server run (docs/drift.md).
#
#   scripts/drift-cost.sh [CUSTOMERS]        default 10000000; prints one line per swap and the medians
#
# 1. Generates a CUSTOMERS-row snapshot once with the project's generator (scripts/train_models.py --snapshot-only)
#    and its drifted copy (tenure_months x30, every other monthly_charges null) into $BENCH_DIR (default .bench).
# 2. Starts `crmscore serve` on the shipped models (churn scored for the score PSI) with the first one, then drops
#    SWAPS (default 3) new snapshots in turn (a fresh copy of the drifted or the plain one, so every swap drifts).
# 3. Reads each swap's "snapshot swapped in" seconds (load + validation + drift) and the drift line's seconds from
#    the log; load = swap seconds - drift seconds; prints drift / load.
#
# Environment: CRMSCORE_BIN (default target/release/crmscore), PYTHON (default .venv-dataeng/bin/python),
# BENCH_DIR, SWAPS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib-bench.sh
bench_setup drift-cost "$root/.bench" "$@"
swaps="${SWAPS:-3}"
plain="$bench/drift-plain-$customers.parquet"
drifted="$bench/drift-drifted-$customers.parquet"
bench_snapshot "$plain"
if [[ ! -f "$drifted" ]]; then
  log "writing $drifted ..."
  "$py" - "$plain" "$drifted" <<'EOF'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
src, dst = sys.argv[1], sys.argv[2]
f, w = pq.ParquetFile(src), None
for i in range(f.num_row_groups):
    t = f.read_row_group(i)
    days = pc.multiply(t["tenure_months"], pa.scalar(30, pa.int16()))
    mask = np.zeros(t.num_rows, bool)
    mask[::2] = True
    charges = pa.array(t["monthly_charges"].to_numpy(), mask=mask, type=pa.float64())
    t = t.set_column(t.schema.get_field_index("tenure_months"), "tenure_months", days)
    t = t.set_column(t.schema.get_field_index("monthly_charges"), "monthly_charges", charges)
    w = w or pq.ParquetWriter(dst + ".tmp", t.schema, compression="zstd")
    w.write_table(t)
w.close()
os.rename(dst + ".tmp", dst)
EOF
fi

folder="$(mktemp -d "$bench/drift-cost.XXXX")"
logfile="$folder.log"
cp "$plain" "$folder/s0.parquet"
"$bin" serve --bind 127.0.0.1:0 --device cpu --models models --snapshots "$folder" --state-dir "" \
  --feedback-dir "" --poll-ms 200 2>"$logfile" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$folder"' EXIT
wait_swaps() { # wait_swaps N: until N snapshots have been swapped in
  for _ in $(seq 1 1200); do
    [[ "$(grep -c 'snapshot swapped in' "$logfile" || true)" -ge "$1" ]] && return 0
    kill -0 "$server" 2>/dev/null || { log "server exited:"; tail -20 "$logfile" >&2; exit 1; }
    sleep 0.5
  done
  log "timed out waiting for swap $1"; exit 1
}
wait_swaps 1
for i in $(seq 1 "$swaps"); do
  source_file="$plain"
  (( i % 2 == 1 )) && source_file="$drifted"
  cp "$source_file" "$folder/.s$i.tmp" && mv "$folder/.s$i.tmp" "$folder/s$i.parquet"
  wait_swaps $((i + 1))
  sleep 1
done
field() { sed -E "s/.* $1=([0-9.e-]+).*/\1/"; }
rows="$(paste <(grep 'snapshot swapped in' "$logfile" | tail -n "$swaps" | field seconds) \
              <(grep 'snapshot drift against' "$logfile" | field seconds) |
  awk '{ load = $1 - $2; printf "%.3f %.3f %.1f\n", load, $2, 100 * $2 / load }')"
awk -v n="$customers" '{ printf "swap %d (%d customers): load %s s, drift %s s, drift/load %s%%\n", NR, n, $1, $2, $3 }' \
  <<<"$rows"
median() { cut -d' ' -f"$1" <<<"$rows" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median: load $(median 1) s, drift $(median 2) s, drift/load $(median 3)%"
grep 'snapshot drift against' "$logfile" | tail -n 1 >&2
rm -f "$logfile"
