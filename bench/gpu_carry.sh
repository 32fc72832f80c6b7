#!/usr/bin/env bash
# Fills .gpu_carry/ (git-ignored) with what the GPU machine lacks and cannot download, for
# one device call of bench/gpu_check.sh (docs/gpu.md, "The GPU check"). Run it here, on an
# x86-64 machine with network and ../shared, in the checkout the device call sends:
#
#   bash bench/gpu_carry.sh [PYTHON [PYTHON3.12]]
#
# PYTHON (default python3: any Python with pip) downloads the wheels; PYTHON3.12 (default:
# $LIPLEAK_WHEEL_PYTHON, python3.12 on PATH, or pyenv's 3.12) builds the project's wheel.
# - project/: a cp312 wheel of this checkout (pip wheel, build dependencies from the
#   registry): gpu_check.sh installs it when the build on the GPU machine fails;
# - wheels/: cp312 manylinux x86-64 wheels of what lipleak imports and the GPU image does
#   not hold (PyAV, soundfile and its cffi/pycparser, onnx2torch) or may not (tqdm):
#   gpu_check.sh installs each only where its package is missing there. Not carried: onnx
#   (1.23.1 is on the image; its wheel is 17 MB) and scipy (35 MB; on the image, and the
#   check needs it only for the report's cell FIDs, which it does not compute).
# - shared/data/clips/: the shared .mp4 clips (the 10-s clips are made there from them);
# - shared/models/: scrfd_500m.onnx and pfld_68.onnx (sha256-checked by the registry).
# Not carried (too large for the 64 MiB a device call takes): the 53 MB random SyncNet
# fixture (the check makes seeded random weights there, in the published checkpoint
# format) and the 84 MB FID Inception (a seeded random Inception-v3 there; see gpu_check.py).
# Prints the total and fails when .gpu_carry plus the working tree would exceed 64 MiB.
set -euo pipefail
PY=${1:-python3}
cd "$(dirname "$0")/.."
PY312=${2:-${LIPLEAK_WHEEL_PYTHON:-}}
is312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2> /dev/null; }
if [ -z "$PY312" ]; then
  # a pyenv shim on PATH may name a version it will not run: try each until one is 3.12
  for c in $(command -v python3.12) "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    if is312 "$c"; then PY312=$c; break; fi
  done
fi
if [ -z "$PY312" ] || ! is312 "$PY312"; then
  echo "no Python 3.12 to build the cp312 wheel with: pass one as the 2nd argument" >&2
  exit 1
fi
SHARED=${LIPLEAK_SHARED_DIR:-../shared}
C=.gpu_carry
LIMIT=$((64 * 1024 * 1024))
rm -rf "$C"
mkdir -p "$C/wheels" "$C/project" "$C/shared/data/clips" "$C/shared/models"

echo "building the cp312 wheel with $PY312 ($("$PY312" --version 2>&1))"
"$PY312" -m pip wheel --quiet --no-deps -w "$C/project" . 2> >(grep -v 'is ignored' >&2)
wheel=$(ls "$C"/project/lipleak_fast-*-cp312-*.whl)
so=$(mktemp)
unzip -p "$wheel" 'lipleak/_core*.so' > "$so"
if command -v objdump > /dev/null; then
  echo "  $(basename "$wheel") needs $(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)," \
    "$(objdump -T "$so" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)"
fi
rm -f "$so"

# One version of each: the versions this project is tested with here.
WHEELS=(av==18.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 tqdm==4.70.1
  onnx2torch==1.5.15)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$C/wheels" "${WHEELS[@]}" 2> >(grep -v 'is ignored' >&2)

cp "$SHARED"/data/clips/*.mp4 "$C/shared/data/clips/"
cp "$SHARED"/models/scrfd_500m.onnx "$SHARED"/models/pfld_68.onnx "$C/shared/models/"
chmod -R u+w "$C"

echo "carried:"
du -b "$C/project"/* "$C/wheels"/* "$C/shared/models"/* \
  | awk '{printf "  %8.1f MiB  %s\n", $1 / 1048576, $2}'
echo "  $(ls "$C/shared/data/clips" | wc -l) clips, $(du -sb "$C/shared/data/clips" | awk '{printf "%.1f MiB", $1 / 1048576}')"
carry=$(du -sb "$C" | cut -f1)
# what else travels: tracked files and untracked files git does not ignore
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) \
  | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
total=$((carry + tree))
printf '.gpu_carry %.1f MiB + working tree %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$carry / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)" \
  "$(echo "$total / 1048576" | bc -l)"
if [ "$total" -gt "$LIMIT" ]; then
  echo "too large: a device call takes at most 64 MiB" >&2
  exit 1
fi
