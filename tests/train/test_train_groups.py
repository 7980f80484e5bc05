"""facecolor-train groups: per-group numbers from UTKFace-style labelled file names."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from train_testkit import invoke

from facecolor.checkpoint import save_checkpoint
from facecolor.models import build_generator
from facecolor.train.fairness import group_rows, labels_of, skin_chroma


def test_labels_come_from_utkface_names_and_odd_names_have_none():
    assert labels_of("/x/25_1_3_20170104.jpg.chip.jpg") == ("Indian", "female")
    assert labels_of("40_0_1_2017.jpg") == ("Black", "male")
    assert labels_of("Aaron_Eckhart_0001.jpg") is None
    assert labels_of("25_2_3_x.jpg") is None


def test_skin_chroma_reads_the_central_box_only():
    images = np.full((1, 40, 40, 3), 128, np.uint8)  # gray: chroma 0
    assert skin_chroma(images)[0] == pytest.approx(0.0, abs=0.01)
    images[0, 20:25, 15:25] = (200, 140, 110)  # a skin tone inside the box
    images[0, :5, :5] = (0, 0, 255)  # strong blue outside it
    inside = skin_chroma(images)[0]
    assert 0 < inside < 30


def test_groups_average_their_members():
    labels = [("White", "male"), ("Black", "female"), ("Black", "male")]
    metrics = [{"psnr": 30.0, "ciede2000": 2.0}, {"psnr": 20.0, "ciede2000": 6.0},
               {"psnr": 24.0, "ciede2000": 4.0}]
    rows = {r.group: r for r in group_rows(labels, metrics, np.array([10.0, 20.0, 30.0]),
                                           np.array([20.0, 20.0, 20.0]))}
    assert rows["all"].images == 3 and rows["Black"].psnr == 22.0
    assert rows["male"].skin_chroma_pred == 20.0 and rows["Black"].chroma_ratio == 1.25
    assert "Asian" not in rows


def test_groups_command_writes_the_table(tmp_path):
    data = tmp_path / "utk"
    data.mkdir()
    rng = np.random.default_rng(0)
    for index, (gender, race) in enumerate([(0, 0), (1, 1), (0, 2), (1, 3)]):
        image = rng.integers(60, 200, (48, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(data / f"{20 + index}_{gender}_{race}_2017.jpg.chip.jpg"), image)
    cv2.imwrite(str(data / "no_labels.jpg"), np.zeros((48, 48, 3), np.uint8))
    torch.manual_seed(0)
    generator = build_generator("pug", width=0.125, render_size=32)
    checkpoint = save_checkpoint(tmp_path / "pug.safetensors", generator, generator.config)
    result = invoke(["groups", checkpoint, "--data", data, "--json", tmp_path / "g.json",
                     "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "g.json").read_text())["rows"]
    assert [r["group"] for r in rows] == ["all", "White", "Black", "Asian", "Indian", "male", "female"]
    assert rows[0]["images"] == 4
    assert "| Black | 1 |" in result.output


def test_groups_command_refuses_a_folder_without_labels(tmp_path):
    data = tmp_path / "plain"
    data.mkdir()
    cv2.imwrite(str(data / "face.jpg"), np.zeros((48, 48, 3), np.uint8))
    generator = build_generator("pug", width=0.125, render_size=32)
    checkpoint = save_checkpoint(tmp_path / "pug.safetensors", generator, generator.config)
    result = invoke(["groups", checkpoint, "--data", data, "--device", "cpu"])
    assert result.exit_code == 1 and "UTKFace" in result.output
