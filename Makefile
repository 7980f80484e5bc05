# facecolor: the common jobs. PYTHON defaults to the project's virtual environment.
PYTHON ?= .venv/bin/python
MODEL ?= models/gpsagd.safetensors
DATA ?= ../shared/data/faces
EPOCHS ?= 20

.PHONY: install test demo train train-all export bench gpu-check

install:  ## a virtual environment with the project and its test tools
	python3 -m venv .venv
	.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	.venv/bin/pip install -q -e '.[dev]'

test:  ## the CPU test suite (GPU and TensorRT tests are marked and skipped here)
	$(PYTHON) -m pytest -q

demo:  ## colorize the public-domain examples/ into out/ with the shipped model
	$(PYTHON) -m facecolor.runtime examples out

train:  ## the shipped model's chain psag -> gpsagd on the face data (the study's recipe; GPU advised)
	$(PYTHON) -m facecolor.train psag --data $(DATA)/lfw --data $(DATA)/utkface --val $(DATA)/ffhq_dev \
		--out runs/psag --epochs $(EPOCHS) --width 0.5 --val-limit 200 --cache-dir .cache/faces128
	$(PYTHON) -m facecolor.train gpsagd --init runs/psag/psag.safetensors --data $(DATA)/lfw \
		--data $(DATA)/utkface --val $(DATA)/ffhq_dev --out runs/gpsagd --epochs $(EPOCHS) \
		--val-limit 200 --cache-dir .cache/faces128

train-all:  ## all eleven presets, four families side by side, then Table 2 (faces from scripts/prepare_faces.py)
	PY=$(PYTHON) EPOCHS=$(EPOCHS) bash scripts/train-all.sh

export:  ## ONNX (fp32, fp16) and, where TensorRT is installed, the engine, into models/
	@E=""; $(PYTHON) -c 'import tensorrt' 2>/dev/null && E="--engine models/gpsagd.plan" \
		|| echo "TensorRT not installed: writing the ONNX files only (pip install facecolor[tensorrt])"; \
	$(PYTHON) -m facecolor.export $(MODEL) --onnx models/gpsagd.onnx $$E

bench:  ## latency and parity of the exported model against PyTorch (run make export first)
	$(PYTHON) -m facecolor.bench --engine models/gpsagd.onnx --reference $(MODEL) \
		--data $(DATA)/ffhq_dev --limit 64 --json out/bench.json

gpu-check:  ## on a CUDA machine: the GPU and TensorRT tests, then the benchmark (< 5 minutes)
	bash scripts/gpu-check.sh
