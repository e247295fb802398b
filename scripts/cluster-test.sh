#!/usr/bin/env bash
# Many replicas, one nightly drop: three crmscore replicas reading the same snapshot store behind HAProxy on
# loopback, load through HAProxy, a new snapshot dropped into the store; reports requests, errors (must be 0), how
# long until every replica serves the new version, and the window during which the replicas disagreed.
#
#   scripts/cluster-test.sh [--store local|s3] [--short] [--replicas N] [--customers N] [--duration S]
#                           [--poll-ms MS] [--threads N]
#
#   --store local   (default) the replicas share one snapshot folder; the drop is an atomic rename into it.
#   --store s3      the replicas read s3://crmscore/snapshots/ on a loopback moto server (PyPI moto[server], installed
#                   into .venv-dataeng if missing); snapshots are uploaded with boto3. Needs a crmscore whose
#                   --snapshots takes s3:// URLs (object storage support).
#   --short         the CI form: the shipped sample snapshot, 10 s of load, poll every 500 ms.
#   --customers N   generate an N-customer snapshot with the project's generator (cached in .bench/), default: the
#                   shipped sample snapshot.
#   --duration S    seconds of load (default 30; the load runs at least until every replica switched + 1 s).
#   --poll-ms MS    the replicas' --poll-ms (default 1000); the report says whether all switched within two.
#   --threads N     client connections through HAProxy (default 4).
#
# The new snapshot holds the same customers with tenure_months + 1 (so scores change and no row-drop guard fires).
# Environment: CRMSCORE_BIN (default target/release/crmscore if built, else target/debug/crmscore), PYTHON
# (default .venv-dataeng/bin/python, created by scripts/setup-python.sh --dataeng when missing). HAProxy comes from
# the Debian package, installed with apt-get when missing (as root). Exits non-zero on any failed request or when a
# replica does not switch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

store=local short=0 replicas=3 customers=0 duration=30 poll_ms=1000 threads=4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) store="$2"; shift 2 ;;
    --short) short=1; shift ;;
    --replicas) replicas="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --poll-ms) poll_ms="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$store" == local || "$store" == s3 ]] || { echo "--store is local or s3, not '$store'" >&2; exit 2; }
if [[ "$short" == 1 ]]; then
  duration=10 poll_ms=500 customers=0
fi
log() { echo "[cluster-test] $*" >&2; }

# The binary, ONNX Runtime, Python and HAProxy.
bin="${CRMSCORE_BIN:-}"
if [[ -z "$bin" ]]; then
  bin="$root/target/release/crmscore"
  [[ -x "$bin" ]] || bin="$root/target/debug/crmscore"
fi
[[ -x "$bin" ]] || { log "no crmscore binary at $bin: cargo build (or set CRMSCORE_BIN)"; exit 1; }
scripts/setup-onnxruntime.sh >/dev/null
py="${PYTHON:-$root/.venv-dataeng/bin/python}"
[[ -x "$py" ]] || py="$(scripts/setup-python.sh --dataeng)"
if ! command -v haproxy >/dev/null; then
  log "installing HAProxy (Debian package haproxy) ..."
  [[ "$(id -u)" == 0 ]] || { log "HAProxy is missing and only root can apt-get install it"; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q haproxy >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q haproxy >/dev/null; }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/crmscore-cluster.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Day 1 and day 2 of the export, and the ids the load asks for.
if [[ "$customers" == 0 ]]; then
  first="$root/snapshots/customers-sample.parquet"
else
  first="$root/.bench/customers-cluster-$customers.parquet"
  [[ -f "$first" ]] || "$py" scripts/train_models.py --snapshot-only --customers "$customers" --out "$first" >&2
fi
mkdir -p "$work/staging" "$work/store"
"$py" - "$first" "$work/staging/customers-day2.parquet" "$work/ids.txt" <<'EOF'
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
first, second, ids = sys.argv[1:]
table = pq.read_table(first)
i = table.schema.get_field_index("tenure_months")
tenure = table.column(i)
table = table.set_column(i, table.field(i), pc.cast(pc.add(tenure, 1), tenure.type))
pq.write_table(table, second, compression="zstd", row_group_size=16384)
with open(ids, "w") as f:
    f.write("\n".join(table.column("customer_id").cast(pa.string()).to_pylist()[:20000]))
