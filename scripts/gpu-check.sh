#!/usr/bin/env bash
# On a CUDA machine (make gpu-check): the GPU and TensorRT tests, then the bench (the pipeline on
# 1000 1024x1280 gray JPEGs) in under 5 minutes. Results and logs go to $OUT (default out/gpu-check).
# On the lent GPU machine the project's own venv does not exist: gpu-env.sh installs it.
set -uo pipefail
OUT=${OUT:-out/gpu-check}; mkdir -p "$OUT"
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    PY=.venv/bin/python
else
    source scripts/gpu-env.sh; PY=python3
fi
status=0
run() { echo "== $*"; "$@" || status=1; }
run timeout 150 $PY -m pytest -q -rs -p no:cacheprovider -m gpu tests --junitxml "$OUT/gpu-tests.xml"
run timeout 100 $PY -m pytest -q -rs -p no:cacheprovider -m tensorrt tests --junitxml "$OUT/tensorrt-tests.xml"
run timeout 210 $PY -m facecolor.bench --engine models/gpsagd.safetensors --device cuda \
    --compare torch-fp32,torch-fp16,ort-cuda,trt --pipeline-images 1000 --json "$OUT/bench.json"
exit $status
