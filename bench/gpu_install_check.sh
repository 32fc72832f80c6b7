#!/usr/bin/env bash
# Shows that the gpu-cu12 / gpu-cu13 extras resolve (issue 14, acceptance 2) without
# installing anything: pip's resolver on the extras' requirements from pyproject.toml, for
# CPython 3.12 on manylinux x86-64 (the GPU machine), binary wheels only.
# TensorRT's library wheels are not on PyPI: tensorrt-cu1x-libs there is a stub sdist
# that downloads the wheel from https://pypi.nvidia.com while it builds. So the resolver
# runs on everything but TensorRT, then the TensorRT pins are checked on their own:
# the bindings wheel and the metapackage from PyPI, the libs from NVIDIA's index when it
# is reachable (else the stub's own error says where it would fetch from).
# Usage: bench/gpu_install_check.sh [PYTHON] > bench/results/gpu_install_<date>.txt
set -u
PY=${1:-python}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# --platform takes exact tags: list every manylinux tag a glibc 2.28+ x86-64 host accepts
# that NVIDIA's wheels use.
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
TARGET=(--python-version 3.12 "${PLATFORMS[@]}" --only-binary=:all: --target "$TMP/t")

echo "# gpu extras resolution check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
"$PY" -m pip --version
for extra in gpu-cu12 gpu-cu13; do
  echo
  echo "## [$extra]"
  "$PY" - "$extra" > "$TMP/$extra.txt" <<'PYEOF'
import sys, tomllib
extra = sys.argv[1]
reqs = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][extra]
print("\n".join(reqs))
PYEOF
  echo "requirements (pyproject.toml):"
  sed 's/^/  /' "$TMP/$extra.txt"
  grep -v '^tensorrt' "$TMP/$extra.txt" > "$TMP/$extra-no-trt.txt"
  echo "pip install --dry-run (all but TensorRT, with dependencies) resolves to:"
  if "$PY" -m pip install --dry-run --ignore-installed "${TARGET[@]}" --quiet \
      --report "$TMP/$extra.json" -r "$TMP/$extra-no-trt.txt" 2> "$TMP/err.txt"; then
    "$PY" - "$TMP/$extra.json" <<'PYEOF'
import json, sys
for item in sorted(json.load(open(sys.argv[1]))["install"], key=lambda i: i["metadata"]["name"].lower()):
    print(f"  {item['metadata']['name']}=={item['metadata']['version']}  ({item['download_info']['url'].rsplit('/', 1)[-1]})")
PYEOF
  else
    echo "  FAILED:"; grep -v 'is ignored' "$TMP/err.txt" | sed 's/^/    /'
  fi
  trt=$(grep '^tensorrt' "$TMP/$extra.txt")
  echo "TensorRT ($trt):"
  ver=$("$PY" -m pip index versions "${trt%%[<>=]*}" 2>/dev/null | sed -n 's/^Available versions: //p' | tr ', ' '\n\n' \
    | grep -E '^10\.' | head -1)
  name=${trt%%[<>=]*}
  echo "  newest 10.x on PyPI: $ver"
  for dist in "$name" "$name-bindings"; do
    if "$PY" -m pip install --dry-run --ignore-installed --no-deps --python-version 3.12 \
        "${PLATFORMS[@]}" --target "$TMP/t" --quiet --report "$TMP/d.json" \
        "$dist==$ver" 2> "$TMP/err.txt"; then
      "$PY" -c "import json,sys; [print('  ' + i['metadata']['name'] + '==' + i['metadata']['version'] + '  (' + i['download_info']['url'].rsplit('/', 1)[-1] + ')', i['metadata'].get('requires_dist')) for i in json.load(open(sys.argv[1]))['install']]" "$TMP/d.json"
    else
      echo "  $dist==$ver: FAILED"; grep -v 'is ignored' "$TMP/err.txt" | tail -3 | sed 's/^/    /'
    fi
  done
  echo "  $name-libs==$ver from PyPI (a stub sdist; pip download builds it, which fetches the real wheel):"
  if "$PY" -m pip download --no-deps -d "$TMP/dl" "$name-libs==$ver" > "$TMP/out.txt" 2>&1; then
    echo "    downloaded: $(ls "$TMP/dl")"
  else
    grep -E 'Downloading|urlopen error|Could not resolve|pypi.nvidia.com|Error|error:' "$TMP/out.txt" \
      | grep -v 'is ignored' | sort -u | tail -6 | sed 's/^/    /'
  fi
  echo "  $name-libs==$ver from NVIDIA's index (--extra-index-url https://pypi.nvidia.com):"
  if "$PY" -m pip install --dry-run --ignore-installed --no-deps "${TARGET[@]}" --quiet \
      --extra-index-url https://pypi.nvidia.com --report "$TMP/d.json" "$name-libs==$ver" \
      2> "$TMP/err.txt"; then
    "$PY" -c "import json,sys; [print('    ' + i['download_info']['url']) for i in json.load(open(sys.argv[1]))['install']]" "$TMP/d.json"
  else
    echo "    not resolvable from here:"; grep -v 'is ignored' "$TMP/err.txt" | tail -2 | sed 's/^/      /'
  fi
done
