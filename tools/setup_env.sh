#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with the OpenMMLab stack.
#
#   bash tools/setup_env.sh                   # torch 2.14.1 stack -> ./.venv
#   STACK=torch2.1 bash tools/setup_env.sh    # torch 2.1.2 stack  -> ./.venv-torch2.1
#   VENV=/path/to/venv bash tools/setup_env.sh
#
# The stacks (both tested in CI):
#   torch2.14  torch 2.14.1 + torchvision 0.29.1, numpy<2.4 (the default)
#   torch2.1   torch 2.1.2 + torchvision 0.16.2, numpy<2: the newest torch
#              that OpenMMLab's prebuilt mmcv 2.1.0 wheels support, which
#              GPU users of mmdet 3.3 run
#
# mmcv 2.1.0 has only an sdist on PyPI, so it is compiled here with its CPU ops
# (about 6 minutes on 2 cores). The wheel is cached outside the repository in a
# folder keyed by the torch version, because pip's own cache could hand back a
# wheel compiled against another torch ABI.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${STACK:-torch2.14}"
case "$STACK" in
  torch2.14)
    TORCH_VERSION=2.14.1 TORCHVISION_VERSION=0.29.1 NUMPY='numpy<2.4'
    # torch 2.14's ATen headers require C++20; mmcv 2.1.0 asks for C++17.
    CXX_STD=c++20 DEFAULT_VENV="$REPO_ROOT/.venv" ;;
  torch2.1)
    TORCH_VERSION=2.1.2 TORCHVISION_VERSION=0.16.2 NUMPY='numpy<2'
    CXX_STD=c++17 DEFAULT_VENV="$REPO_ROOT/.venv-torch2.1" ;;
  *)
    echo "[setup_env] unknown STACK=$STACK (torch2.14 or torch2.1)" >&2
    exit 2 ;;
esac
VENV="${VENV:-$DEFAULT_VENV}"
PYTHON="${PYTHON:-python3.11}"
MMCV_VERSION=2.1.0
CACHE_ROOT="${XLEARNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlearner_mm}"
MMCV_WHEEL_DIR="$CACHE_ROOT/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION"

log() { echo "[setup_env] $*"; }

stack_ok() {
  [ -x "$VENV/bin/python" ] && TORCH_VERSION=$TORCH_VERSION "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import os
import torch, torchvision, mmengine, mmcv, mmdet, mmseg, mmpretrain, xlearner_mm
from mmcv.ops import nms  # noqa: F401  (the compiled CPU ops are present)
assert torch.__version__.split('+')[0] == os.environ['TORCH_VERSION'], torch.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
import pytest, hypothesis, xdist, filelock  # noqa: F401
PY
}

if stack_ok; then
  log "reusing $VENV (stack imports)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION ($STACK)"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
  'setuptools==80.9.0' wheel ninja "$NUMPY"
"${PIP[@]}" install -q mmengine==0.10.7

if ! ls "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  log "building mmcv $MMCV_VERSION from source with CPU ops (about 6 min on 2 cores)"
  BUILD_DIR="$(mktemp -d)"
  trap 'rm -rf "$BUILD_DIR"' EXIT
  "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD_DIR"
  tar -xzf "$BUILD_DIR"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD_DIR"
  sed -i "s/-std=c++17/-std=$CXX_STD/g" "$BUILD_DIR/mmcv-$MMCV_VERSION/setup.py"
  grep -q -- "-std=$CXX_STD" "$BUILD_DIR/mmcv-$MMCV_VERSION/setup.py" \
    || { echo "mmcv setup.py no longer has the -std flag to patch" >&2; exit 1; }
  mkdir -p "$MMCV_WHEEL_DIR.partial"
  # Each op file's time goes into parsing the torch headers. CFLAGS replaces
  # Python's own compile flags, whose -g (debug information for all of them)
  # makes a file about a third slower to compile (-O3 as before), and
  # tools/pch_g++.sh precompiles the header most files include first.
  CFLAGS="${CFLAGS:--DNDEBUG -O3 -fwrapv -g0}" CXX="$REPO_ROOT/tools/pch_g++.sh" \
  PCH_HEADER="$BUILD_DIR/mmcv-$MMCV_VERSION/mmcv/ops/csrc/common/pytorch_cpp_helper.hpp" \
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" MMCV_WITH_OPS=1 FORCE_CUDA=0 \
    "${PIP[@]}" wheel -q --no-build-isolation --no-deps \
    -w "$MMCV_WHEEL_DIR.partial" "$BUILD_DIR/mmcv-$MMCV_VERSION"
  # Publish the cache entry only once the wheel is complete.
  rm -rf "$MMCV_WHEEL_DIR"
  mv "$MMCV_WHEEL_DIR.partial" "$MMCV_WHEEL_DIR"
else
  log "using cached mmcv wheel from $MMCV_WHEEL_DIR"
fi

log "installing mmcv, mmdet, mmsegmentation, mmpretrain and test tools"
"${PIP[@]}" install -q "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl
# The torch pins keep pip from moving torch while it resolves the rest.
"${PIP[@]}" install -q -r "$REPO_ROOT/requirements/stack.txt" -r "$REPO_ROOT/requirements/tests.txt" \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "$NUMPY"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e "$REPO_ROOT"

stack_ok || { echo "[setup_env] the stack does not import from $VENV" >&2; exit 1; }
log "ready: $VENV"
