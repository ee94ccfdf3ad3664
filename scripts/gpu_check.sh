#!/usr/bin/env bash
# The GPU checks: the CUDA tests (they skip on a CPU machine), then the GPU benchmarks.
#
#   bash scripts/gpu_check.sh --download   # here, with network: wheels for a machine without it
#   bash scripts/gpu_check.sh              # on the GPU machine (torch with CUDA already there)
#
# The device machines have Python 3.12 and a CUDA torch but no network, so the
# other run-time packages travel as wheels in wheelhouse/ (ignored by git, about
# 36 MB: carry it). vidscale itself runs from the checkout (no install needed).
# Results: benchmarks/results/DATE-pipeline-gpu.md, copied to $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(av spandrel einops safetensors click tqdm pytest pluggy iniconfig packaging)

if [[ "${1:-}" == "--download" ]]; then
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        -d wheelhouse "${WHEELS[@]}"
    du -sh wheelhouse
    exit 0
fi

if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA GPU visible to $PY" >&2
    exit 1
fi
if [[ -d wheelhouse ]]; then
    "$PY" -m pip install -q --no-index --no-deps wheelhouse/*.whl
fi
"$PY" -c "import torch, torchvision, av, spandrel; print('torch', torch.__version__, 'on', torch.cuda.get_device_name())"

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_engine.py tests/test_staging.py tests/test_device_color.py tests/test_yuv.py \
    tests/test_backend.py tests/test_export.py tests/test_bench.py -k "not temporal" || status=$?  # no OpenCV there
"$PY" benchmarks/bench_pipeline.py --gpu || status=$?
if [[ -n "${OUT:-}" ]]; then
    cp benchmarks/results/*-pipeline-gpu.md "$OUT/" 2>/dev/null || true
fi
exit $status
