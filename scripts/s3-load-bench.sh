#!/usr/bin/env bash
# Snapshot load from a local S3-compatible server against the same file on local disk, in the same run.
#
#   scripts/s3-load-bench.sh FILE [RUNS]      e.g. a 10M-customer file from
#                                             scripts/train_models.py --snapshot-only --customers 10000000 --out FILE
#
# Starts moto's S3 server on loopback (scripts/s3_loopback.py, from scripts/requirements-dataeng.txt), uploads FILE,
# then runs `crmscore check-snapshot` (footer, schema check, decode of every model column, stats: what the server's
# load does before a swap) RUNS times (default 3) on each side, alternating local and s3://, under /usr/bin/time
# (wall seconds, peak RSS). Prints each run and the medians, and the S3 speed as a share of the local speed.
#
# Environment: CRMSCORE_BIN (default target/release/crmscore), PYTHON (default .venv-dataeng/bin/python).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
file="${1:?usage: $0 FILE [RUNS]}"
runs="${2:-3}"
bin="${CRMSCORE_BIN:-$root/target/release/crmscore}"
py="${PYTHON:-$root/.venv-dataeng/bin/python}"
log() { echo "[s3-load-bench] $*" >&2; }

port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$py" scripts/s3_loopback.py serve "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true' EXIT
endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do
  "$py" scripts/s3_loopback.py mb "$endpoint" bench-exports 2>/dev/null && break
  sleep 0.2
done
log "uploading $file to s3://bench-exports/customers/ on $endpoint"
"$py" scripts/s3_loopback.py put "$endpoint" bench-exports "customers/$(basename "$file")" "$file"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$endpoint"

tmp="$(mktemp -d)"
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
echo "| s3:// (moto on loopback) | $s | $(peak s3) |"
echo
awk -v l="$l" -v s="$s" 'BEGIN { printf "S3 load speed = %.0f%% of local (%d runs each, alternating)\n", 100 * l / s, '"$runs"' }'
rm -rf "$tmp"
