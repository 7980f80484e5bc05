# facecolor: the common jobs. PYTHON defaults to the project's virtual environment.
PYTHON ?= .venv/bin/python
SHIPPED ?= psag
MODEL ?= models/$(SHIPPED).safetensors
DATA ?= ../shared/data/faces
EPOCHS ?= 20

.PHONY: install test demo weights train train-cpu train-all export bench gpu-check

install:  ## a virtual environment with the project and its test tools
	python3 -m venv .venv
	.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	.venv/bin/pip install -q -e '.[dev]'

test:  ## the CPU test suite (GPU and TensorRT tests are marked and skipped here)
	$(PYTHON) -m pytest -q

demo:  ## colorize the public-domain examples/ into out/ with the shipped model
	$(PYTHON) -m facecolor.runtime examples out

FACES ?= .faces128
WEIGHTS_SRC ?= ../shared/data/weights

weights:  ## SqueezeNet 1.1's ImageNet weights, converted from the shared ncnn pair into torchvision's cache
	$(PYTHON) -m facecolor.train import-weights $(WEIGHTS_SRC)

$(FACES)/split.json:  ## the 128 px training faces and the recorded held-out split (scripts/prepare_faces.py)
	$(PYTHON) scripts/prepare_faces.py $(DATA) $(FACES)

train: weights $(FACES)/split.json  ## the shipped model's chain psag -> gpsag, gpsagd, validated on the held-out split, then Table 2 (GPU advised)
	PY=$(PYTHON) EPOCHS=$(EPOCHS) DATA=$(FACES) RUNS=runs OUT=runs/tables FAMILIES=psag bash scripts/train-all.sh

train-cpu: weights $(FACES)/split.json  ## the shipped models' chain on a CPU: psag (then 4 averaged epochs) -> gpsagd at 64 px, bf16, one thread (about 2.5 h), then Table 2 and bw_real's vivid share
	PY=$(PYTHON) DATA=$(FACES) RUNS=runs bash scripts/train-cpu.sh

train-all: weights $(FACES)/split.json  ## all eleven presets, four families side by side, then Table 2
	PY=$(PYTHON) EPOCHS=$(EPOCHS) DATA=$(FACES) RUNS=runs OUT=runs/tables bash scripts/train-all.sh

export:  ## ONNX (fp32, fp16) and, where TensorRT is installed, the engine, into models/
	@E=""; $(PYTHON) -c 'import tensorrt' 2>/dev/null && E="--engine models/$(SHIPPED).plan" \
		|| echo "TensorRT not installed: writing the ONNX files only (pip install facecolor[tensorrt])"; \
	$(PYTHON) -m facecolor.export $(MODEL) --onnx models/$(SHIPPED).onnx $$E

bench:  ## latency and parity of the exported model against PyTorch (run make export first)
	$(PYTHON) -m facecolor.bench --engine models/$(SHIPPED).onnx --reference $(MODEL) \
		--data $(DATA)/ffhq_dev --limit 64 --json out/bench.json

gpu-check:  ## on a CUDA machine: the GPU and TensorRT tests, then the bench on every CUDA backend (< 5 minutes)
	bash scripts/gpu-check.sh
