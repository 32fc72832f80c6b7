#!/usr/bin/env bash
# The project's one prepared GPU check (issue 14): what one device `run` call executes on
# the lent GPU machine (one H200; Python 3.12 with torch + CUDA, no network), in at most
# LIPLEAK_GPU_CHECK_BUDGET_S seconds (default 480). Prepare with bench/gpu_carry.sh first;
# docs/gpu.md ("The GPU check") gives the exact call. Steps:
#   1. install the carried wheels whose package the machine lacks (--no-index --no-deps);
#   2. build and install the project (--no-build-isolation --no-deps);
#   3. print versions; run the gpu-marked tests (tests/test_gpu.py);
#   4. python bench/gpu_check.py: writes $OUT/gpu_<date>.json (agreement with the CPU,
#      precision drift, videos/min, GPU busy share, frames/s per stage).
# Everything is also logged to $OUT/gpu_check_log.txt.
#
# Here, on the CPU, `bash bench/gpu_check.sh --dry-run` skips steps 1-2 (the project must
# be installed in PYTHON's environment), runs the rest with the torch backend on the CPU
# and tiny counts, and writes bench/results/gpu_check_cpu_dryrun_<date>.json.
set -u
START=$(date +%s)
cd "$(dirname "$0")/.."
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY=--dry-run
BUDGET=${LIPLEAK_GPU_CHECK_BUDGET_S:-480}
PY=${PYTHON:-python3}
CARRY=${LIPLEAK_GPU_CARRY:-.gpu_carry}
if [ -n "${OUT:-}" ]; then OUTDIR=$OUT; else OUTDIR=bench/results; fi
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export LIPLEAK_SHARED_DIR=${LIPLEAK_SHARED_DIR:-$CARRY/shared}
[ -n "$DRY" ] && [ ! -d "$LIPLEAK_SHARED_DIR" ] && export LIPLEAK_SHARED_DIR=../shared
exec > >(tee "$OUTDIR/gpu_check_log${DRY:+_cpu_dryrun}.txt") 2>&1
step() { echo; echo "== $* (t=$(($(date +%s) - START)) s)"; }

if [ -z "$DRY" ]; then
  step "1. carried wheels"
  missing=()
  for w in "$CARRY"/wheels/*.whl; do
    name=$(basename "$w" | cut -d- -f1)
    have=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    if [ -n "$have" ]; then echo "  $name: the machine's $have"; else missing+=("$w"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '  installing %s\n' "${missing[@]##*/}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "${missing[@]}" \
      || { echo "wheel install failed"; exit 2; }
  fi
  step "2. build and install lipleak-fast"
  export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
  "$PY" -m pip install -q --no-build-isolation --no-deps --no-cache-dir . \
    || { echo "project build failed"; exit 2; }
fi

step "3. versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
"$PY" - <<'PYEOF'
import importlib.metadata as md, platform
print("python", platform.python_version(), platform.machine())
for d in ("lipleak-fast", "torch", "torchvision", "onnx", "onnx2torch", "onnxruntime",
          "av", "soundfile", "numpy", "opencv-python-headless", "scipy", "cupy-cuda13x",
          "cuda-bindings"):
    try:
        print(f"  {d} {md.version(d)}")
    except md.PackageNotFoundError:
        print(f"  {d} absent")
import torch
print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "available", torch.cuda.is_available())
PYEOF

step "4. pytest -m gpu tests/test_gpu.py"
timeout 150 "$PY" -m pytest -m gpu tests/test_gpu.py -q -rs -p no:cacheprovider
echo "pytest exit status $?"

step "5. bench/gpu_check.py"
left=$((BUDGET - ($(date +%s) - START) - 10))
"$PY" bench/gpu_check.py $DRY --budget-s "$left" --carry "$CARRY" --out "$OUTDIR"
rc=$?
step "done, exit status $rc"
exit $rc
