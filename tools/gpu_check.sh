#!/usr/bin/env bash
# The GPU check: on a CUDA machine, in one short run,
#   1. builds mmcv 2.1.0 with its CUDA ops for the local torch and only the
#      local GPU's architecture (cached, keyed by torch, CUDA and the
#      architecture);
#   2. runs the demo on the GPU: the Expansion demo (cls + det + seg) for 20
#      iterations with --amp (float16), the Squeeze demo for 10, the export,
#      and one iteration of each stock downstream config (tools/run_demo.py);
#   3. measures the GPU figures with tools/benchmark.py --device cuda (AMP,
#      channels-last, 64 images of 224^2 per task), printed as `name: value`;
#   4. rehearses the base recipe (configs/xlearner/recipes/xlearner_r50.py:
#      expansion_r50.py, then squeeze_r50.py) at its full image sizes and
#      per-GPU batches with AMP (tools/rehearse.py): seconds per iteration and
#      GPU memory measured, next to the projection of the whole recipe.
#
#   bash tools/gpu_check.sh             # on the GPU machine
#   bash tools/gpu_check.sh --dry-run   # print the plan; no GPU needed
#
# A machine without network: WHEELS=DIR installs the wheels in DIR first (the
# OpenMMLab packages and what they need beyond the machine's torch), and
# MMCV_SDIST=PATH names mmcv-2.1.0.tar.gz. PYTHON (default python3) is the
# interpreter that has torch; WORK_DIR (default work_dirs/gpu_check) gets the
# demo's and the benchmark's files.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  '') ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
WORK_DIR="${WORK_DIR:-work_dirs/gpu_check}"
MMCV_VERSION=2.1.0
CACHE_ROOT="${XLEARNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlearner_mm}"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

log() { echo "[gpu_check] $*"; }
run() {
  echo "+ $*"
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

if [ "$DRY_RUN" = 1 ]; then
  # What the machine reports is only known there.
  TORCH_VERSION='<torch>' CUDA_VERSION='<cuda>' ARCH='<sm>' CXX_STD='<c++17|c++20>'
else
  read -r TORCH_VERSION CUDA_VERSION ARCH CXX_STD < <("$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), 'gpu_check: torch sees no CUDA device'
major, minor = (int(p) for p in torch.__version__.split('.')[:2])
# torch>=2.5 headers build with C++20 (2.14 requires it); 2.1 with C++17.
print(torch.__version__.split('+')[0], torch.version.cuda,
      '%d.%d' % torch.cuda.get_device_capability(),
      'c++20' if (major, minor) >= (2, 5) else 'c++17')
PY
)
  log "torch $TORCH_VERSION, CUDA $CUDA_VERSION, GPU architecture $ARCH"
fi

if [ -n "${WHEELS:-}" ]; then
  log "installing the wheels in $WHEELS"
  run "$PYTHON" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
fi

# 1. mmcv with CUDA ops, cached per torch, CUDA and GPU architecture.
MMCV_WHEEL_DIR="$CACHE_ROOT/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION-cuda-$CUDA_VERSION-sm$ARCH"
if [ "$DRY_RUN" = 1 ] || ! ls "$MMCV_WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  log "building mmcv $MMCV_VERSION with CUDA ops for sm $ARCH into $MMCV_WHEEL_DIR"
  BUILD_DIR="$(mktemp -d)"
  trap 'rm -rf "$BUILD_DIR"' EXIT
  if [ -n "${MMCV_SDIST:-}" ]; then
    run tar -xzf "$MMCV_SDIST" -C "$BUILD_DIR"
  else
    run "$PYTHON" -m pip download -q --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$BUILD_DIR"
    run tar -xzf "$BUILD_DIR/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD_DIR"
  fi
  run sed -i "s/-std=c++17/-std=$CXX_STD/g" "$BUILD_DIR/mmcv-$MMCV_VERSION/setup.py"
  run mkdir -p "$MMCV_WHEEL_DIR.partial"
  run env TORCH_CUDA_ARCH_LIST="$ARCH" MMCV_WITH_OPS=1 FORCE_CUDA=1 \
    MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PYTHON" -m pip wheel -q \
    --no-build-isolation --no-deps -w "$MMCV_WHEEL_DIR.partial" \
    "$BUILD_DIR/mmcv-$MMCV_VERSION"
  run rm -rf "$MMCV_WHEEL_DIR"
  run mv "$MMCV_WHEEL_DIR.partial" "$MMCV_WHEEL_DIR"
fi
run "$PYTHON" -m pip install -q --no-index --no-deps --force-reinstall \
  "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl
run "$PYTHON" -c "from mmcv.ops import nms; import torch; \
b = torch.rand(8, 4, device='cuda'); b[:, 2:] += b[:, :2]; \
print('mmcv CUDA nms:', nms(b, torch.rand(8, device='cuda'), 0.5)[1].device)"

# 2. The demo on the GPU, float16 AMP.
run "$PYTHON" tools/make_demo_data.py --out data/demo
run "$PYTHON" tools/run_demo.py --work-dir "$WORK_DIR/demo" --amp \
  --expansion-iters 20 --squeeze-iters 10

# 3. The GPU figures.
run "$PYTHON" tools/benchmark.py --device cuda --amp --channels-last \
  --batch-size 64 --image-size 224 --work-dir "$WORK_DIR/benchmark" \
  --only expansion_overhead squeeze_overhead memory_ratio throughput_ratio

# 4. The base recipe at its real sizes.
run "$PYTHON" tools/rehearse.py configs/xlearner/recipes/xlearner_r50.py \
  --iters 6 --img-scale 1 --amp --no-downstream --tflops 400 \
  --work-dir "$WORK_DIR/rehearsal"
log "done"
