#!/usr/bin/env bash
# Load test of crmscore over HTTP, against a bare actix-web ceiling (examples/ceiling.rs) and the Python reference
# service (scripts/reference/app.py), on the same CPUs, with the same request bodies.
#
#   scripts/loadtest.sh                  all scenarios: .bench/loadtest.md, .bench/latency_vs_concurrency.png
#   SOAK=300 scripts/loadtest.sh soak    churn 1 id at CONCURRENCY for SOAK s, crmscore's RSS every SOAK_INTERVAL s
#
# Scenarios (each DURATION long, after a WARMUP per server and route; one server runs at a time):
#   a  crmscore  POST /v1/churn/score, 1 id per request, CONCURRENCY connections
#   b  crmscore  POST /v1/churn/score, 100 ids per request, 16 connections
#   c  crmscore  POST /v2/models/churn/infer, one real snapshot row (KServe v2 JSON), CONCURRENCY connections
#   d  ceiling   as a (d1), as b (d100), as g (dg) and as h (dh): the HTTP + JSON ceiling of this machine for those
#                request sizes (dg / dh only when examples/ceiling.rs serves that route; skipped with a note if not)
#   e  reference as a (e1), as b (e100), as g (eg) and as h (eh): FastAPI + pandas + onnxruntime (+ tokenizers),
#                one uvicorn worker
#   f  crmscore  as a, at each concurrency of SWEEP (latency vs concurrency)
#   g  crmscore  POST /v1/sentiment, one short feedback text per request, CONCURRENCY connections
#   h  crmscore  POST /v1/recommendations, 1 id and k=RECOMMEND_K per request, CONCURRENCY connections
#   i  crmscore  as a with "explain": 3 (top-3 TreeSHAP reasons); reported as a share of a's req/s
#   j  crmscore  as b with "explain": 3 (100 ids with top-3 reasons each, BATCH_CONCURRENCY connections)
#   k  crmscore  POST /v1/insights, 1 id (churn + reasons + segment + top-3 offers + policy), CONCURRENCY
#                connections; reported as a share of a's req/s
#   l  crmscore  as k at 1 connection (the latency of one insight, server and client)
#   m  crmscore  gRPC ModelInfer (--grpc-bind), c's rows as raw_input_contents, CONCURRENCY calls in flight over as
#                many HTTP/2 connections (examples/grpc_load.rs, the gRPC counterpart of oha; its CPU is the "oha" column)
#   n  crmscore  as m over 1 shared HTTP/2 connection (how one tritonclient.grpc channel carries concurrent calls)
#   o  crmscore  as c with Triton's binary tensor extension (FP32 row in, binary output out; one fixed row, oha -D)
#   p  crmscore  POST /v2/models/churn/infer, 100 rows per request as v2 JSON, BATCH_CONCURRENCY connections
#   q  crmscore  as p with the same 100 rows as binary tensors in and out; reported as rows/s against p
#   r  crmscore  POST /v1/outcomes, 100 outcome events per request (each body's event ids unique across the pool;
#                oha may send a body twice, which is then acknowledged as duplicates), BATCH_CONCURRENCY connections;
#                the rows/s column is events/s acknowledged after fsync (--feedback-dir in .bench/feedback)
# Request bodies carry RANDOM REAL customer ids (rows) drawn over the whole snapshot with a fixed seed, or (g) one
# of 20,000 distinct texts of at most 120 characters from the feedback generator (scripts/feedback_corpus.py, same
# seed): a pool of bodies, one per line, from which oha picks a random line for every request (oha -Z). The replies
# of each route are checked before its runs, and the reference's scores against crmscore's (within 1e-4).
#
# Settings (environment):
#   DURATION=30s  CONCURRENCY=64  SNAPSHOT_CUSTOMERS=1000000  SKIP_REFERENCE=0  SWEEP="1 4 16 64 256"
#   BATCH_IDS=100  BATCH_CONCURRENCY=16  RECOMMEND_K=10  WARMUP=5s  SERVER_CPUS=0  CLIENT_CPUS=1  PORT_BASE=18080
#   SOAK=300  SOAK_INTERVAL=10  READY_TIMEOUT=600  CRMSCORE_ARGS="--device cpu"  SEED=7
#   SCENARIOS="a b c d e f g h i j k l m n o p q r": the scenarios to run; a letter runs every scenario of that letter, a key runs one
#     (SCENARIOS="g h" runs only crmscore's g and h; SCENARIOS="g h dg dh eg eh" adds their ceiling and reference)
# The snapshot (.bench/customers-1m.parquet for 1M customers) is generated once with
# scripts/train_models.py --snapshot-only. Tools go to git-ignored .bench/: oha (cargo install --locked, pinned)
# in .bench/tools, a venv for the reference service and the plot in .bench/venv.
# Servers are pinned to SERVER_CPUS and the load generator to CLIENT_CPUS with taskset; all traffic goes to
# 127.0.0.1. Every process this script starts is stopped on exit, and every wait and run has a time limit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

MODE="${1:-all}"
case "$MODE" in
  all | soak) ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [all|soak]   (settings via environment, see --help)" >&2
    exit 2
    ;;
esac

DURATION="${DURATION:-30s}"
CONCURRENCY="${CONCURRENCY:-64}"
SNAPSHOT_CUSTOMERS="${SNAPSHOT_CUSTOMERS:-1000000}"
SKIP_REFERENCE="${SKIP_REFERENCE:-0}"
SWEEP="${SWEEP:-1 4 16 64 256}"
BATCH_IDS="${BATCH_IDS:-100}"
BATCH_CONCURRENCY="${BATCH_CONCURRENCY:-16}"
RECOMMEND_K="${RECOMMEND_K:-10}"
SCENARIOS="${SCENARIOS:-a b c d e f g h i j k l m n o p q r}"
WARMUP="${WARMUP:-5s}"
SERVER_CPUS="${SERVER_CPUS:-0}"
CLIENT_CPUS="${CLIENT_CPUS:-1}"
PORT_BASE="${PORT_BASE:-18080}"
SOAK="${SOAK:-300}"
SOAK_INTERVAL="${SOAK_INTERVAL:-10}"
READY_TIMEOUT="${READY_TIMEOUT:-600}"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-3600}"
CRMSCORE_ARGS="${CRMSCORE_ARGS---device cpu}"  # may be set empty
SEED="${SEED:-7}"
OHA_VERSION="1.16.0"
POOL_ONE=100000     # bodies of 1 id (ids drawn without replacement)
POOL_BATCH=2000     # bodies of BATCH_IDS ids
POOL_V2=20000       # v2 bodies, one complete snapshot row each
POOL_REC=100000     # recommendation bodies of 1 id (ids drawn without replacement)
POOL_TEXTS=20000    # sentiment bodies of 1 text (distinct texts)
POOL_OUTCOMES=20000 # outcome bodies of 100 events (2,000,000 distinct event ids)
TEXT_MAX_CHARS=120  # "short": at most this many characters (the generator's median is ~70)

bench="$root/.bench"
logs="$bench/logs"
bodies="$bench/bodies"
results="$bench/results.tsv"
mkdir -p "$logs" "$bodies"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  echo "error: $*" >&2
  exit 1
}

# --- settings checks ------------------------------------------------------------------------------------------------
seconds_of() { # 30s | 30 | 2m | 1h -> seconds
  local d="$1"
  case "$d" in
    *[0-9]s) echo "${d%s}" ;;
    *[0-9]m) echo $((${d%m} * 60)) ;;
    *[0-9]h) echo $((${d%h} * 3600)) ;;
    *[0-9]) echo "$d" ;;
    *) die "bad duration '$d' (use e.g. 30s, 2m)" ;;
  esac
}
for v in CONCURRENCY SNAPSHOT_CUSTOMERS BATCH_IDS BATCH_CONCURRENCY RECOMMEND_K PORT_BASE SOAK SOAK_INTERVAL \
  READY_TIMEOUT; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for c in $SWEEP; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "SWEEP must list positive integers, got '$SWEEP'"; done
