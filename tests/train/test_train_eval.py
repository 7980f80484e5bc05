"""``facecolor-train eval``: Table 2 for two checkpoints plus the gray baseline, FID note included."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from facecolor.checkpoint import save_checkpoint
from facecolor.metrics import vivid_share
from facecolor.models import build_generator
from facecolor.train.cli import main
from facecolor.train.evaluate import GRAY_BASELINE
from facecolor.train.validate import predict_at_model_size


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, gpsagd_run):
    """The trained tiny gpsagd and an untrained pug (saved as a checkpoint)."""
    out, _ = gpsagd_run
    pug = build_generator("pug", render_size=32, width=0.125)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "pug.safetensors", pug, pug.config)
    return [out / "gpsagd.safetensors", path]


@pytest.fixture
def no_fid_weights(monkeypatch, tmp_path):
    """Make sure clean-fid's weights look absent, whatever this machine's /tmp holds."""
    import facecolor.metrics.fid as fid

    monkeypatch.setattr(fid, "default_weights_path", lambda: tmp_path / "absent" / fid.CLEANFID_WEIGHTS_NAME)


def test_eval_prints_table_and_writes_markdown_and_json(two_checkpoints, tiny_data, tmp_path, no_fid_weights):
    markdown, json_path = tmp_path / "table.md", tmp_path / "table.json"
    args = ["eval", *map(str, two_checkpoints), "--data", str(tiny_data["val"]), "--size", "32",
            "--markdown", str(markdown), "--json", str(json_path)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    for title in ("Hist", "PSNR", "FID", "CIEDE2000", "Colorfulness"):
        assert title in header
    assert any(line.startswith(GRAY_BASELINE) for line in lines)
    assert any(line.startswith("gpsagd") for line in lines) and any(line.startswith("pug") for line in lines)
    assert result.output.count("FID not computed") == 1 and "--fid-weights" in result.output
    assert "n/a*" in result.output

    table = json.loads(json_path.read_text())
    assert [row["name"] for row in table["rows"]] == [GRAY_BASELINE, "gpsagd", "pug"]
    assert table["images"] == 4 and table["render_size"] == 32
    assert all(row["metrics"]["fid"] is None for row in table["rows"])
    assert table["fid_note"].startswith("FID not computed")
    gray = table["rows"][0]["metrics"]
    assert gray["colorfulness_pred"] < 1.0  # the gray baseline really is gray
    text = markdown.read_text()
    assert "| model | Hist ↑ | PSNR ↑ | FID ↓ |" in text and "FID not computed" in text


def test_require_fid_makes_missing_weights_fatal(two_checkpoints, tiny_data, no_fid_weights):
    result = CliRunner().invoke(main, ["eval", str(two_checkpoints[1]), "--data", str(tiny_data["val"]),
                                       "--size", "32", "--require-fid", "--no-gray-baseline"])
    assert result.exit_code == 1 and "Error: FID needs clean-fid's Inception weights" in result.output


def test_eval_rejects_a_non_checkpoint(tiny_data, tmp_path):
    bogus = tmp_path / "model.safetensors"
    bogus.write_bytes(b"not safetensors")
    result = CliRunner().invoke(main, ["eval", str(bogus), "--data", str(tiny_data["val"]), "--size", "32"])
    assert result.exit_code == 1 and "not a readable safetensors checkpoint" in result.output


def test_fid_column_is_filled_when_fid_can_run(two_checkpoints, tiny_data, monkeypatch, tmp_path):
    """The FID plumbing (PNG folders per row, one truth folder) with clean-fid stubbed out."""
    import facecolor.metrics.fid as metrics
    from facecolor.train.evaluate import EvalSettings, evaluate

    calls = []

    def fake_fid(generated, truth, *, weights=None, device="cpu"):
        calls.append((len(list(generated.glob("*.png"))), len(list(truth.glob("*.png"))), weights))
        return 12.5

    monkeypatch.setattr(metrics, "resolve_weights", lambda weights=None: tmp_path / "w.pt")
    monkeypatch.setattr(metrics, "compute_fid", fake_fid)
    table = evaluate(EvalSettings(tuple(map(str, two_checkpoints)), str(tiny_data["val"]),
                                  render_size=32, fid_weights="w.pt", device="cpu"))
    assert table.fid_note is None and calls == [(4, 4, "w.pt")] * 3
    assert [row.metrics["fid"] for row in table.rows] == [12.5, 12.5, 12.5]


def test_eval_draws_a_contact_sheet_with_a_row_per_model(two_checkpoints, tiny_data, tmp_path, no_fid_weights):
    import cv2

    heights = []
    for checkpoints in (two_checkpoints, two_checkpoints[:1]):
        sheet = tmp_path / f"sheet{len(checkpoints)}.png"
        result = CliRunner().invoke(main, ["eval", *map(str, checkpoints), "--data", str(tiny_data["val"]),
                                           "--size", "32", "--sheet", str(sheet), "--sheet-images", "3"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"wrote {sheet}" in result.output
        image = cv2.imread(str(sheet))
        assert image is not None and image.shape[1] > image.shape[0] / 2  # three columns
        heights.append(image.shape[0])
    assert heights[0] / heights[1] == pytest.approx(4 / 3, rel=0.02)  # gray, 2 models, original vs 1 model


def test_a_model_runs_at_its_own_render_size_and_is_scored_at_the_eval_size():
    """A 32 px model on 64 px images: it sees a 32 px L, its ab comes back at 64 px."""
    torch.manual_seed(0)
    generator = build_generator("psag", render_size=32, width=0.125).eval()
    seen = []
    generator.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape)))
    l_norm = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        ab = predict_at_model_size(generator, l_norm)
        direct = generator(torch.nn.functional.interpolate(l_norm, size=(32, 32), mode="area"))
    assert seen[0] == (2, 1, 32, 32) and ab.shape == (2, 2, 64, 64)
    # the 64 px ab is the 32 px prediction upsampled bilinearly, as the runtime upsamples it
    upsampled = torch.nn.functional.interpolate(direct, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(ab, upsampled, atol=1e-5)
    with torch.no_grad():
        same = predict_at_model_size(generator, direct.new_zeros(1, 1, 32, 32))
    assert seen[-1] == (1, 1, 32, 32) and same.shape == (1, 2, 32, 32)


def test_vivid_counts_saturated_pixels_per_image_and_names_the_worst(tmp_path):
    gray = np.full((300, 400, 3), 128, np.uint8)
    half = gray.copy()
    half[:, :200] = (230, 20, 20)  # C*ab about 95: vivid
    muted = np.full((80, 80, 3), (150, 130, 120), np.uint8)  # skin-like, C*ab about 10
    for name, image in {"gray.png": gray, "half.png": half, "sub/muted.jpg": muted}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    result = CliRunner().invoke(main, ["vivid", str(tmp_path), "--json", str(tmp_path.parent / "v.json")])
    assert result.exit_code == 0, result.output
    assert "16.7 % vivid pixels (mean of 3 images" in result.output  # (0 + 0.5 + 0) / 3
    assert result.output.splitlines()[1].strip() == "50.0 %  half.png"
    assert "unreadable, not counted: broken.png" in result.output
    report = json.loads((tmp_path.parent / "v.json").read_text())[0]
    assert report["per_image"]["sub/muted.jpg"] == 0.0 and report["images"] == 3


def test_vivid_share_does_not_depend_on_resolution():
    small = np.zeros((64, 48, 3), np.uint8)
    small[:32] = (20, 200, 40)
    large = cv2.resize(small, (480, 640), interpolation=cv2.INTER_NEAREST)
    assert vivid_share(small) == pytest.approx(0.5) and vivid_share(large) == pytest.approx(0.5, abs=0.01)
