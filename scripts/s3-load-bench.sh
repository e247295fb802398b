#!/usr/bin/env bash
# Snapshot load from a local S3-compatible server against the same file on local disk, in the same run.
#
#   scripts/s3-load-bench.sh FILE [RUNS]      e.g. a 10M-customer file from
#                                             scripts/train_models.py --snapshot-only --customers 10000000 --out FILE
#
# Starts an S3-compatible server on loopback holding FILE under s3://bench-exports/customers/, then runs
# `crmscore check-snapshot` (footer, schema check, decode of every model column, stats: what the server's load does
# before a swap) RUNS times (default 3) on each side, alternating local and s3://, under /usr/bin/time (wall
# seconds, peak RSS). Prints each run and the medians, and the S3 speed as a share of the local speed.
#
# S3_SERVER picks the server:
#   s3s   (default) s3s-fs, a Rust S3 server over a folder (crates.io, pinned; `cargo install` into .bench/tools on
#         first use, a few minutes): serves ranged GETs from a file, so the figure is the client's.
#   moto  moto's Python server (scripts/s3_loopback.py, the one the test suite uses): keeps objects in memory and
#         copies the whole object for every ranged GET, so a 340 MB file reads ~35x slower than from disk; kept to
#         show that the server, not the client, sets that figure.
#
# Environment: CRMSCORE_BIN (default target/release/crmscore), PYTHON (default .venv-dataeng/bin/python), S3_SERVER.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
file="${1:?usage: $0 FILE [RUNS]}"
runs="${2:-3}"
source scripts/lib-bench.sh
bench_tools s3-load-bench
server="${S3_SERVER:-s3s}"
S3S_VERSION=0.14.1

port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
work="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
case "$server" in
  s3s)
    s3s="$root/.bench/tools/bin/s3s-fs"
    if [[ ! -x "$s3s" ]]; then
      log "installing s3s-fs $S3S_VERSION into .bench/tools (cargo install --locked, a few minutes) ..."
      cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$root/.bench/tools" >&2
    fi
    mkdir -p "$work/data"
    "$s3s" --host 127.0.0.1 --port "$port" --access-key test --secret-key test "$work/data" >"$work/server.log" 2>&1 &
    pid=$!
    ;;
  moto)
    "$py" scripts/s3_loopback.py serve "$port" >"$work/server.log" 2>&1 &
    pid=$!
    ;;
  *) log "S3_SERVER must be s3s or moto, not '$server'"; exit 2 ;;
esac
for _ in $(seq 100); do
  "$py" scripts/s3_loopback.py mb "$endpoint" bench-exports 2>/dev/null && break
  sleep 0.2
done
# Uploaded through the S3 API, so that the server keeps the object's ETag (s3s-fs hashes a file it did not
# receive itself on every GET).
log "uploading $file to s3://bench-exports/customers/ on $endpoint ($server)"
"$py" scripts/s3_loopback.py put "$endpoint" bench-exports "customers/$(basename "$file")" "$file"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$endpoint"
# Warm the page cache so that both sides read the file from memory.
cat "$file" >/dev/null

tmp="$work"
# measure SIDE PATH: one check-snapshot, "SIDE seconds peak_mb" on stdout.
measure() {
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" check-snapshot --models models "$2" >"$tmp/out" 2>&1 || {
    cat "$tmp/out" >&2
    exit 1
  }
  grep -q "verdict  OK" "$tmp/out"
  read -r seconds kb <"$tmp/time"
  echo "$1 $seconds $((kb / 1024))"
}
for i in $(seq "$runs"); do
  measure local "$file"
  measure s3 "s3://bench-exports/customers/"
done | tee "$tmp/results" >&2

median() { grep "^$1 " "$tmp/results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
peak() { grep "^$1 " "$tmp/results" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
l="$(median local)"
s="$(median s3)"
echo "| side | median wall (s) | median peak RSS (MB) |"
echo "| --- | --- | --- |"
echo "| local file | $l | $(peak local) |"
echo "| s3:// ($server on loopback) | $s | $(peak s3) |"
echo
awk -v l="$l" -v s="$s" 'BEGIN { printf "S3 load speed = %.0f%% of local (%d runs each, alternating)\n", 100 * l / s, '"$runs"' }'
