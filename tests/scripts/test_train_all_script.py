"""scripts/train-all.sh, the one command a lent GPU session runs to train and score the presets:
a CPU dry run on tiny made-up faces, two families, checked for what comes back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _faces(folder: Path, count: int, utkface: bool, seed: int) -> None:
    """Colored blobs on gradients; UTKFace-style names (age_gender_race_time) where needed."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = np.zeros((40, 40, 3), np.uint8)
        image[:] = rng.integers(40, 220, 3)
        cv2.circle(image, (20, 20), 12, [int(v) for v in rng.integers(0, 255, 3)], -1)
        name = f"{20 + i}_{i % 2}_{i % 5}_2017{i:04d}.jpg.chip.jpg" if utkface else f"face_{i}.jpg"
        cv2.imwrite(str(folder / name), image)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_trains_two_families_and_packs_six_files(tmp_path):
    data = tmp_path / "faces"
    for index, (part, utkface) in enumerate([("train/lfw", False), ("train/utkface", True), ("val/lfw", False),
                                             ("val/utkface", True), ("eval/ffhq_dev", False)]):
        _faces(data / part, 6, utkface, index)
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "DATA": str(data), "DEVICE": "cpu", "PY": sys.executable, "RUNS": str(runs),
           "OUT": str(out), "FAMILIES": "psag pug", "OMP_NUM_THREADS": "1",
           "EXTRA": "--limit 4 --val-limit 4 --epochs 1 --width 0.125 --render-size 32 --workers 1"}
    result = subprocess.run(["bash", "scripts/train-all.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each GAN preset started from its family's pretraining, and every run reported an epoch.
    for preset in ("psag", "gpsag", "gpsagd", "pug", "gu"):
        assert f"{preset}: " in result.stdout and "epoch 1/1" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "gpsagd.fp16.safetensors", "groups_gpsagd.json", "groups_gpsagd.md", "runs.tgz",
        "table2_ffhq_dev.json", "table2_ffhq_dev.md"]  # within the device's 8 files
    table = json.loads((out / "table2_ffhq_dev.json").read_text())
    assert [row["name"] for row in table["rows"]] == ["gray (input)", "psag", "gpsag", "gpsagd", "pug", "gu"]
    with tarfile.open(out / "runs.tgz") as archive:
        names = archive.getnames()
    assert "./logs/train-gpsagd.log" in names and "./gpsagd/metrics.json" in names
    assert not any(name.endswith((".safetensors", "contact_sheet.png")) for name in names)


def test_an_unknown_family_is_refused(tmp_path):
    env = {**os.environ, "FAMILIES": "psag gpsagd", "RUNS": str(tmp_path / "r"), "OUT": str(tmp_path / "o")}
    result = subprocess.run(["bash", "scripts/train-all.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "unknown family gpsagd" in result.stdout
    assert not (tmp_path / "r" / "psag").exists()  # nothing started
