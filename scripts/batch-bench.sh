#!/usr/bin/env bash
# Nightly batch scoring, crmscore against the Python a data team would write, in the same run.
#
#   scripts/batch-bench.sh [CUSTOMERS]        default 10000000; prints a markdown table
#
# 1. Generates a CUSTOMERS-row snapshot once with the project's generator (scripts/train_models.py --snapshot-only:
#    crm_data, seed 43, row groups of 16384) into $BENCH_DIR (default .bench).
# 2. Runs, each pinned to the same cores ($CORES, default 0,1) under /usr/bin/time -v (peak RSS):
#      python  scripts/reference/batch_score.py (pandas read -> missing policy -> onnxruntime -> pandas write)
#      crmscore score-batch --models churn                        (the same columns)
#      crmscore score-batch --models churn,segmentation --explain 3 --insights   (reasons, segment, next action)
# 3. Checks that Python and crmscore agree (every row: same ids in order, |dp| <= 1e-6, same risk band).
#
# Environment: CRMSCORE_BIN (default target/release/crmscore; build it with `cargo build --release` first),
# PYTHON (default .venv-dataeng/bin/python), BENCH_DIR, CORES. Threads: crmscore gets --threads = the pinned cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib-bench.sh
bench_setup batch-bench "$root/.bench" "$@"
cores="${CORES:-0,1}"
threads="$(awk -F, '{print NF}' <<<"$cores")"
out="$bench/batch-out"
mkdir -p "$out"
snapshot="$bench/customers-batch-$customers.parquet"
bench_snapshot "$snapshot"

# run NAME CMD...: wall seconds and peak RSS (MB) of CMD pinned to $cores, appended to $results.
results="$out/results.tsv"
: >"$results"
run() {
  local name="$1"; shift
  local timing="$out/$name.time"
  log "$name: $*"
  local start end
  start="$(date +%s.%N)"
  taskset -c "$cores" /usr/bin/time -v -o "$timing" "$@" >"$out/$name.log" 2>&1 \
    || { log "$name failed:"; tail -20 "$out/$name.log" >&2; exit 1; }
  end="$(date +%s.%N)"
  local rss_kb
  rss_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$timing")"
  printf '%s\t%s\t%s\n' "$name" "$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v k="$rss_kb" 'BEGIN {printf "%.0f", k / 1024}')" >>"$results"
}

rm -f "$out"/*.parquet
run python "$py" scripts/reference/batch_score.py "$snapshot" "$out/python.parquet"
run crmscore_churn "$bin" score-batch --snapshot "$snapshot" --output "$out/churn.parquet" --models churn \
  --threads "$threads"
run crmscore_insights "$bin" score-batch --snapshot "$snapshot" --output "$out/insights.parquet" \
  --models churn,segmentation --explain 3 --insights --threads "$threads"

log "checking that Python and crmscore agree ..."
"$py" - "$out/python.parquet" "$out/churn.parquet" <<'PY'
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
a, b = (pq.read_table(p, columns=["customer_id", "churn_probability", "risk"]) for p in sys.argv[1:])
# pandas writes large_string, crmscore string: compare the values.
a, b = (t.cast(pa.schema([("customer_id", pa.string()), ("churn_probability", pa.float32()), ("risk", pa.string())]))
        for t in (a, b))
assert a.num_rows == b.num_rows, (a.num_rows, b.num_rows)
assert a["customer_id"].equals(b["customer_id"]), "customer ids differ (or their order)"
dp = np.abs(a["churn_probability"].to_numpy() - b["churn_probability"].to_numpy()).max()
assert dp <= 1e-6, f"probabilities differ by up to {dp}"
same_risk = (a["risk"].to_numpy(zero_copy_only=False) == b["risk"].to_numpy(zero_copy_only=False)).mean()
assert same_risk == 1.0, f"risk bands agree on {same_risk:.6%} only"
print(f"[batch-bench] agree on {a.num_rows} rows: max |dp| {dp:.2e}, same risk bands", file=sys.stderr)
PY

echo
echo "Batch scoring, $customers customers ($(basename "$snapshot")), pinned to cores $cores, $(date -u +%Y-%m-%d):"
echo
awk -F'\t' -v n="$customers" '
  { name[NR] = $1; wall[NR] = $2; rss[NR] = $3 }
  END {
    print "| run | wall s | rows/s | peak RSS MB | rows/s vs Python | RSS vs Python |"
    print "|---|---:|---:|---:|---:|---:|"
    label["python"] = "Python (pandas + onnxruntime), churn"
    label["crmscore_churn"] = "crmscore score-batch, churn"
    label["crmscore_insights"] = "crmscore score-batch, churn + 3 reasons + segment + next action"
    for (i = 1; i <= NR; i++) {
      printf "| %s | %.1f | %.0f | %d | %.2fx | %.0f%% |\n", label[name[i]], wall[i], n / wall[i], rss[i],
        wall[1] / wall[i], 100 * rss[i] / rss[1]
    }
  }' "$results"
echo
echo "Command: scripts/batch-bench.sh $customers (CRMSCORE_BIN=$bin)"
