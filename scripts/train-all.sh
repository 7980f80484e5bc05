#!/usr/bin/env bash
# Train all eleven presets of the study, family by family, then score them on ffhq_dev.
#
# A family is one G pretraining and the GAN presets that start from it (DESIGN §3):
#   pug -> gu     prg -> gprg gprgd     psg -> gpsg gpsgd     psag -> gpsag gpsagd
# The four families run at the same time (on one GPU, small 128 px models leave it mostly
# idle, so running them side by side costs each far less than 4x); inside a family the GAN
# presets start together once their pretraining is done.
#
#   EPOCHS          epochs per stage (the study: 20); MINUTES_G / MINUTES_GAN cap each stage
#                   in time as well (--max-minutes: the checkpoint records the epochs done)
#   WIDTH           decoder width (0.5: the shipped model's, within git's 25 MB in fp16)
#   FAMILIES        which families, by pretraining preset (default: all four; gpsagd's first)
#   DEVICE, EXTRA   for a CPU dry run: DEVICE=cpu EXTRA="--limit 8 --val-limit 8 --epochs 1"
#   DATA, EVAL      training faces (lfw/ and utkface/ under DATA, val/ beside them) and the
#                   evaluation set; defaults: .faces128 from scripts/prepare_faces.py
#   RUNS, OUT       run folders (logs in RUNS/logs), and the folder that receives six files:
#                   the tables, the gpsagd checkpoint in fp16 and runs.tgz (logs, metrics, plots)
set -uo pipefail
PY=${PY:-python3}; RUNS=${RUNS:-/tmp/runs}; OUT=${OUT:-out/train-all}; LOGS=$RUNS/logs
mkdir -p "$OUT" "$LOGS"
DATA=${DATA:-.faces128}; EVAL=${EVAL:-$DATA/eval/ffhq_dev}; WIDTH=${WIDTH:-0.5}; DEVICE=${DEVICE:-auto}
FAMILIES=${FAMILIES:-psag psg prg pug}
declare -A GANS=([pug]="gu" [prg]="gprg gprgd" [psg]="gpsg gpsgd" [psag]="gpsag gpsagd")

common=(--data "$DATA/train/lfw" --data "$DATA/train/utkface" --val "$DATA/val" --val-limit 500 --width "$WIDTH"
        --device "$DEVICE" --no-progress --cache-dir "$RUNS/.image-cache" --epochs "${EPOCHS:-20}" ${EXTRA:-})
budget() { [ -n "${1:-}" ] && echo "--max-minutes $1"; }
train() {  # PRESET ARGS...: one run, its log in LOGS; says how it ended
    local preset=$1; shift
    if $PY -m facecolor.train "$preset" "${common[@]}" --out "$RUNS/$preset" "$@" >"$LOGS/train-$preset.log" 2>&1; then
        echo "$preset: $(grep -E 'epoch [0-9]+/[0-9]+' "$LOGS/train-$preset.log" | tail -1)"
    else
        echo "$preset FAILED:"; tail -15 "$LOGS/train-$preset.log"; return 1
    fi
}
family() {  # PRETRAIN: its G pretraining, then its GAN presets side by side
    local pretrain=$1 pids=() status=0
    train "$pretrain" $(budget "${MINUTES_G:-}") || return 1
    for gan in ${GANS[$pretrain]}; do
        train "$gan" --init "$RUNS/$pretrain/$pretrain.safetensors" $(budget "${MINUTES_GAN:-}") & pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    return $status
}

for pretrain in $FAMILIES; do  # all checked before anything starts
    [ -n "${GANS[$pretrain]:-}" ] || { echo "unknown family $pretrain (one of: ${!GANS[*]})"; exit 2; }
done
start=$(date +%s); status=0; pids=()
for pretrain in $FAMILIES; do
    family "$pretrain" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "training: $(( $(date +%s) - start )) s"

checkpoints=()
for pretrain in $FAMILIES; do
    for preset in $pretrain ${GANS[$pretrain]}; do
        [ -f "$RUNS/$preset/$preset.safetensors" ] && checkpoints+=("$RUNS/$preset/$preset.safetensors")
    done
done
[ ${#checkpoints[@]} -gt 0 ] || { echo "no checkpoint was written"; exit 1; }
$PY -m facecolor.train eval "${checkpoints[@]}" --data "$EVAL" --device "$DEVICE" \
    --markdown "$OUT/table2_ffhq_dev.md" --json "$OUT/table2_ffhq_dev.json" 2>&1 | tee "$LOGS/eval.log" || status=1
if [ -f "$RUNS/gpsagd/gpsagd.safetensors" ]; then
    $PY -m facecolor.train groups "$RUNS/gpsagd/gpsagd.safetensors" --data "$DATA/val/utkface" --device "$DEVICE" \
        --markdown "$OUT/groups_gpsagd.md" --json "$OUT/groups_gpsagd.json" > "$LOGS/groups.log" 2>&1 || status=1
    $PY -c "import sys; from facecolor.checkpoint import save_half_copy as h; h(sys.argv[1], sys.argv[2])" \
        "$RUNS/gpsagd/gpsagd.safetensors" "$OUT/gpsagd.fp16.safetensors" || status=1
fi
# Logs, metrics, settings and curves of every run (checkpoints, resume files and the contact
# sheets of research-only faces stay behind; see them there, or with eval --sheet).
tar -czf "$OUT/runs.tgz" -C "$RUNS" --exclude='*.safetensors' --exclude='resume*' --exclude='.image-cache' \
    --exclude='contact_sheet.png' . || status=1
echo "total: $(( $(date +%s) - start )) s"
exit $status
