#!/usr/bin/env bash
# Fills .gpu_carry/ (git-ignored) with what the GPU machine lacks and cannot download, for
# one device call of bench/gpu_check.sh (docs/gpu.md, "The GPU check"). Run it here, on an
# x86-64 machine with network and ../shared, in the checkout the device call sends:
#
#   bash bench/gpu_carry.sh [PYTHON]
#
# - wheels/: cp312 manylinux x86-64 wheels of what lipleak imports and the GPU image does
#   not hold (PyAV, soundfile and its cffi/pycparser) or may not hold (tqdm, onnx,
#   onnx2torch): gpu_check.sh installs each only where its package is missing there.
#   scipy (35 MB) is not carried: the image has it, and the check needs it only for the
#   report's cell FIDs, which it does not compute (score --no-report).
# - shared/data/clips/: the shared .mp4 clips (the 10-s clips are made there from them);
# - shared/models/: scrfd_500m.onnx and pfld_68.onnx (sha256-checked by the registry).
# Not carried (too large for the 64 MiB a device call takes): the 53 MB random SyncNet
# fixture (the check makes seeded random weights there, in the published checkpoint
# format) and the 84 MB FID Inception (a seeded random Inception-v3 there; see gpu_check.py).
# Prints the total and fails when .gpu_carry plus the working tree would exceed 64 MiB.
set -euo pipefail
PY=${1:-python3}
cd "$(dirname "$0")/.."
SHARED=${LIPLEAK_SHARED_DIR:-../shared}
C=.gpu_carry
LIMIT=$((64 * 1024 * 1024))
rm -rf "$C"
mkdir -p "$C/wheels" "$C/shared/data/clips" "$C/shared/models"

# One version of each: the versions this project is tested with here.
WHEELS=(av==18.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 tqdm==4.70.1
  onnx==1.23.1 onnx2torch==1.5.15)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$C/wheels" "${WHEELS[@]}" 2> >(grep -v 'is ignored' >&2)

cp "$SHARED"/data/clips/*.mp4 "$C/shared/data/clips/"
cp "$SHARED"/models/scrfd_500m.onnx "$SHARED"/models/pfld_68.onnx "$C/shared/models/"
chmod -R u+w "$C"

echo "carried:"
du -b "$C/wheels"/* "$C/shared/models"/* | awk '{printf "  %8.1f MiB  %s\n", $1 / 1048576, $2}'
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
