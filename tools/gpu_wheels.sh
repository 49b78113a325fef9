#!/usr/bin/env bash
# Gather, on a machine with network, what tools/gpu_check.sh needs on a GPU
# machine without network whose Python already has torch, numpy, opencv,
# scipy, matplotlib and the like (the lent H200: Python 3.12, torch 2.11):
# the OpenMMLab wheels and their small dependencies, for that Python, and the
# mmcv 2.1.0 sdist (mmcv has no wheels on PyPI; gpu_check.sh compiles it).
#
#   bash tools/gpu_wheels.sh [DIR]          # default DIR: .whl (git-ignored)
#   PY_VERSION=3.12 bash tools/gpu_wheels.sh
# then, on the GPU machine:
#   WHEELS=.whl MMCV_SDIST=.whl/mmcv-2.1.0.tar.gz bash tools/gpu_check.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO_ROOT/.whl}"
PY_VERSION="${PY_VERSION:-3.12}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
# pip matches each manylinux tag exactly, so the usual ones are listed.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" \
  --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any \
  mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 mmpretrain==1.2.0 \
  pycocotools shapely terminaltables addict yapf termcolor platformdirs \
  ftfy wcwidth prettytable mat4py modelindex ordered-set importlib-metadata
# The sdist as PyPI serves it; its metadata is not built here (mmcv's
# setup.py imports torch).
"$PYTHON" -m pip download -q --no-deps --no-binary :all: \
  --no-build-isolation -d "$OUT" mmcv==2.1.0 || {
  url=$("$PYTHON" - <<'PY'
import json, urllib.request
files = json.load(urllib.request.urlopen(
    'https://pypi.org/pypi/mmcv/2.1.0/json'))['urls']
print(next(f['url'] for f in files if f['packagetype'] == 'sdist'))
PY
)
  "$PYTHON" - "$url" "$OUT/mmcv-2.1.0.tar.gz" <<'PY'
import sys, urllib.request
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
PY
}
du -sh "$OUT"
ls "$OUT"