EOF
rows="$("$py" -c 'import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)' "$first")"

# The store both days go to, and the --snapshots the replicas read.
if [[ "$store" == local ]]; then
  cp "$first" "$work/store/customers-day1.parquet"
  snapshots="$work/store"
  # A rename within one file system: the new file appears whole, and newer (by modification time) than day 1.
  drop="touch '$work/staging/customers-day2.parquet' && mv '$work/staging/customers-day2.parquet' '$work/store/'"
else
  "$py" -c 'import moto, boto3' 2>/dev/null || "$py" -m pip install -q 'moto[server]==5.2.1'
  s3_port="$(free_port)"
  "$py" -m moto.server -p "$s3_port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ENDPOINT="http://127.0.0.1:$s3_port" AWS_ALLOW_HTTP=true
  for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL/" >/dev/null && break; sleep 0.1; done
  cat >"$work/put.py" <<'EOF'
import sys, boto3
s3 = boto3.client("s3")
if sys.argv[1] == "--create":
    s3.create_bucket(Bucket="crmscore")
    sys.argv.pop(1)
s3.upload_file(sys.argv[1], "crmscore", sys.argv[2])
EOF
  "$py" "$work/put.py" --create "$first" snapshots/customers-day1.parquet
  snapshots="s3://crmscore/snapshots/"
  drop="'$py' '$work/put.py' '$work/staging/customers-day2.parquet' snapshots/customers-day2.parquet"
fi

# The replicas: one HTTP worker and one batching worker each (three share this machine's cores); no state or
# feedback folders, which replicas must not share.
replica_urls=()
servers=""
for i in $(seq 0 $((replicas - 1))); do
  port="$(free_port)"
  "$bin" serve --bind "127.0.0.1:$port" --models models --snapshots "$snapshots" --poll-ms "$poll_ms" \
    --policy policies/engagement.toml --state-dir '' --feedback-dir '' --http-workers 1 --batch-workers 1 \
    --shutdown-grace-ms 0 >"$work/replica-$i.log" 2>&1 &
  pids+=($!)
  replica_urls+=("http://127.0.0.1:$port")
  servers+="  server r$i 127.0.0.1:$port check"$'\n'
done
for url in "${replica_urls[@]}"; do
  for _ in $(seq 1200); do curl -sf "$url/v2/health/ready" >/dev/null && continue 2; sleep 0.1; done
  log "replica $url not ready after 120 s; its log:"; tail -20 "$work"/replica-*.log >&2; exit 1
done

# HAProxy: round robin over the replicas, each health-checked on its readiness route. Only connection failures
# are retried (HAProxy's default), never an answered request.
lb_port="$(free_port)"
cat >"$work/haproxy.cfg" <<EOF
global
  maxconn 2000
defaults
  mode http
  option http-keep-alive
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend crmscore
  bind 127.0.0.1:$lb_port
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /v2/health/ready
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1
$servers
EOF
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$lb_port/v2/health/ready" >/dev/null && break; sleep 0.1; done

log "store=$store replicas=$replicas customers=$rows poll_ms=$poll_ms duration=${duration}s binary=$bin"
log "$(haproxy -v | head -1)"
replica_args=()
for url in "${replica_urls[@]}"; do replica_args+=(--replica "$url"); done
status=0
"$py" scripts/cluster_load.py --lb "http://127.0.0.1:$lb_port" "${replica_args[@]}" --ids "$work/ids.txt" \
  --duration "$duration" --drop-after "$(( duration / 3 ))" --drop "$drop" --threads "$threads" \
  --poll-ms "$poll_ms" --json "${CLUSTER_JSON:-$work/figures.json}" || status=$?
if [[ "$status" != 0 ]]; then
  log "FAILED; the last log lines of each replica and HAProxy:"
  for f in "$work"/replica-*.log "$work/haproxy.log"; do echo "== $f" >&2; tail -5 "$f" >&2; done
fi
exit "$status"