for k in $SCENARIOS; do
  [[ "$k" =~ ^[a-r][0-9a-z]*$ ]] || die "SCENARIOS lists letters (a-r) or keys (d1, eg, f64, ...), not '$k'"
done
[[ -n "${SCENARIOS// /}" ]] || die "SCENARIOS is empty"
want() { # key...: whether SCENARIOS asks for any of these scenario keys (a letter asks for every key it starts)
  local key s
  for key in "$@"; do
    for s in $SCENARIOS; do
      [[ "$key" == "$s" || (${#s} == 1 && "$key" == "$s"*) ]] && return 0
    done
  done
  return 1
}
duration_s="$(seconds_of "$DURATION")"
warmup_s="$(seconds_of "$WARMUP")"
DURATION="${duration_s}s"
WARMUP="${warmup_s}s"
(( duration_s >= 1 )) || die "DURATION must be at least 1s"

command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v curl >/dev/null || die "curl is needed"
taskset -c "$SERVER_CPUS" true 2>/dev/null || die "SERVER_CPUS=$SERVER_CPUS is not a usable CPU list here"
taskset -c "$CLIENT_CPUS" true 2>/dev/null || die "CLIENT_CPUS=$CLIENT_CPUS is not a usable CPU list here"
server_threads="$(taskset -c "$SERVER_CPUS" nproc)"
client_threads="$(taskset -c "$CLIENT_CPUS" nproc)"
cpus_of() { # "0-2,5" -> "0 1 2 5"
  local part i cpus=() parts
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ "$part" == *-* ]]; then
      for ((i = ${part%-*}; i <= ${part#*-}; i++)); do cpus+=("$i"); done
    else
      cpus+=("$part")
    fi
  done
  echo "${cpus[*]}"
}
server_cpu_list="$(cpus_of "$SERVER_CPUS")"
client_cpu_list="$(cpus_of "$CLIENT_CPUS")"
ulimit -n 4096 2>/dev/null || true

# --- process bookkeeping: everything started here is stopped on exit ----------------------------------------------
PIDS=()
forget() { # pid
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" != "$1" ]] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop() { # pid: TERM, up to 10 s, then KILL; reaps it
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do stop "$p"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_bounded() { # limit_seconds cmd...: runs in the background (so a signal stops it at once) and waits for it
  local limit="$1" pid rc=0
  shift
  timeout --kill-after=10 "$limit" "$@" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget "$pid"
  return "$rc"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- tools ------------------------------------------------------------------------------------------------------------
oha_usable() { "$1" --help 2>/dev/null | grep -q -- '-Z <BODY_PATH_LINES>' && "$1" --help | grep -q -- '--output-format'; }
setup_oha() {
  local candidate
  for candidate in "$bench/tools/bin/oha" "$(command -v oha || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && oha_usable "$candidate"; then
      OHA="$candidate"
      return
    fi
  done
  command -v cargo >/dev/null || die "oha is missing and cargo is not there to install it"
  log "installing oha $OHA_VERSION into $bench/tools (cargo install --locked, a few minutes) ..."
  run_bounded 2400 cargo install oha --locked --version "$OHA_VERSION" --root "$bench/tools" \
    >"$logs/oha-install.log" 2>&1 || die "cargo install oha failed, see $logs/oha-install.log"
  OHA="$bench/tools/bin/oha"
  oha_usable "$OHA" || die "$OHA lacks -Z / --output-format"
}

setup_venv() { # .bench/venv from scripts/reference/requirements.txt; pip only when the file changed (hash stamp)
  local venv="$bench/venv" req="$root/scripts/reference/requirements.txt" host want
  BPY="$venv/bin/python"
  host="$(command -v python3 || command -v python || true)"
  [[ -n "$host" ]] || die "python3 is needed to create $venv"
  if [[ -e "$venv" ]] && ! "$BPY" -c "" >/dev/null 2>&1; then rm -rf "$venv"; fi
  if [[ ! -e "$venv" ]]; then
    log "creating $venv ..."
    "$host" -m venv "$venv" >/dev/null 2>&1 || { rm -rf "$venv" && "$host" -m venv --without-pip "$venv"; }
  fi
  if ! "$BPY" -m pip --version >/dev/null 2>&1; then
    "$host" -m pip --python "$BPY" install -q --disable-pip-version-check pip
  fi
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ ! -f "$venv/.requirements.sha256" || "$(cat "$venv/.requirements.sha256")" != "$want" ]]; then
    log "installing scripts/reference/requirements.txt into $venv ..."
    run_bounded 1800 "$BPY" -m pip install -q --disable-pip-version-check -r "$req" >&2
    echo "$want" >"$venv/.requirements.sha256"
  fi
}

build() {
  log "building crmscore, the ceiling and the gRPC load client (release) ..."
  scripts/setup-onnxruntime.sh >&2
  run_bounded "$BUILD_TIMEOUT" cargo build --release --locked --bin crmscore --example ceiling --example grpc_load >&2
}

snapshot_file() {
  local n="$SNAPSHOT_CUSTOMERS" name
  if ((n % 1000000 == 0)); then
    name="$((n / 1000000))m"
  elif ((n % 1000 == 0)); then
    name="$((n / 1000))k"
  else
    name="$n"
  fi
  SNAPSHOT="$bench/customers-$name.parquet"
  # Made once, and again only when the data generator changed (its columns must match the shipped model).
  local stamp="$SNAPSHOT.generator.sha256" want py
  want="$(cat scripts/crm_data.py scripts/train_models.py | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$SNAPSHOT" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "generating $SNAPSHOT ($n customers) ..."
    py="$(scripts/setup-python.sh)"
    run_bounded 3600 "$py" scripts/train_models.py --snapshot-only --customers "$n" --out "$SNAPSHOT" >&2
    echo "$want" >"$stamp"
  fi
}

# --- request bodies: random real ids / rows over the whole snapshot ---------------------------------------------------
make_bodies() {
  log "drawing request bodies from $SNAPSHOT (seed $SEED) ..."
  "$BPY" - "$SNAPSHOT" models/churn/model.toml "$bodies" "$POOL_ONE" "$POOL_BATCH" "$BATCH_IDS" "$POOL_V2" "$SEED" \
    "$POOL_REC" "$RECOMMEND_K" "$POOL_TEXTS" "$TEXT_MAX_CHARS" <<'PY'
import json, sys, tomllib
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq

snap, manifest_path, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
pool_one, pool_batch, batch_ids, pool_v2, seed, pool_rec, rec_k, pool_texts, text_max_chars = map(int, sys.argv[4:13])
manifest = tomllib.loads(Path(manifest_path).read_text())
features = manifest["features"]
table = pq.read_table(snap, columns=["customer_id", *features])
ids = table.column("customer_id").to_numpy(zero_copy_only=False).astype(str)
n = len(ids)
rng = np.random.default_rng(seed)
dump = lambda obj: json.dumps(obj, separators=(",", ":"))

with open(out / "churn-1.jsonl", "w") as f:
    for i in rng.choice(n, size=min(pool_one, n), replace=False):
        f.write(dump({"customer_ids": [ids[i]]}) + "\n")
with open(out / f"churn-{batch_ids}.jsonl", "w") as f:
    for _ in range(pool_batch):
        f.write(dump({"customer_ids": ids[rng.choice(n, size=min(batch_ids, n), replace=False)].tolist()}) + "\n")

# v2: whole rows in manifest order; JSON has no NaN, so only rows without a missing feature.
matrix = np.column_stack([pc.cast(table.column(c), pa.float32(), safe=False).to_numpy(zero_copy_only=False) for c in features])
complete = np.flatnonzero(~np.isnan(matrix).any(axis=1))
with open(out / "v2-1.jsonl", "w") as f:
    for i in rng.choice(complete, size=min(pool_v2, len(complete)), replace=False):
        data = "[" + ",".join(str(v) for v in matrix[i]) + "]"
        f.write('{"inputs":[{"name":%s,"shape":[1,%d],"datatype":"FP32","data":%s}]}\n'
                % (json.dumps(manifest["input"]), len(features), data))

# Drawn after the pools above, so that those stay the same bodies for a given seed.
with open(out / f"recommend-{rec_k}.jsonl", "w") as f:
    for i in rng.choice(n, size=min(pool_rec, n), replace=False):
        f.write(dump({"customer_ids": [ids[i]], "k": rec_k}) + "\n")

# Sentiment: distinct short texts from the generator the model was trained with (another seed than training's 42).
sys.path.insert(0, "scripts")
import feedback_corpus
texts = [e.text for e in feedback_corpus.generate_corpus(2 * pool_texts, seed=seed) if len(e.text) <= text_max_chars]
texts = texts[:pool_texts]
with open(out / "sentiment-1.jsonl", "w") as f:
    for text in texts:
        f.write(dump({"texts": [text]}) + "\n")

# Engagement (scenarios i, j, k, l): drawn last, so the pools above stay the same bodies for a given seed.
with open(out / "churn-1-explain.jsonl", "w") as f:
    for i in rng.choice(n, size=min(pool_one, n), replace=False):
        f.write(dump({"customer_ids": [ids[i]], "explain": 3}) + "\n")
with open(out / f"churn-{batch_ids}-explain.jsonl", "w") as f:
    for _ in range(pool_batch):
        f.write(dump({"customer_ids": ids[rng.choice(n, size=min(batch_ids, n), replace=False)].tolist(),
                      "explain": 3}) + "\n")
with open(out / "insights-1.jsonl", "w") as f:
    for i in rng.choice(n, size=min(pool_one, n), replace=False):
        f.write(dump({"customer_ids": [ids[i]], "k": 3}) + "\n")

print(f"{n:,} customers; pools: {min(pool_one, n):,} x 1 id, {pool_batch:,} x {batch_ids} ids, "
      f"{min(pool_v2, len(complete)):,} v2 rows ({len(complete):,} complete rows), "
      f"{min(pool_rec, n):,} x 1 id k={rec_k}, {len(texts):,} texts (<= {text_max_chars} chars, "
      f"median {int(np.median([len(t) for t in texts]))})", file=sys.stderr)
if len(texts) < pool_texts:
    print(f"note: the generator gave {len(texts):,} texts of at most {text_max_chars} characters, "
          f"not {pool_texts:,}", file=sys.stderr)
PY
}

# Scenario r: outcome batches of 100 events, every event id distinct across the pool, customers from the snapshot.
make_outcome_bodies() {
  want r || return 0
  log "drawing outcome bodies ..."
  "$BPY" - "$SNAPSHOT" "$bodies/outcomes-100.jsonl" "$POOL_OUTCOMES" "$SEED" <<'PY'
import json, sys
import numpy as np, pyarrow.parquet as pq
snap, out, pool, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = pq.read_table(snap, columns=["customer_id"]).column("customer_id").to_numpy(zero_copy_only=False).astype(str)
rng = np.random.default_rng(seed)
outcomes = ["accepted", "declined", "no_response", "churned", "retained"]
actions = ["retention_call", "discount_offer", "cross_sell", "nurture_email", "no_action"]
with open(out, "w") as f:
    for b in range(pool):
        events = [{"event_id": f"lt-{seed}-{b}-{i}", "customer_id": ids[c], "action": actions[c % 5],
                   "channel": "email", "outcome": outcomes[(c + i) % 5], "occurred_at": "2026-11-30T14:05:00Z"}
                  for i, c in enumerate(rng.integers(0, len(ids), 100))]
        f.write(json.dumps({"events": events}, separators=(",", ":")) + "\n")
PY
}

# Fixed bodies of scenarios o, p, q: one row as binary tensors, and the same 100 rows as v2 JSON and as binary; the
# binary bodies' JSON header lengths go to <file>.len.
make_binary_bodies() {
  "$BPY" - "$bodies" "$SEED" <<'PY'
import json, struct, sys
from pathlib import Path
out, seed = Path(sys.argv[1]), int(sys.argv[2])
rows = [json.loads(line)["inputs"][0] for line in open(out / "v2-1.jsonl")][:100]
name, width = rows[0]["name"], rows[0]["shape"][1]
def binary(values, n, path):
    raw = struct.pack(f"<{len(values)}f", *values)
    header = json.dumps({"inputs": [{"name": name, "shape": [n, width], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]},
                        separators=(",", ":")).encode()
    path.write_bytes(header + raw)
    (path.parent / (path.name + ".len")).write_text(str(len(header)))
binary(rows[0]["data"], 1, out / "v2-1.bin")
flat = [v for r in rows for v in r["data"]]
binary(flat, len(rows), out / "v2-100.bin")
(out / "v2-100.json").write_text(json.dumps({"inputs": [{"name": name, "shape": [len(rows), width],
                                                         "datatype": "FP32", "data": flat}]}, separators=(",", ":")))
PY
}

# Checks a few bodies of a pool against a server: status 200, one well-formed result per item (the ceiling's
# constant answers are checked for shape only). save=FILE keeps crmscore's scores; compare=FILE checks the
# reference's against them (parity within 1e-4; recommendations: the same item ids in the same order).
check_replies() { # label url kind(churn|v2|sentiment|recommend) body_file [save=FILE|compare=FILE]
  "$BPY" - "$@" <<'PY'
import itertools, json, math, sys, tomllib, urllib.request
import pyarrow.parquet as pq
label, url, kind, body_file = sys.argv[1:5]
mode, _, parity = sys.argv[5].partition("=") if len(sys.argv) > 5 else ("", "", "")
strict = label != "ceiling"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with open(body_file) as f:
    bodies = list(itertools.islice(f, 5 if kind in ("churn", "v2") else 100))
if kind == "sentiment":
    labels = tomllib.load(open("models/sentiment/model.toml", "rb"))["labels"]
if kind == "recommend" and strict:
    rec = tomllib.load(open("models/recommendation/model.toml", "rb"))
    catalogue = set(pq.read_table(f"models/recommendation/{rec['items']}", columns=["item_id"]).column(0).to_pylist())
scores = {}  # item key -> what parity compares
for body in bodies:
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with opener.open(req, timeout=30) as r:
        assert r.status == 200, f"{label}: HTTP {r.status}"
        reply = json.load(r)
    if kind == "v2":
        out = reply["outputs"][0]
        assert out["shape"] == [1, 2] and abs(sum(out["data"]) - 1) < 1e-4, f"{label}: bad v2 reply {reply}"
        continue
    request = json.loads(body)
    results = reply["results"]
    if kind == "sentiment":
        texts = request["texts"]
        assert len(results) == len(texts), f"{label}: {len(results)} results for {len(texts)} texts"
        for text, r in zip(texts, results):
            assert "label" in r and "scores" in r, f"{label}: {r}"
            if strict:
                p = r["scores"]
                assert sorted(p) == sorted(labels) and abs(sum(p.values()) - 1) < 1e-4, f"{label}: {r}"
                assert r["label"] == max(labels, key=lambda l: p[l]), f"{label}: label is not the argmax: {r}"
            scores[text] = r
        continue
    ids = request["customer_ids"]
    assert [r["customer_id"] for r in results] == ids, f"{label}: results do not match the ids"
    for r in results:
        assert "error" not in r, f"{label}: per-item error {r}"
        if kind == "insights":
            assert 0.0 <= r["churn"]["probability"] <= 1.0 and len(r["churn"]["reasons"]) == 3, f"{label}: {r}"
            assert r["segment"]["key"] and r["next_best_action"]["rule"], f"{label}: {r}"
            assert len(r["offers"]) <= request.get("k", 3), f"{label}: {r}"
            continue
        if "explain" in request:
            reasons = r["reasons"]
            sizes = [abs(x["contribution"]) for x in reasons]
            assert len(reasons) == request["explain"] and sizes == sorted(sizes, reverse=True), f"{label}: {r}"
        if kind == "recommend":
            items, k = r["items"], request.get("k", 10)
            assert len(items) == k and all("item_id" in i and "score" in i for i in items), f"{label}: {r}"
            if strict:
                ranked = [i["score"] for i in items]
                assert r["cold_start"] is False, f"{label}: a snapshot customer got a cold start: {r}"
                assert all(a >= b for a, b in zip(ranked, ranked[1:])), f"{label}: items not best first: {r}"
                assert len({i["item_id"] for i in items}) == k, f"{label}: an item twice: {r}"
                assert all(i["item_id"] in catalogue for i in items), f"{label}: an item not in the catalogue: {r}"
            scores[r["customer_id"]] = [[i["item_id"], i["score"]] for i in items]
        else:
            assert 0.0 <= r["churn_probability"] <= 1.0 and r["risk"] in ("low", "medium", "high"), f"{label}: {r}"
            scores[r["customer_id"]] = r["churn_probability"]
msg = f"{label} {kind}: {len(bodies)} replies OK"
if mode == "save":
    with open(parity, "w") as f:
        json.dump(scores, f)
elif mode == "compare":
    try:
        with open(parity) as f:
            theirs = json.load(f)
    except FileNotFoundError:
        theirs = None
        msg += f" (no crmscore replies in {parity} to compare with)"
    if theirs is not None:
        common = sorted(scores.keys() & theirs.keys())
        assert common, f"{label}: no item in common with crmscore's replies in {parity}"
        if kind == "sentiment":
            diffs = [abs(scores[t]["scores"][l] - theirs[t]["scores"][l]) for t in common for l in labels]
            same = [t for t in common if scores[t]["label"] == theirs[t]["label"]]
            assert len(same) == len(common), f"{label}: another label than crmscore for {len(common) - len(same)} texts"
            what = "labels and scores"
        elif kind == "recommend":
            differ = [c for c in common if [i for i, _ in scores[c]] != [i for i, _ in theirs[c]]]
            assert not differ, (f"{label}: other items than crmscore for {differ[:3]}: "
                                f"{scores[differ[0]]} vs {theirs[differ[0]]}")
            diffs = [abs(a - b) for c in common for (_, a), (_, b) in zip(scores[c], theirs[c])]
            what = "items and scores"
        else:
            diffs = [abs(scores[c] - theirs[c]) for c in common]
            what = "probabilities"
        worst = max(diffs)
        assert worst < 1e-4 and not math.isnan(worst), f"{label}: differs from crmscore by {worst:.2e}"
        unit = "texts" if kind == "sentiment" else "ids"
        msg += f", same {what} as crmscore on {len(common)} {unit} (max diff {worst:.1e})"
print(msg, file=sys.stderr)
PY
}

# --- servers ----------------------------------------------------------------------------------------------------------
SERVER_PID=""
SERVER_NAME=""
start_server() { # name port cmd...
  local name="$1" port="$2"
  shift 2
  port_busy "$port" && die "port $port is already in use (set PORT_BASE)"
  taskset -c "$SERVER_CPUS" "$@" >"$logs/$name.log" 2>&1 &
  SERVER_PID=$!
  SERVER_NAME="$name"
  PIDS+=("$SERVER_PID")
  SERVER_CMD="taskset -c $SERVER_CPUS $*"
  log "started $name (pid $SERVER_PID): $SERVER_CMD"
}
wait_ready() { # probe cmd... (exit 0 when ready); bounded by READY_TIMEOUT
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$logs/$SERVER_NAME.log" >&2
      die "$SERVER_NAME exited before it was ready (log: $logs/$SERVER_NAME.log)"
    fi
    ((SECONDS < deadline)) || die "$SERVER_NAME not ready after ${READY_TIMEOUT}s (log: $logs/$SERVER_NAME.log)"
    sleep 0.2
  done
  log "$SERVER_NAME ready ($(rss_mb "$SERVER_PID") MB RSS)"
}
stop_server() {
  [[ -n "$SERVER_PID" ]] && stop "$SERVER_PID"
  SERVER_PID=""
}
probe_get() { curl -sf --noproxy '*' -m 2 -o /dev/null "$1"; }
probe_post() { curl -sf --noproxy '*' -m 2 -o /dev/null -H 'content-type: application/json' -d "$2" "$1"; }

cpu_ticks() { # utime + stime of the whole process (all threads), in clock ticks
  local s
  s="$(<"/proc/$1/stat")"
  s="${s##*) }"
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13}))
}
cpu_stat() { # "cpu numbers" -> "busy total" jiffies of those CPUs from /proc/stat (busy: user nice system irq softirq steal)
  awk -v want=" $* " '$1 ~ /^cpu[0-9]+$/ && index(want, " " substr($1, 4) " ") {
    busy += $2 + $3 + $4 + $7 + $8 + $9; total += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
    END { print busy + 0, total + 0 }' /proc/stat
}
busy_pct() { # "busy total" before, "busy total" after -> busy % over the interval
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2];
    printf "%.0f", (t > 0) ? (y[1] - x[1]) / t * 100 : 0 }'
}
# Warns when the CPUs the test will use are already busy (a compiler, another test): figures would be disturbed.
check_quiet() {
  local s0 c0 s1 c1 sb cb
  s0="$(cpu_stat "$server_cpu_list")"
  c0="$(cpu_stat "$client_cpu_list")"
  sleep 2
  s1="$(cpu_stat "$server_cpu_list")"
  c1="$(cpu_stat "$client_cpu_list")"
  sb="$(busy_pct "$s0" "$s1")"
  cb="$(busy_pct "$c0" "$c1")"
  if ((sb > 10 || cb > 10)); then
    log "WARNING: before the test the server CPUs ($SERVER_CPUS) were ${sb}% busy and the load-generator CPUs" \
      "($CLIENT_CPUS) ${cb}%: other work is running, the figures will be disturbed"
    QUIET_NOTE="NOT quiet before the test: server CPUs ${sb}% busy, load-generator CPUs ${cb}% busy"
  else
    QUIET_NOTE="quiet before the test (server CPUs ${sb}% busy, load-generator CPUs ${cb}%)"
  fi
}
# `times` (a builtin, so run in this shell, not a subshell) writes the CPU time of this shell's reaped children on
# its second line: the difference around one oha run is the load generator's own CPU time.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
clk_tck="$(getconf CLK_TCK)"

# --- load -------------------------------------------------------------------------------------------------------------
oha_args() { # duration connections body_file url
  OHA_ARGS=(-z "$1" -c "$2" -w --no-tui --worker-threads "$client_threads" --output-format json
    -m POST -T application/json -t 30s -Z "$3" "$4")
}
warm_up() { # url body_file
  oha_args "$WARMUP" "$CONCURRENCY" "$2" "$1"
  log "warming up $SERVER_NAME for $WARMUP ..."
  run_bounded $((warmup_s + 60)) taskset -c "$CLIENT_CPUS" "$OHA" "${OHA_ARGS[@]}" >/dev/null
}

# One scenario: DURATION of load, then one line and one row of $results.
measure() { # key label connections ids_per_request body_file url [duration]
  oha_args "${7:-$DURATION}" "$3" "$5" "$6"
  measure_oha "$1" "$2" "$3" "$4" "${7:-$DURATION}"
}
# One binary scenario: a fixed body file (oha -D, binary-safe) sent with Triton's header length.
measure_binary() { # key label connections rows body_file header_length url
  OHA_ARGS=(-z "$DURATION" -c "$3" -w --no-tui --worker-threads "$client_threads" --output-format json
    -m POST -T application/octet-stream -H "Inference-Header-Content-Length: $6" -t 30s -D "$5" "$7")
  measure_oha "$1" "$2" "$3" "$4" "$DURATION"
}
# Runs oha with OHA_ARGS for one scenario, then one line and one row of $results.
measure_oha() { # key label connections ids_per_request duration
  local key="$1" label="$2" conns="$3" ids="$4" dur="$5"
  local out="$bench/oha-$key.json" t0 t1 w0 w1 s0 s1 c0 c1 limit
  limit=$(($(seconds_of "$dur") + 90))
  t0="$(cpu_ticks "$SERVER_PID")"
  s0="$(cpu_stat "$server_cpu_list")"
  c0="$(cpu_stat "$client_cpu_list")"
  w0="$(date +%s.%N)"
  times >"$bench/times0"
  run_bounded "$limit" taskset -c "$CLIENT_CPUS" "$OHA" "${OHA_ARGS[@]}" >"$out" || die "oha failed for scenario $key"
  times >"$bench/times1"
  w1="$(date +%s.%N)"
  t1="$(cpu_ticks "$SERVER_PID")"
  s1="$(cpu_stat "$server_cpu_list")"
  c1="$(cpu_stat "$client_cpu_list")"
  summarize "$key" "$label" "$SERVER_NAME" "$conns" "$ids" "$out" "$t0" "$t1" "$w0" "$w1" "$(rss_kb "$SERVER_PID")" \
    "$(busy_pct "$s0" "$s1")" "$(busy_pct "$c0" "$c1")" "$bench/times0" "$bench/times1"
}
# One gRPC scenario: as measure, with examples/grpc_load.rs (same JSON summary as oha) in place of oha.
measure_grpc() { # key label calls_in_flight connections body_file [duration]
  local key="$1" label="$2" conns="$3" links="$4" file="$5" dur="${6:-$DURATION}"
  local out="$bench/grpc-$key.json" t0 t1 w0 w1 s0 s1 c0 c1 limit
  limit=$(($(seconds_of "$dur") + 90))
  t0="$(cpu_ticks "$SERVER_PID")"
  s0="$(cpu_stat "$server_cpu_list")"
  c0="$(cpu_stat "$client_cpu_list")"
  w0="$(date +%s.%N)"
  times >"$bench/times0"
  run_bounded "$limit" taskset -c "$CLIENT_CPUS" "${GRPC_LOAD[@]}" --bodies "$file" --concurrency "$conns" \
    --connections "$links" --duration "$dur" >"$out" || die "grpc_load failed for scenario $key"
  times >"$bench/times1"
  w1="$(date +%s.%N)"
  t1="$(cpu_ticks "$SERVER_PID")"
  s1="$(cpu_stat "$server_cpu_list")"
  c1="$(cpu_stat "$client_cpu_list")"
  summarize "$key" "$label" "$SERVER_NAME" "$conns" 1 "$out" "$t0" "$t1" "$w0" "$w1" "$(rss_kb "$SERVER_PID")" \
    "$(busy_pct "$s0" "$s1")" "$(busy_pct "$c0" "$c1")" "$bench/times0" "$bench/times1"
}
summarize() {
  "$BPY" - "$@" "$clk_tck" "$server_threads" "$client_threads" "$results" <<'PY'
import json, re, sys
(key, label, server, conns, ids, out, t0, t1, w0, w1, rss_kb, srv_busy, gen_busy, times0, times1, clk_tck,
 srv_cpus, gen_cpus, results) = sys.argv[1:]
srv_busy, gen_busy, srv_cpus, gen_cpus = int(srv_busy), int(gen_busy), int(srv_cpus), int(gen_cpus)
wall = float(w1) - float(w0)

def children_cpu(path):  # second line of `times`: children's user and sys time, e.g. "0m1.250s 0m0.310s"
    with open(path) as f:
        line = f.read().splitlines()[1]
    return sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", line))

oha = (children_cpu(times1) - children_cpu(times0)) / wall * 100 / gen_cpus  # % of the load generator's CPUs
with open(out) as f:
    r = json.load(f)
s, pct = r["summary"], r["latencyPercentiles"]
ok = sum(n for code, n in r["statusCodeDistribution"].items() if code.startswith("2"))
bad = sum(n for code, n in r["statusCodeDistribution"].items() if not code.startswith("2"))
errors = bad + sum(r["errorDistribution"].values())
rps = ok / s["total"] if s["total"] else 0.0
rows = rps * int(ids)
ms = lambda q: (pct.get(q) or 0.0) * 1000
cpu = (int(t1) - int(t0)) / int(clk_tck) / wall * 100
rss = int(rss_kb) / 1024
other_srv = max(0.0, srv_busy - cpu / srv_cpus)  # % of the server CPUs busy with work not charged to the server
other_gen = max(0.0, gen_busy - oha)
row = [key, label, server, conns, ids, f"{rps:.1f}", f"{rows:.1f}", f"{ms('p50'):.3f}", f"{ms('p90'):.3f}",
       f"{ms('p99'):.3f}", str(errors), f"{cpu:.0f}", f"{rss:.1f}", f"{oha:.0f}", f"{other_srv:.0f}", f"{other_gen:.0f}"]
with open(results, "a") as f:
    f.write("\t".join(row) + "\n")
print(f"{key:<5} {label:<28} c={int(conns):<4} req/s {rps:>9.1f}  rows/s {rows:>10.1f}  "
      f"p50 {ms('p50'):7.2f}  p90 {ms('p90'):7.2f}  p99 {ms('p99'):7.2f} ms  errors {errors:<5} "
      f"cpu {cpu:3.0f}%  rss {rss:7.1f} MB  oha {oha:3.0f}%  other {other_srv:.0f}%/{other_gen:.0f}%", flush=True)
if oha >= 90:
    print(f"      note: oha used {oha:.0f}% of its CPUs: req/s may be the load generator's limit, not the server's")
if other_srv > 25 or other_gen > 25:
    print(f"      warning: besides the server and oha, the server CPUs were {other_srv:.0f}% and the load-generator CPUs "
          f"{other_gen:.0f}% busy (other processes, or kernel network work): figures disturbed")
if errors:
    detail = {**{c: n for c, n in r["statusCodeDistribution"].items() if not c.startswith("2")}, **r["errorDistribution"]}
    print(f"      errors: {detail}", flush=True)
PY
}

# --- phases -----------------------------------------------------------------------------------------------------------
crm_port="$PORT_BASE"
grpc_port=$((PORT_BASE + 1))
GRPC_LOAD=(target/release/examples/grpc_load --target "127.0.0.1:$grpc_port" --model churn --threads "$client_threads")
ceiling_port=$((PORT_BASE + 10))
ref_port=$((PORT_BASE + 20))
one="$bodies/churn-1.jsonl"
batch="$bodies/churn-$BATCH_IDS.jsonl"
v2="$bodies/v2-1.jsonl"
texts="$bodies/sentiment-1.jsonl"
recs="$bodies/recommend-$RECOMMEND_K.jsonl"
one_explain="$bodies/churn-1-explain.jsonl"
batch_explain="$bodies/churn-$BATCH_IDS-explain.jsonl"
insights="$bodies/insights-1.jsonl"
parity="$bench/parity.json"  # crmscore's replies, which the reference's must match
parity_text="$bench/parity-sentiment.json"
parity_rec="$bench/parity-recommend.json"

start_crmscore() {
  local url="http://127.0.0.1:$crm_port" m grpc=()
  if want m n; then
    port_busy "$grpc_port" && die "port $grpc_port is already in use (set PORT_BASE)"
    grpc=(--grpc-bind "127.0.0.1:$grpc_port")
  fi
  # shellcheck disable=SC2086
  rm -rf "$bench/feedback"
  start_server crmscore "$crm_port" target/release/crmscore serve --bind "127.0.0.1:$crm_port" --models models \
    --snapshots "$SNAPSHOT" --http-workers "$server_threads" --feedback-dir "$bench/feedback" "${grpc[@]}" \
    $CRMSCORE_ARGS
  CRMSCORE_CMD="$SERVER_CMD"
  wait_ready probe_get "$url/v2/health/ready"
  for m in churn recommendation sentiment segmentation; do
    probe_get "$url/v2/models/$m/ready" || die "crmscore does not serve model '$m' (log: $logs/crmscore.log)"
  done
  rm -f "$parity" "$parity_text" "$parity_rec"
  check_replies crmscore "$url/v1/churn/score" churn "$one" "save=$parity"
  check_replies crmscore "$url/v1/churn/score" churn "$batch"
  check_replies crmscore "$url/v2/models/churn/infer" v2 "$v2"
  if want m n; then run_bounded 60 "${GRPC_LOAD[@]}" --bodies "$v2" --check 5 || die "bad gRPC replies"; fi
  check_replies crmscore "$url/v1/sentiment" sentiment "$texts" "save=$parity_text"
  check_replies crmscore "$url/v1/recommendations" recommend "$recs" "save=$parity_rec"
  check_replies crmscore "$url/v1/churn/score" churn "$one_explain"
  check_replies crmscore "$url/v1/churn/score" churn "$batch_explain"
  check_replies crmscore "$url/v1/insights" insights "$insights"
}

phase_crmscore() {
  local url="http://127.0.0.1:$crm_port" c sweep_keys=()
  for c in $SWEEP; do sweep_keys+=("f$c"); done
  want a b c "${sweep_keys[@]}" g h i j k l m n o p q r || return 0
  start_crmscore
  if want a b c "${sweep_keys[@]}"; then warm_up "$url/v1/churn/score" "$one"; fi
  if want a; then measure a "crmscore churn 1 id" "$CONCURRENCY" 1 "$one" "$url/v1/churn/score"; fi
  if want b; then
    measure b "crmscore churn $BATCH_IDS ids" "$BATCH_CONCURRENCY" "$BATCH_IDS" "$batch" "$url/v1/churn/score"
  fi
  if want c; then measure c "crmscore v2 infer 1 row" "$CONCURRENCY" 1 "$v2" "$url/v2/models/churn/infer"; fi
  if want m n; then
    log "warming up crmscore's gRPC for $WARMUP ..."
    run_bounded $((warmup_s + 60)) taskset -c "$CLIENT_CPUS" "${GRPC_LOAD[@]}" --bodies "$v2" \
      --concurrency "$CONCURRENCY" --duration "$WARMUP" >/dev/null
  fi
  if want m; then measure_grpc m "crmscore gRPC infer 1 row" "$CONCURRENCY" "$CONCURRENCY" "$v2"; fi
  if want n; then measure_grpc n "crmscore gRPC infer 1 row 1 conn" "$CONCURRENCY" 1 "$v2"; fi
  if want o; then
    measure_binary o "crmscore v2 infer 1 row binary" "$CONCURRENCY" 1 "$bodies/v2-1.bin" \
      "$(cat "$bodies/v2-1.bin.len")" "$url/v2/models/churn/infer"
  fi
  if want p; then
    OHA_ARGS=(-z "$DURATION" -c "$BATCH_CONCURRENCY" -w --no-tui --worker-threads "$client_threads" --output-format json
      -m POST -T application/json -t 30s -D "$bodies/v2-100.json" "$url/v2/models/churn/infer")
    measure_oha p "crmscore v2 infer 100 rows JSON" "$BATCH_CONCURRENCY" 100 "$DURATION"
  fi
  if want q; then
    measure_binary q "crmscore v2 infer 100 rows binary" "$BATCH_CONCURRENCY" 100 "$bodies/v2-100.bin" \
      "$(cat "$bodies/v2-100.bin.len")" "$url/v2/models/churn/infer"
  fi
  for c in $SWEEP; do
    if want "f$c"; then measure "f$c" "crmscore sweep 1 id" "$c" 1 "$one" "$url/v1/churn/score"; fi
  done
  measure_text_and_recs g h crmscore "$url"
  if want i j; then warm_up "$url/v1/churn/score" "$one_explain"; fi
  if want i; then measure i "crmscore churn 1 id explain 3" "$CONCURRENCY" 1 "$one_explain" "$url/v1/churn/score"; fi
  if want j; then
    measure j "crmscore churn $BATCH_IDS ids explain 3" "$BATCH_CONCURRENCY" "$BATCH_IDS" "$batch_explain" \
      "$url/v1/churn/score"
  fi
  if want k l; then warm_up "$url/v1/insights" "$insights"; fi
  if want k; then measure k "crmscore insights 1 id" "$CONCURRENCY" 1 "$insights" "$url/v1/insights"; fi
  if want l; then measure l "crmscore insights 1 id" 1 1 "$insights" "$url/v1/insights"; fi
  # No warm-up: it would send these bodies once already, and the run would measure duplicates.
  if want r; then
    measure r "crmscore outcomes 100 events" "$BATCH_CONCURRENCY" 100 "$bodies/outcomes-100.jsonl" "$url/v1/outcomes"
  fi
  stop_server
}

# The sentiment (1 text) and recommendation (1 id, k=RECOMMEND_K) runs of one server, each when SCENARIOS asks.
measure_text_and_recs() { # sentiment_key recommend_key server_label url
  if want "$1"; then
    warm_up "$4/v1/sentiment" "$texts"
    measure "$1" "$3 sentiment 1 text" "$CONCURRENCY" 1 "$texts" "$4/v1/sentiment"
  fi
  if want "$2"; then
    warm_up "$4/v1/recommendations" "$recs"
    measure "$2" "$3 recommend k=$RECOMMEND_K" "$CONCURRENCY" 1 "$recs" "$4/v1/recommendations"
  fi
}

ceiling_serves() { # route body_file key: whether the ceiling answers the route with 200 (else a note, no run)
  local code
  code="$(curl -s --noproxy '*' -m 5 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d "$(head -n 1 "$2")" "http://127.0.0.1:$ceiling_port$1")" || true
  [[ "$code" == 200 ]] && return 0
  log "no $3 run: the ceiling (examples/ceiling.rs) answers POST $1 with HTTP $code, it does not serve that route"
  return 1
}

phase_ceiling() {
  local url="http://127.0.0.1:$ceiling_port"
  want d1 "d$BATCH_IDS" dg dh || return 0
  start_server ceiling "$ceiling_port" target/release/examples/ceiling --bind "127.0.0.1:$ceiling_port" \
    --workers "$server_threads"
  CEILING_CMD="$SERVER_CMD"
  wait_ready probe_post "$url/v1/churn/score" '{"customer_ids":["C0000000"]}'
  check_replies ceiling "$url/v1/churn/score" churn "$one"
  if want d1 "d$BATCH_IDS"; then warm_up "$url/v1/churn/score" "$one"; fi
  if want d1; then measure d1 "ceiling churn 1 id" "$CONCURRENCY" 1 "$one" "$url/v1/churn/score"; fi
  if want "d$BATCH_IDS"; then
    measure "d$BATCH_IDS" "ceiling churn $BATCH_IDS ids" "$BATCH_CONCURRENCY" "$BATCH_IDS" "$batch" \
      "$url/v1/churn/score"
  fi
  local dg=dg dh=dh # cleared when the ceiling lacks the route
  if want dg && ceiling_serves /v1/sentiment "$texts" dg; then
    check_replies ceiling "$url/v1/sentiment" sentiment "$texts"
  else dg=-; fi
  if want dh && ceiling_serves /v1/recommendations "$recs" dh; then
    check_replies ceiling "$url/v1/recommendations" recommend "$recs"
  else dh=-; fi
  measure_text_and_recs "$dg" "$dh" ceiling "$url"
  stop_server
}

phase_reference() {
  local url="http://127.0.0.1:$ref_port"
  want e1 "e$BATCH_IDS" eg eh || return 0
  start_server reference "$ref_port" "$BPY" scripts/reference/app.py --snapshot "$SNAPSHOT" --models models \
    --host 127.0.0.1 --port "$ref_port"
  REFERENCE_CMD="$SERVER_CMD"
  wait_ready probe_get "$url/v2/health/ready"
  check_replies reference "$url/v1/churn/score" churn "$one" "compare=$parity"
  check_replies reference "$url/v1/churn/score" churn "$batch"
  check_replies reference "$url/v1/sentiment" sentiment "$texts" "compare=$parity_text"
  check_replies reference "$url/v1/recommendations" recommend "$recs" "compare=$parity_rec"
  if want e1 "e$BATCH_IDS"; then warm_up "$url/v1/churn/score" "$one"; fi
  if want e1; then measure e1 "reference churn 1 id" "$CONCURRENCY" 1 "$one" "$url/v1/churn/score"; fi
  if want "e$BATCH_IDS"; then
    measure "e$BATCH_IDS" "reference churn $BATCH_IDS ids" "$BATCH_CONCURRENCY" "$BATCH_IDS" "$batch" \
      "$url/v1/churn/score"
  fi
  measure_text_and_recs eg eh reference "$url"
  stop_server
}

commit_of() {
  local c
  c="$(git rev-parse --short HEAD 2>/dev/null)" || {
    echo "unknown (not a git checkout)"
    return
  }
  git diff --quiet HEAD -- src examples Cargo.toml Cargo.lock 2>/dev/null || c+=" + uncommitted changes in src/examples/Cargo"
  echo "$c"
}

report() {
  local cpu_model command machine pinning
  cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  machine="$(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
  machine+=", Linux $(uname -r)"
  pinning="servers on CPU(s) $SERVER_CPUS ($server_threads HTTP worker(s)), load generator on CPU(s) $CLIENT_CPUS"
  pinning+=" ($client_threads thread(s)); one server at a time"
  command="DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY SNAPSHOT_CUSTOMERS=$SNAPSHOT_CUSTOMERS"
  command+=" SKIP_REFERENCE=$SKIP_REFERENCE SWEEP=\"$SWEEP\" SERVER_CPUS=$SERVER_CPUS CLIENT_CPUS=$CLIENT_CPUS"
  command+=" RECOMMEND_K=$RECOMMEND_K SCENARIOS=\"$SCENARIOS\" scripts/loadtest.sh"
  oha_args "$DURATION" "<connections>" "<bodies.jsonl>" "<url>"
  env \
    R_DATE="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" \
    R_MACHINE="$machine" \
    R_PINNING="$pinning" \
    R_COMMAND="$command" \
    R_OHA="taskset -c $CLIENT_CPUS $OHA ${OHA_ARGS[*]}" \
    R_OHA_VERSION="$("$OHA" --version | cut -d' ' -f2)" \
    R_SERVERS="$(printf '%s\n' "${CRMSCORE_CMD:-}" "${CEILING_CMD:-}" "${REFERENCE_CMD:-}" | sed '/^$/d')" \
    R_COMMIT="$(commit_of)" \
    R_SNAPSHOT="$SNAPSHOT ($SNAPSHOT_CUSTOMERS customers)" \
    R_BATCH="$BATCH_IDS" \
    R_QUIET="${QUIET_NOTE:-}" \
    "$BPY" - "$results" "$bench/loadtest.md" "$bench/latency_vs_concurrency.png" <<'PY'
import os, sys
results, md_path, png_path = sys.argv[1:4]
batch = os.environ["R_BATCH"]
cols = ["key", "label", "server", "conns", "ids", "rps", "rows", "p50", "p90", "p99", "errors", "cpu", "rss",
        "oha", "other_srv", "other_gen"]
rows = {}
with open(results) as f:
    for line in f:
        v = dict(zip(cols, line.rstrip("\n").split("\t")))
        for k in ("rps", "rows", "p50", "p90", "p99", "cpu", "rss", "oha", "other_srv", "other_gen"):
            v[k] = float(v[k])
        rows[v["key"]] = v

# crmscore scenario -> the ceiling / reference scenario of the same request size and concurrency
pairs = {"a": ("d1", "e1"), "b": (f"d{batch}", f"e{batch}"), "c": ("d1", "e1"),
         "g": ("dg", "eg"), "h": ("dh", "eh")}
figures = [("req/s", "rps"), ("rows/s", "rows"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("CPU", "cpu"),
           ("RSS", "rss")]

def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"

lines = []
for key, (ceiling, reference) in pairs.items():
    if key not in rows:
        continue
    for name, other in (("ceiling", ceiling), ("reference", reference)):
        if other in rows:
            o = rows[other]
            lines.append((key, name, other, [ratio(rows[key][f], o[f]) for _, f in figures]))

print("\ncrmscore / other (req/s, rows/s above 1x = crmscore faster; latency, CPU, RSS below 1x = crmscore lower):")
for key, name, other, rs in lines:
    print(f"  {key} vs {name:<9} ({other:>4}): " + "  ".join(f"{n} {r}" for (n, _), r in zip(figures, rs)))

md = [f"# crmscore load test", "",
      f"- date: {os.environ['R_DATE']}",
      f"- machine: {os.environ['R_MACHINE']}",
      f"- pinning: {os.environ['R_PINNING']}",
      f"- snapshot: {os.environ['R_SNAPSHOT']}; request bodies: random real ids / complete rows over the whole snapshot"
      "; g: one short generated feedback text each (scripts/feedback_corpus.py)",
      f"- crmscore commit: {os.environ['R_COMMIT']}",
      f"- command: `{os.environ['R_COMMAND']}`",
      f"- load generator: oha {os.environ['R_OHA_VERSION']} (-Z: a random line of the body file per request): "
      f"`{os.environ['R_OHA']}`",
      "- servers:", *[f"  - `{s}`" for s in os.environ["R_SERVERS"].splitlines()],
      "",
      f"- {os.environ['R_QUIET']}", "",
      "Errors = non-2xx replies + socket errors. CPU = server utime+stime over the run / wall time (100% = one core). "
      "RSS = server resident memory at the end of the run. oha % = the load generator's own CPU time over the run, as "
      "a share of its CPUs (near 100%: req/s is the client's limit, not the server's). Other % = the rest of the busy "
      "time of the server's / load generator's CPUs (/proc/stat): other processes, or kernel network work not charged "
      "to either; high values mean disturbed figures.", "",
      "| scenario | server | conns | ids/req | req/s | rows/s | p50 ms | p90 ms | p99 ms | errors | CPU % | RSS MB "
      "| oha % | other % (server CPUs / oha CPUs) |",
      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
for v in rows.values():
    md.append(f"| {v['key']} {v['label']} | {v['server']} | {v['conns']} | {v['ids']} | {v['rps']:.0f} | {v['rows']:.0f} | "
              f"{v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} | {v['errors']} | {v['cpu']:.0f} | {v['rss']:.1f} "
              f"| {v['oha']:.0f} | {v['other_srv']:.0f} / {v['other_gen']:.0f} |")
if lines:
    md += ["", "crmscore as a ratio of the ceiling / reference run of the same request size "
           "(c, the v2 route, is set against the 1-id churn runs; g, sentiment, against dg / eg; h, recommendations, "
           "against dh / eh).", "",
           "| crmscore | vs | " + " | ".join(n for n, _ in figures) + " |",
           "|---|---|" + "--:|" * len(figures)]
    md += [f"| {k} | {n} ({o}) | " + " | ".join(rs) + " |" for k, n, o, rs in lines]

# Engagement targets (issue 9), each within this run: explained and insights req/s as shares of plain churn.
shares = [("i", "a", "1-id churn with explain 3 / without (target >= 60%)"),
          ("k", "a", "1-id insights / 1-id churn (target >= 30%)")]
eng = [f"- {what}: {rows[x]['rps'] / rows[y]['rps'] * 100:.0f}% ({rows[x]['rps']:.0f} / {rows[y]['rps']:.0f} req/s)"
       for x, y, what in shares if x in rows and y in rows and rows[y]["rps"]]
if "j" in rows:
    eng.append(f"- {batch}-id churn with top-3 reasons: {rows['j']['rows']:.0f} customers/s (target >= 150,000)")
if "l" in rows:
    eng.append(f"- 1-id insights at 1 connection: p50 {rows['l']['p50']:.3f} ms, client included (target < 1 ms)")
if eng:
    print("\nengagement:\n" + "\n".join(eng))
    md += ["", "Engagement (explanations and insights) against plain churn scoring in the same run:", "", *eng]

# The same v2 call (one churn row) over gRPC against HTTP/JSON, in the same run.
grpc = [f"- {rows[x]['label']} (c={rows[x]['conns']}): {rows[x]['rps'] / rows['c']['rps']:.2f}x the req/s of c "
        f"({rows[x]['rps']:.0f} / {rows['c']['rps']:.0f}), p50 {rows[x]['p50']:.3f} vs {rows['c']['p50']:.3f} ms, "
        f"p99 {rows[x]['p99']:.3f} vs {rows['c']['p99']:.3f} ms"
        for x in ("m", "n") if x in rows and "c" in rows and rows["c"]["rps"]]
if grpc:
    print("\nv2 over gRPC against v2 over HTTP/JSON (c):\n" + "\n".join(grpc))
    md += ["", "v2 inference over gRPC (m: one HTTP/2 connection per call in flight, n: one shared connection) "
           "against HTTP/JSON (c), same rows:", "", *grpc]

# Triton's binary tensor extension against v2 JSON, in the same run (targets: o >= c; q >= 1.5x p in rows/s).
binary = [f"- {rows[x]['label']} (c={rows[x]['conns']}): {rows[x]['rows'] / rows[y]['rows']:.2f}x the rows/s of {y} "
          f"({rows[x]['rows']:.0f} / {rows[y]['rows']:.0f}), p99 {rows[x]['p99']:.3f} vs {rows[y]['p99']:.3f} ms"
          for x, y in (("o", "c"), ("q", "p")) if x in rows and y in rows and rows[y]["rows"]]
if binary:
    print("\nv2 binary tensors against v2 JSON:\n" + "\n".join(binary))
    md += ["", "v2 inference with Triton's binary tensor extension against v2 JSON, same rows:", "", *binary]

sweep = sorted((v for v in rows.values() if v["key"].startswith("f")), key=lambda v: int(v["conns"]))
if sweep:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    conns = [int(v["conns"]) for v in sweep]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(conns, [v["p50"] for v in sweep], "o-", color="tab:blue", label="crmscore p50")
    left.plot(conns, [v["p99"] for v in sweep], "s-", color="tab:orange", label="crmscore p99")
    right.plot(conns, [v["rps"] for v in sweep], "o-", color="tab:blue", label="crmscore")
    for key, style, color, name in (("d1", "^", "tab:green", "ceiling"), ("e1", "v", "tab:red", "reference")):
        if key in rows:
            v = rows[key]
            left.plot([int(v["conns"])], [v["p99"]], style, color=color, label=f"{name} p99")
            right.plot([int(v["conns"])], [v["rps"]], style, color=color, label=name)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.set_xlabel("concurrent connections")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("latency (ms)")
    left.set_title("POST /v1/churn/score, 1 id: latency")
    right.set_ylabel("requests / s")
    right.set_ylim(bottom=0)
    right.set_title("throughput")
    fig.suptitle(f"crmscore, {os.environ['R_PINNING'].split(';')[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    md += ["", f"![latency vs concurrency]({os.path.basename(png_path)})"]
with open(md_path, "w") as f:
    f.write("\n".join(md) + "\n")
print(f"\nwrote {md_path}" + (f" and {png_path}" if sweep else ""))
PY
}

soak() {
  local url="http://127.0.0.1:$crm_port/v1/churn/score" pid start now next=0 mb out="$bench/oha-soak.json"
  local t0 w0 w1 t1 s0 s1 c0 c1 deadline samples="$bench/soak.tsv"
  start_crmscore
  warm_up "$url" "$one"
  oha_args "${SOAK}s" "$CONCURRENCY" "$one" "$url"
  log "soak: churn 1 id at c=$CONCURRENCY for ${SOAK}s, RSS every ${SOAK_INTERVAL}s"
  printf 't_s\trss_mb\n' >"$samples"
  t0="$(cpu_ticks "$SERVER_PID")"
  s0="$(cpu_stat "$server_cpu_list")"
  c0="$(cpu_stat "$client_cpu_list")"
  w0="$(date +%s.%N)"
  times >"$bench/times0"
  timeout --kill-after=10 $((SOAK + 90)) taskset -c "$CLIENT_CPUS" "$OHA" "${OHA_ARGS[@]}" >"$out" &
  pid=$!
  PIDS+=("$pid")
  start=$SECONDS
  deadline=$((SECONDS + SOAK + 90))
  while :; do
    now=$((SECONDS - start))
    mb="$(rss_mb "$SERVER_PID")"
    printf '%s\t%s\n' "$now" "$mb" >>"$samples"
    printf '  t=%5ss  rss %8s MB\n' "$now" "$mb"
    kill -0 "$pid" 2>/dev/null || break
    # Until the next multiple of SOAK_INTERVAL, or until oha is done (then one last sample is taken).
    next=$((next + SOAK_INTERVAL))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < next && SECONDS < deadline)); do sleep 0.2; done
    ((SECONDS < deadline)) || die "the soak's oha run did not end in time"
  done
  wait "$pid" || die "oha failed during the soak"
  times >"$bench/times1"
  forget "$pid"
  w1="$(date +%s.%N)"
  t1="$(cpu_ticks "$SERVER_PID")"
  s1="$(cpu_stat "$server_cpu_list")"
  c1="$(cpu_stat "$client_cpu_list")"
  results="$bench/soak-results.tsv"
  : >"$results"
  summarize soak "crmscore churn 1 id (soak)" crmscore "$CONCURRENCY" 1 "$out" "$t0" "$t1" "$w0" "$w1" \
    "$(rss_kb "$SERVER_PID")" "$(busy_pct "$s0" "$s1")" "$(busy_pct "$c0" "$c1")" "$bench/times0" "$bench/times1"
  "$BPY" - "$samples" <<'PY'
import sys
with open(sys.argv[1]) as f:
    samples = [tuple(map(float, line.split("\t"))) for line in f.read().splitlines()[1:]]
(t0, first), (t1, last) = samples[0], samples[-1]
peak = max(mb for _, mb in samples)
print(f"RSS over {t1:.0f}s: {first:.1f} -> {last:.1f} MB ({last - first:+.1f} MB, {(last - first) / first * 100:+.1f}%), "
      f"peak {peak:.1f} MB")
if len(samples) >= 3:  # after the first interval (allocator and caches settled): the steady-state trend
    (ts, settled) = samples[1]
    rate = (last - settled) / (t1 - ts) * 3600 if t1 > ts else 0.0
    print(f"RSS from t={ts:.0f}s on: {settled:.1f} -> {last:.1f} MB ({last - settled:+.1f} MB, {rate:+.1f} MB/hour)")
PY
  log "samples in $samples"
  stop_server
}

# --- main -------------------------------------------------------------------------------------------------------------
setup_oha
setup_venv
build
snapshot_file
make_bodies
make_binary_bodies
make_outcome_bodies
log "oha: $OHA; servers on CPU(s) $SERVER_CPUS, load on CPU(s) $CLIENT_CPUS"
check_quiet

if [[ "$MODE" == soak ]]; then
  soak
  exit 0
fi

: >"$results"
rm -f "$parity" "$parity_text" "$parity_rec"
echo "scenario                         conns   (duration $DURATION each)"
phase_crmscore
phase_ceiling
if [[ "$SKIP_REFERENCE" == 1 ]]; then
  log "SKIP_REFERENCE=1: no Python reference run"
else
  phase_reference
fi
report
