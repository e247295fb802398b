# Shared set-up of the snapshot benches (scripts/load-bench.sh, scripts/drift-cost.sh), sourced from the repository
# root: the customer count from $1, the bench folder, the release binary and the dataeng Python, and log().
#
#   bench_setup NAME DEFAULT_BENCH_DIR [CUSTOMERS]    sets customers, bench, bin, py; creates $bench
bench_setup() {
  bench_name="$1"
  customers="${3:-10000000}"
  bench="${BENCH_DIR:-$2}"
  bin="${CRMSCORE_BIN:-$PWD/target/release/crmscore}"
  py="${PYTHON:-$PWD/.venv-dataeng/bin/python}"
  [[ -x "$bin" ]] || { log "no crmscore binary at $bin: cargo build --release (or set CRMSCORE_BIN)"; exit 1; }
  mkdir -p "$bench"
}

log() { echo "[$bench_name] $*" >&2; }
