#!/usr/bin/env bash
# On the lent GPU machine: install what it lacks (gpu-env.sh), then train and score the presets
# with scripts/train-all.sh on the pre-resized faces that travelled in .faces128/. Everything
# that comes back (at most 8 files of 16 MiB) is written to $OUT.
#   e.g. OUT=$OUT MINUTES_G=2.5 MINUTES_GAN=5 bash scripts/gpu-train.sh          (all eleven)
#        OUT=$OUT FAMILIES=psag bash scripts/gpu-train.sh                           (psag, gpsag, gpsagd)
set -uo pipefail
source scripts/gpu-env.sh || exit 1
DEVICE=cuda PY=python3 exec bash scripts/train-all.sh
