#!/usr/bin/env bash
# The project's one prepared GPU check (issues 14, 25): what one device `run` call executes
# on the lent GPU machine (one H100 or H200, whichever is lent: the JSON records the card;
# Python 3.12 with torch + CUDA, no network), in at most LIPLEAK_GPU_CHECK_BUDGET_S seconds
# (default 480). Prepare with bench/gpu_carry.sh first; docs/gpu.md ("The GPU check") gives
# the exact call and the budget plan. Steps:
#   1. install the carried wheels whose package the machine lacks (--no-index --no-deps);
#   2. build and install the project (--no-build-isolation --no-deps, at most 150 s); when
#      that fails, or the build does not import, install the carried cp312 wheel of it
#      instead (LIPLEAK_GPU_CHECK_BREAK_BUILD=1 makes the build fail, to test this);
#   3. print versions; run the gpu-marked tests (tests/test_gpu.py, at most 90 s);
#   4. python bench/gpu_check.py with what is left: writes $OUT/gpu_check_<date>.json after
#      every stage (agreement with the CPU, precision drift, videos/min, GPU busy share,
#      frames/s per stage); its stages are guarded, so a failing one costs only itself.
# Everything is also logged to $OUT/gpu_check_log.txt (flushed before the script exits).
#
# `--install-only`: steps 1-2 alone. Here, on the CPU, `bash bench/gpu_check.sh --dry-run`
# skips steps 1-2 (the project must be installed in PYTHON's environment), runs the rest
# with the torch backend on the CPU and tiny counts, and writes
# bench/results/gpu_check_cpu_dryrun_<date>.json.
set -u
START=$(date +%s)
cd "$(dirname "$0")/.."
DRY=""
INSTALL_ONLY=""
case "${1:-}" in
  --dry-run) DRY=--dry-run ;;
  --install-only) INSTALL_ONLY=1 ;;
  "") ;;
  *) echo "usage: bash bench/gpu_check.sh [--dry-run | --install-only]" >&2; exit 2 ;;
esac
BUDGET=${LIPLEAK_GPU_CHECK_BUDGET_S:-480}
PY=${PYTHON:-python3}
CARRY=${LIPLEAK_GPU_CARRY:-.gpu_carry}
if [ -n "${OUT:-}" ]; then OUTDIR=$OUT; else OUTDIR=bench/results; fi
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export LIPLEAK_SHARED_DIR=${LIPLEAK_SHARED_DIR:-$CARRY/shared}
[ -n "$DRY" ] && [ ! -d "$LIPLEAK_SHARED_DIR" ] && export LIPLEAK_SHARED_DIR=../shared

# The log: tee runs beside the script; at exit the script closes its side of the pipe and
# waits (at most 10 s) for tee to write the rest, so the log's tail is never lost.
exec > >(tee "$OUTDIR/gpu_check_log${DRY:+_cpu_dryrun}.txt") 2>&1
TEE=$!
finish() {
  rc=$?
  exec >&- 2>&-
  for _ in $(seq 100); do kill -0 "$TEE" 2>/dev/null || break; sleep 0.1; done
  exit $rc
}
trap finish EXIT
step() { echo; echo "== $* (t=$(($(date +%s) - START)) s)"; }

imports() { "$PY" -c "import lipleak, lipleak._core" 2>&1; }

if [ -z "$DRY" ]; then
  step "1. carried wheels"
  missing=()
  for w in "$CARRY"/wheels/*.whl; do
    [ -e "$w" ] || continue
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
  broken=()
  if [ -n "${LIPLEAK_GPU_CHECK_BREAK_BUILD:-}" ]; then
    echo "  LIPLEAK_GPU_CHECK_BREAK_BUILD: the build is made to fail (no C++ compiler)"
    # in a build folder of its own: CMake's cache would keep the missing compiler
    rm -rf build/gpu-check-broken
    broken=(-C build-dir=build/gpu-check-broken -C cmake.define.CMAKE_CXX_COMPILER=/nonexistent/c++)
  fi
  export LIPLEAK_GPU_CHECK_INSTALL="built on the machine"
  build_log=$(mktemp)
  if ! timeout 150 "$PY" -m pip install -q --no-build-isolation --no-deps --no-cache-dir \
      "${broken[@]}" . > "$build_log" 2>&1; then
    tail -15 "$build_log"
    why="project build failed"
  elif ! err=$(imports); then
    why="the build does not import: ${err##*$'\n'}"
  else
    why=""
  fi
  if [ -n "$why" ]; then
    wheel=$(ls "$CARRY"/project/lipleak_fast-*-cp312-*.whl 2>/dev/null | head -1)
    echo "  $why; installing the carried wheel ${wheel:-(none carried)}"
    [ -n "$wheel" ] || { echo "no carried project wheel: nothing to measure with"; exit 2; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --force-reinstall \
      "$wheel" || { echo "the carried wheel does not install"; exit 2; }
    err=$(imports) || { echo "the carried wheel does not import: $err"; exit 2; }
    export LIPLEAK_GPU_CHECK_INSTALL="carried wheel ${wheel##*/} ($why)"
  fi
  echo "  lipleak-fast: $LIPLEAK_GPU_CHECK_INSTALL"
  if [ -n "$INSTALL_ONLY" ]; then step "done (--install-only)"; exit 0; fi
fi

step "3. versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
"$PY" - <<'PYEOF'
import importlib.metadata as md, os, platform
print("python", platform.python_version(), platform.machine())
print("lipleak-fast installed:", os.environ.get("LIPLEAK_GPU_CHECK_INSTALL", "here"))
for d in ("lipleak-fast", "torch", "torchvision", "onnx", "onnx2torch", "onnxruntime",
          "av", "soundfile", "numpy", "opencv-python-headless", "scipy", "cupy-cuda13x",
          "cuda-bindings"):
    try:
        print(f"  {d} {md.version(d)}")
    except md.PackageNotFoundError:
        print(f"  {d} absent")
import torch
print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "available", torch.cuda.is_available(),
      "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
PYEOF

step "4. pytest -m gpu tests/test_gpu.py"
timeout 90 "$PY" -m pytest -m gpu tests/test_gpu.py -q -rs -p no:cacheprovider
echo "pytest exit status $?"

step "5. bench/gpu_check.py"
left=$((BUDGET - ($(date +%s) - START) - 10))
# its own limit a little past its budget: what it saved so far stays in $OUT either way
timeout $((left + 30)) "$PY" bench/gpu_check.py $DRY --budget-s "$left" --carry "$CARRY" \
  --out "$OUTDIR"
rc=$?
step "done, exit status $rc"
exit $rc
