#!/usr/bin/env bash
# Creates <repo>/.venv (git-ignored) with the pinned packages of scripts/requirements.txt and prints the
# venv's python path on stdout (progress goes to stderr), e.g.  py="$(scripts/setup-python.sh)".
#   --torch   instead creates <repo>/.venv-torch from scripts/requirements-torch.txt: PyTorch (the CUDA build,
#             ~6 GB with its nvidia-* wheels) and transformers, for the training scripts of the recommendation and
#             sentiment models and the tiny-BERT fixture only. CI and the server never need it.
#   --explain instead creates <repo>/.venv-explain from scripts/requirements-explain.txt: the packages of .venv plus
#             shap, LightGBM, XGBoost and onnxmltools, for scripts/make_explain_fixtures.py only (the explanation
#             fixtures are committed). CI and the server never need it.
#   --triton  instead creates <repo>/.venv-triton from scripts/requirements-triton.txt: tritonclient (HTTP and gRPC),
#             onnxruntime, pyarrow and tokenizers, for the interop check tests/interop/tritonclient_check.py that
#             tests/tritonclient.rs runs (scripts/test.sh creates it before cargo test).
#   --openapi instead creates <repo>/.venv-openapi from scripts/requirements-openapi.txt: openapi-spec-validator,
#             which tests/openapi.rs runs on the server's /openapi.json (scripts/test.sh creates it).
#   --deploy  instead creates <repo>/.venv-deploy from scripts/requirements-deploy.txt: kubernetes-validate (with
#             the Kubernetes JSON schemas bundled), which tests/deploy.rs runs through scripts/check_deploy.py on the
#             manifests under deploy/ (scripts/test.sh creates it).
#   --sentiment instead creates <repo>/.venv-sentiment from scripts/requirements-sentiment.txt: numpy, scikit-learn,
#             onnx, onnxruntime, tokenizers and vaderSentiment, for scripts/train_sentiment.py and
#             scripts/sentiment_eval.py only (the sentiment model is committed). CI and the server never need it.
#   --dataeng instead creates <repo>/.venv-dataeng from scripts/requirements-dataeng.txt: pyarrow, pandas, DuckDB,
#             scikit-learn and onnxruntime, with which tests read the outcome, decision and batch-scoring Parquet
#             folders back, recompute report figures, and score the Python equivalent of score-batch (scripts/test.sh
#             creates it).
# Idempotent: pip only runs when the requirements file changed since the last successful install (hash stamp).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements.txt"
case "${1:-}" in
  "") ;;
  --torch)
    venv="$root/.venv-torch"
    req="$root/scripts/requirements-torch.txt"
    ;;
  --explain)
    venv="$root/.venv-explain"
    req="$root/scripts/requirements-explain.txt"
    ;;
  --triton)
    venv="$root/.venv-triton"
    req="$root/scripts/requirements-triton.txt"
    ;;
  --openapi)
    venv="$root/.venv-openapi"
    req="$root/scripts/requirements-openapi.txt"
    ;;
  --deploy)
    venv="$root/.venv-deploy"
    req="$root/scripts/requirements-deploy.txt"
    ;;
  --sentiment)
    venv="$root/.venv-sentiment"
    req="$root/scripts/requirements-sentiment.txt"
    ;;
  --dataeng)
    venv="$root/.venv-dataeng"
    req="$root/scripts/requirements-dataeng.txt"
    ;;
  *)
    echo "usage: $0 [--torch | --explain | --triton | --openapi | --deploy | --sentiment | --dataeng]" >&2
    exit 2
    ;;
esac
stamp="$venv/.requirements.sha256"
vpy="$venv/bin/python"

host_python="$(command -v python3 || command -v python || true)"
if [[ -z "$host_python" ]]; then
  echo "error: python3 is needed to create $venv" >&2
  exit 1
fi

# A venv whose interpreter no longer runs (host Python moved or upgraded) is rebuilt from scratch.
if [[ -e "$venv" ]] && ! "$vpy" -c "" >/dev/null 2>&1; then
  echo "Recreating broken $venv ..." >&2
  rm -rf "$venv"
fi

if [[ ! -e "$venv" ]]; then
  echo "Creating $venv ..." >&2
  if ! "$host_python" -m venv "$venv" >/dev/null 2>&1; then
    # Debian/Ubuntu without python3-venv has no ensurepip: fall back to a pip-less venv (pip added below).
    rm -rf "$venv"
    "$host_python" -m venv --without-pip "$venv"
  fi
fi
if ! "$vpy" -m pip --version >/dev/null 2>&1; then
  # The host's pip installs pip into the venv (pip >= 22.3 supports --python).
  "$host_python" -m pip --python "$vpy" install -q --disable-pip-version-check pip
fi

want="$("$vpy" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$req")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "Installing scripts/$(basename "$req") into $venv ..." >&2
  "$vpy" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"  # written only after pip succeeded
fi

echo "$vpy"
