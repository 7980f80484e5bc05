"""``facecolor-train eval``: Table 2 for two checkpoints plus the gray baseline, FID note included."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from facecolor.checkpoint import save_checkpoint
from facecolor.models import build_generator
from facecolor.train.cli import main
from facecolor.train.evaluate import GRAY_BASELINE


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
    import facecolor.metrics as metrics
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
