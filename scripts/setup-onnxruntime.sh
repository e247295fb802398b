#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library from PyPI's wheel into .onnxruntime/lib (git-ignored).
# `ort`'s own download feature needs a CDN that is not reachable here; PyPI is. Idempotent: a second run is a no-op.
#   scripts/setup-onnxruntime.sh          CPU build (onnxruntime)
#   scripts/setup-onnxruntime.sh --gpu    CUDA build (onnxruntime-gpu, CUDA 13 + cuDNN 9 from PyPI's nvidia-* wheels)
set -euo pipefail

ORT_VERSION="1.31.1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.onnxruntime"
package="onnxruntime"
if [[ "${1:-}" == "--gpu" ]]; then
  package="onnxruntime-gpu"
fi
stamp="$dest/lib/.installed"
want="$package==$ORT_VERSION"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "ONNX Runtime $want already in $dest/lib"
  exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
  echo "error: python3 with pip is needed to fetch the $package wheel from PyPI" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "Fetching $want from PyPI ..."
"$python" -m pip download -q "$want" --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --python-version 3.11 --implementation cp -d "$work"
wheel="$(ls "$work"/*.whl)"

rm -rf "$dest/lib"
mkdir -p "$dest/lib"
"$python" - "$wheel" "$dest/lib" <<'PY'
import sys, zipfile, os, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                shutil.copyfileobj(src, dst)
PY

cd "$dest/lib"
lib="$(ls libonnxruntime.so.* | grep -E '\.so\.[0-9]+\.[0-9]+\.[0-9]+$' | head -1)"
ln -sf "$lib" libonnxruntime.so.1
ln -sf "$lib" libonnxruntime.so

if [[ "$package" == "onnxruntime-gpu" ]]; then
  # CUDA and cuDNN come as PyPI wheels; unpack their libraries beside ONNX Runtime (found through RUNPATH/ld path).
  "$python" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp -d "$work/cuda" \
    "nvidia-cuda-runtime==13.*" "nvidia-cublas==13.*" "nvidia-curand==10.*" "nvidia-cufft==12.*" \
    "nvidia-cuda-nvrtc==13.*" "nvidia-cudnn-cu13==9.*"
  for w in "$work"/cuda/*.whl; do
    "$python" - "$w" "$dest/lib" <<'PY'
import sys, zipfile, os, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if "/lib/" in name and ".so" in base:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  done
fi

echo "$want" > "$stamp"
echo "ONNX Runtime $want installed in $dest/lib"
echo "crmscore finds it there; or point ORT_DYLIB_PATH / --onnxruntime-lib at $dest/lib/libonnxruntime.so"
