#!/usr/bin/env bash
# The shipped models' chain on a CPU, as trained on the 2-core development VM (docs/training/speed.md):
#   psag (G pretraining, ImageNet encoder) -> gpsagd (D pretraining, then GAN), 64 px, bf16 where
#   the CPU has it, one thread per run, the study's amount of training (11 epochs of the 7,500
#   training faces = 82,500 samples per stage), validated on the held-out split, never ffhq_dev.
# Then Table 2 on ffhq_dev and the vivid-pixel share on bw_real for both models.
#
#   PY, DATA (.faces128 from scripts/prepare_faces.py), RUNS, EPOCHS, WIDTH, RENDER, EXTRA_GAN
#   (e.g. "--mosaic 0.25"), CORE (the core to pin the runs to), SHARED (../shared/data)
# Needs the converted encoder weights first: make weights.
set -euo pipefail
PY=${PY:-.venv/bin/python}; DATA=${DATA:-.faces128}; RUNS=${RUNS:-runs}; EPOCHS=${EPOCHS:-11}
WIDTH=${WIDTH:-0.5}; RENDER=${RENDER:-64}; CORE=${CORE:-0}; SHARED=${SHARED:-../shared/data}
run() { OMP_NUM_THREADS=1 taskset -c "$CORE" "$PY" -m facecolor.train "$@"; }
common=(--data "$DATA/train/lfw" --data "$DATA/train/utkface" --val "$DATA/val" --epochs "$EPOCHS"
        --no-progress --workers 1 --cache-dir "$RUNS/.image-cache")
run psag "${common[@]}" --width "$WIDTH" --render-size "$RENDER" --out "$RUNS/psag64"
# The shipped psag: 4 more epochs at a quarter of the rate, G averaged (the last --epochs wins).
run psag "${common[@]}" --epochs 4 --init "$RUNS/psag64/psag.safetensors" --lr 5e-5 --ema-decay 0.999 --out "$RUNS/psag64-ft"
run gpsagd "${common[@]}" --init "$RUNS/psag64/psag.safetensors" --d-epochs 1 --ema-decay 0.999 \
    ${EXTRA_GAN:-} --out "$RUNS/gpsagd64"
run eval "$RUNS/psag64-ft/psag.safetensors" "$RUNS/gpsagd64/gpsagd.safetensors" --data "$SHARED/faces/ffhq_dev" \
    --device cpu --markdown "$RUNS/table2_ffhq_dev.md" --json "$RUNS/table2_ffhq_dev.json"
for model in psag64-ft/psag gpsagd64/gpsagd; do
    "$PY" -m facecolor.runtime "$SHARED/bw_real" "$RUNS/bw_real-${model%%/*}" --model "$RUNS/$model.safetensors" --device cpu
    "$PY" -m facecolor.train vivid "$RUNS/bw_real-${model%%/*}" --json "$RUNS/vivid-${model%%/*}.json"
done
