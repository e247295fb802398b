# Shared set-up of the benches that run the release binary on generated snapshots (scripts/load-bench.sh,
# drift-cost.sh, batch-bench.sh, s3-load-bench.sh), sourced from the repository root.
#
#   bench_tools NAME                                  sets bin, py and log() (messages tagged [NAME]); checks $bin
#   bench_setup NAME DEFAULT_BENCH_DIR [CUSTOMERS]    bench_tools, then customers (default 10M) and bench (created)
#   bench_snapshot PATH                               writes a $customers-row snapshot to PATH unless it is there
bench_tools() {
  bench_name="$1"
  bin="${CRMSCORE_BIN:-$PWD/target/release/crmscore}"
  py="${PYTHON:-$PWD/.venv-dataeng/bin/python}"
  [[ -x "$bin" ]] || { log "no crmscore binary at $bin: cargo build --release (or set CRMSCORE_BIN)"; exit 1; }
}

bench_setup() {
  bench_tools "$1"
  customers="${3:-10000000}"
  bench="${BENCH_DIR:-$2}"
  mkdir -p "$bench"
}

bench_snapshot() {
  [[ -f "$1" ]] && return 0
  log "generating $1 ($customers customers) ..."
  "$py" scripts/train_models.py --snapshot-only --customers "$customers" --out "$1" >&2
}

log() { echo "[$bench_name] $*" >&2; }
