#!/usr/bin/env bash
# On the GPU machine: train the shipped model's chain psag -> gpsagd (and gpsag beside it) on
# the pre-resized faces (.faces128/, made by scripts/prepare_faces.py), score them on the
# held-out ffhq_dev, and pack what comes back into $OUT (at most 8 files of 16 MiB each).
#   MINUTES_G / MINUTES_GAN: time budgets of the two phases; WIDTH: decoder width;
#   DEVICE, EXTRA: for a CPU dry run of this script (DEVICE=cpu EXTRA="--limit 32 --epochs 1").
set -uo pipefail
[ "${DEVICE:-cuda}" = cuda ] && source scripts/gpu-env.sh
PY=${PY:-python3}; OUT=${OUT:-out/gpu-train}; mkdir -p "$OUT"
D=.faces128; RUNS=${RUNS:-/tmp/runs}; WIDTH=${WIDTH:-0.5}
common=(--data $D/train/lfw --data $D/train/utkface --val $D/val --val-limit 500
        --device "${DEVICE:-cuda}" --no-progress --cache-dir /tmp/facecolor-cache --workers 8 ${EXTRA:-})
train() { $PY -m facecolor.train "$@" >> "$OUT/train-$1.log" 2>&1; }

train psag "${common[@]}" --width "$WIDTH" --out $RUNS/psag --max-minutes "${MINUTES_G:-3}" \
    || { tail -30 "$OUT/train-psag.log"; exit 1; }
tail -4 "$OUT/train-psag.log"
for preset in gpsagd gpsag; do
    train $preset "${common[@]}" --init $RUNS/psag/psag.safetensors --out $RUNS/$preset \
        --max-minutes "${MINUTES_GAN:-3.5}" &
done
wait
tail -4 "$OUT/train-gpsagd.log" "$OUT/train-gpsag.log"
$PY -m facecolor.train eval $RUNS/psag/psag.safetensors $RUNS/gpsag/gpsag.safetensors \
    $RUNS/gpsagd/gpsagd.safetensors --data $D/eval/ffhq_dev --device "${DEVICE:-cuda}" \
    --markdown $RUNS/table2.md --json $RUNS/table2.json 2>&1 | tee "$OUT/eval.log"
for preset in psag gpsag gpsagd; do
    $PY -c "import sys; from facecolor.checkpoint import save_half_copy as h; h(sys.argv[1], sys.argv[2])" \
        $RUNS/$preset/$preset.safetensors "$OUT/$preset.fp16.safetensors"
done
tar -czf "$OUT/runs.tgz" -C $RUNS --exclude='*.safetensors' --exclude='resume*' . 
ls -la "$OUT"
