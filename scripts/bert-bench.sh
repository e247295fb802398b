#!/usr/bin/env bash
# Texts/s of a BERT-base-shaped sentiment model (scripts/make_bert_base.py) through crmscore's HTTP API, one text per
# request, at fixed sequence lengths, with the token-budget batcher: the CPU baseline here, and the same run on a GPU.
#
#   scripts/bert-bench.sh                          CPU, fp32, lengths 16 64 128 -> .bench/bert-bench-cpu-fp32.md
#   DEVICE=cuda PRECISION=fp16 CONCURRENCY=256 scripts/bert-bench.sh   on a GPU (ORT_LIB: the CUDA build's library)
#
# Each text is exactly LENGTH tokens ([CLS] + LENGTH-2 whole-word vocabulary tokens + [SEP]), so every batch is
# LENGTH wide; a pool of 2,000 distinct texts per length, one picked at random per request (oha -Z). The server is
# the release binary, serving only this model; oha runs on CLIENT_CPUS, the server on SERVER_CPUS.
# Settings: DEVICE=cpu PRECISION=fp32 LENGTHS="16 64 128" CONCURRENCY=64 DURATION=20s WARMUP=5s PORT=18990
#   SERVER_CPUS=0 CLIENT_CPUS=1 (CPU runs; on a GPU machine give the server more) ORT_LIB= MODEL_DIR=.bench/bert-base
#   CRMSCORE_ARGS= (more server flags, e.g. --max-tokens 32768 --intra-threads 4)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
DEVICE="${DEVICE:-cpu}" PRECISION="${PRECISION:-fp32}" LENGTHS="${LENGTHS:-16 64 128}"
CONCURRENCY="${CONCURRENCY:-64}" DURATION="${DURATION:-20s}" WARMUP="${WARMUP:-5s}" PORT="${PORT:-18990}"
SERVER_CPUS="${SERVER_CPUS:-0}" CLIENT_CPUS="${CLIENT_CPUS:-1}" MODEL_DIR="${MODEL_DIR:-$root/.bench/bert-base}"
ORT_LIB="${ORT_LIB:-}" CRMSCORE_ARGS="${CRMSCORE_ARGS:-}"
bench="$root/.bench"
out="$bench/bert-bench-$DEVICE-$PRECISION.md"
work="$(mktemp -d)"
server_pid=""
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
die() { echo "error: $*" >&2; exit 1; }
log() { echo "[bert-bench] $*" >&2; }

models="$MODEL_DIR/$PRECISION"
if [[ ! -f "$models/sentiment/model.onnx" ]]; then
  log "making the BERT-base model (scripts/make_bert_base.py, needs .venv-torch) ..."
  py="$(scripts/setup-python.sh --torch)"
  "$py" scripts/make_bert_base.py --out "$MODEL_DIR" >&2
fi
OHA="${OHA:-}"
for candidate in "$OHA" "$bench/tools/bin/oha" "$(command -v oha || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then OHA="$candidate"; break; fi
done
[[ -x "$OHA" ]] || die "oha is missing: run scripts/loadtest.sh once (it installs it into .bench/tools) or set OHA"
bin="${BIN:-$root/target/release/crmscore}"
if [[ -z "${BIN:-}" ]]; then
  log "building the release binary ..."
  cargo build --release --locked --bin crmscore >&2
fi

# Bodies: one {"texts": [text]} per line, each text exactly LENGTH tokens.
python3 - "$models/sentiment/tokenizer.json" "$work" $LENGTHS <<'PY'
import json, random, re, sys
tokenizer, work, lengths = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3:]]
vocab = json.load(open(tokenizer, encoding="utf-8"))["model"]["vocab"]
words = sorted(w for w in vocab if re.fullmatch(r"[a-z]{3,}", w))
rng = random.Random(7)
for n in lengths:
    with open(f"{work}/bodies-{n}.txt", "w", encoding="utf-8") as f:
        for _ in range(2000):
            f.write(json.dumps({"texts": [" ".join(rng.choice(words) for _ in range(n - 2))]}) + "\n")
PY

lib_args=()
[[ -n "$ORT_LIB" ]] && lib_args=(--onnxruntime-lib "$ORT_LIB")
log "starting crmscore on $DEVICE ($PRECISION) on CPUs $SERVER_CPUS ..."
# shellcheck disable=SC2086
taskset -c "$SERVER_CPUS" "$bin" serve --bind "127.0.0.1:$PORT" --models "$models" \
  --snapshots "$root/snapshots/customers-sample.parquet" --policy "$work/no-policy.toml" --state-dir "" --feedback-dir "" --device "$DEVICE" \
  "${lib_args[@]}" $CRMSCORE_ARGS >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited"; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null || { cat "$work/server.log" >&2; die "never ready"; }
provider="$(curl -fsS "http://127.0.0.1:$PORT/v2/models/sentiment" | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"]["execution_provider"])')"
log "serving on $provider"

{
  echo "BERT-base-shaped sentiment ($PRECISION, random weights), $DEVICE ($provider), one text per request, c=$CONCURRENCY, $DURATION each, $(date -u +%Y-%m-%d)"
  echo
  echo "| tokens/text | texts/s | p50 ms | p99 ms | errors |"
  echo "|---|---|---|---|---|"
} >"$out"
for n in $LENGTHS; do
  url="http://127.0.0.1:$PORT/v1/sentiment"
  taskset -c "$CLIENT_CPUS" "$OHA" --no-tui -z "$WARMUP" -c "$CONCURRENCY" -m POST -H 'content-type: application/json' \
    -Z "$work/bodies-$n.txt" "$url" >/dev/null
  taskset -c "$CLIENT_CPUS" "$OHA" --no-tui -z "$DURATION" -c "$CONCURRENCY" -m POST -H 'content-type: application/json' \
    -Z "$work/bodies-$n.txt" --output-format json "$url" >"$work/oha-$n.json"
  python3 - "$work/oha-$n.json" "$n" >>"$out" <<'PY'
import json, sys
r, n = json.load(open(sys.argv[1])), sys.argv[2]
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
# Requests still in flight when the duration ends are cut off by oha ("aborted due to deadline"): not errors.
cut = {k: v for k, v in r.get("errorDistribution", {}).items() if "aborted due to deadline" not in k}
errors = sum(v for k, v in codes.items() if k != "200") + sum(cut.values())
ms = lambda v: "-" if v is None else f"{v * 1e3:.1f}"
ok = codes.get("200", 0)
print(f"| {n} | {ok / float(r['summary']['total']):.1f} | {ms(p['p50'])} | {ms(p['p99'])} | {errors} |")
PY
  log "$(tail -1 "$out")"
done
cat "$out"
