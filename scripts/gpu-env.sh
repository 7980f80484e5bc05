# Sourced on the GPU machine: install the carried wheels and facecolor itself into /tmp/site.
# The machine has torch, torchvision, onnx, onnxruntime, opencv, safetensors and click already;
# kornia (and its kornia_rs) and onnxconverter-common travel as wheels in .whl/
# (docs/gpu-session.md says how to fetch them).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --target /tmp/site . >/dev/null 2>&1; then
    # No usable setuptools there: lay the package out by hand, as pyproject's package-dir does.
    cp -r facecolor /tmp/site/ && cp -r models /tmp/site/facecolor/shipped
    for stage in train export runtime bench; do cp -r $stage /tmp/site/facecolor/$stage; done
fi
# PYTHONSAFEPATH: the repo root holds a facecolor/ folder without the stage subpackages,
# which would shadow the installed package if the current directory came first on sys.path.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1
python3 -c "import torch, facecolor.train, kornia; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))" || exit 1
