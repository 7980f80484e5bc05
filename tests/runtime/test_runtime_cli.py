"""facecolor-batch end to end on the CPU with a tiny exported model: a folder of bad and odd
files, the report, exit codes, the first line, reruns, --format, help."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps
from runtime_helpers import encode_cv2, portrait

from facecolor.runtime.backends import select as select_module
from facecolor.runtime.cli import main
from facecolor.runtime.decode import decode_image
from facecolor.runtime.report import REPORT_NAME


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def upright_size(path: Path) -> tuple[int, int]:
    image = ImageOps.exif_transpose(Image.open(path))
    return image.height, image.width


def test_help_has_every_option_and_an_example():
    result = run("--help")
    assert result.exit_code == 0
    for option in ["--model", "--device", "--batch-size", "--render-size", "--overwrite", "--format",
                   "--quality", "--workers", "--max-pixels"]:
        assert option in result.output
    assert "Example: facecolor-batch" in result.output


def test_facecolor_group_mounts_batch():
    from facecolor.cli import main as group

    result = CliRunner().invoke(group, ["batch", "--help"])
    assert result.exit_code == 0 and "IN_DIR OUT_DIR" in result.output


def test_odd_files_end_to_end(odd_tree, tmp_path, tiny_onnx):
    root, expect = odd_tree
    out = tmp_path / "out"
    before = digest_tree(root)
    result = run(root, out, "--model", tiny_onnx, "--batch-size", 3)
    assert result.exit_code == 3, result.output

    lines = result.stdout.splitlines()
    assert lines[0] == "backend: onnxruntime-cpu on CPU (no CUDA device; TensorRT not installed)" or (
        lines[0].startswith("backend: onnxruntime-cpu on CPU (no CUDA device")
    )
    done = sorted(name for name, outcome in expect.items() if outcome == "done")
    failed = sorted(name for name, outcome in expect.items() if outcome == "failed")
    skipped = [name for name, outcome in expect.items() if outcome == "skipped"]
    assert f"done {len(done)}, skipped {len(skipped)}, failed {len(failed)}" in result.stdout
    assert "1 symlink to a file outside IN_DIR" in result.stdout
    assert "1 GIF is not read" in result.stdout
    assert "failed: pages.tif: 2 frames (animated or multi-page TIFF)" in result.stderr
    for name in failed:
        assert f"failed: {name}: " in result.stderr

    report = json.loads((out / REPORT_NAME).read_text())
    assert report["status"] == "complete"
    assert report["counts"] == {"done": len(done), "skipped": len(skipped), "failed": len(failed)}
    assert report["backend"]["name"] == "onnxruntime-cpu" and report["backend"]["reason"] == lines[0]
    reasons = {f["path"]: f["reason"] for f in report["failed"]}
    assert sorted(reasons) == failed
    assert "empty file" in reasons["zero.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "exceeds the limit of 100 MP" in reasons["bomb.png"]
    assert report["skipped"] == [
        {"path": "animated.gif", "reason": "GIF is not read (JPEG, PNG, TIFF, BMP, WebP are); convert it to PNG to include it"},
        {"path": "link-outside.jpg", "reason": "symlink to a file outside IN_DIR (not followed)"},
    ]
    assert set(report["timings"]["stages"]) == {"read", "decode", "infer", "write"}

    for name in done:
        output = out / name
        decoded = decode_image(output.read_bytes())
        assert decoded.pixels.ndim == 3  # colorized
        assert decoded.pixels.shape[:2] == upright_size(root / name), name
    assert decode_image((out / "sixteen.png").read_bytes()).bit_depth == 16
    assert decode_image((out / "scan.tif").read_bytes()).format == "tiff"
    assert decode_image((out / "png-named.jpg").read_bytes()).format == "jpeg"  # named .jpg: a JPEG
    assert decode_image((out / "no-extension").read_bytes()).format == "jpeg"
    note = "colorized by facecolor"
    assert Image.open(out / "plain.jpg").info["comment"].decode().startswith(note)
    assert Image.open(out / "sixteen.png").text["Comment"].startswith(note)
    assert Image.open(out / "scan.tif").tag_v2[270].startswith(note)
    assert "model pug (sha256:" in Image.open(out / "plain.jpg").info["comment"].decode()

    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == []  # no temp files, no lock file
    assert not (out / "notes.txt").exists() and not (out / "link-outside.jpg").exists()
    assert digest_tree(root) == before  # inputs untouched


@pytest.fixture
def good_tree(tmp_path):
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    for i, (h, w) in enumerate([(120, 90), (90, 120), (64, 64), (33, 200)]):
        (root / ("a" if i % 2 else ".") / f"img{i}.png").write_bytes(encode_cv2(portrait(h, w, seed=i), ".png"))
    return root


def test_rerun_skips_and_overwrite_redoes(good_tree, tmp_path, tiny_onnx):
    out = tmp_path / "out"
    assert run(good_tree, out, "--model", tiny_onnx).exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert len(stamps) == 4
    result = run(good_tree, out, "--model", tiny_onnx)
    assert result.exit_code == 0 and "done 0, skipped 4, failed 0" in result.stdout
    assert "skipped: 4 output exists (pass --overwrite to redo it)" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    result = run(good_tree, out, "--model", tiny_onnx, "--overwrite")
    assert result.exit_code == 0 and "done 4, skipped 0, failed 0" in result.stdout


def test_format_jpg_converts_names_and_content(good_tree, tmp_path, tiny_onnx):
    out = tmp_path / "out"
    assert run(good_tree, out, "--model", tiny_onnx, "--format", "jpg", "--quality", "80").exit_code == 0
    outputs = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert outputs == ["a/img1.jpg", "a/img3.jpg", "img0.jpg", "img2.jpg"]
    assert all(decode_image(p.read_bytes()).format == "jpeg" for p in out.rglob("*.jpg"))


def test_out_dir_inside_in_dir(good_tree, tiny_onnx):
    out = good_tree / "colored"
    assert run(good_tree, out, "--model", tiny_onnx).exit_code == 0
    result = run(good_tree, out, "--model", tiny_onnx)  # outputs are not read back as inputs
    assert "done 0, skipped 4, failed 0" in result.stdout


@pytest.mark.parametrize("where", ["same", "parent"])
def test_out_dir_that_holds_in_dir_is_a_usage_error(good_tree, tiny_onnx, where):
    out = good_tree if where == "same" else good_tree.parent
    result = run(good_tree, out, "--model", tiny_onnx)
    assert result.exit_code == 2 and "outputs could replace inputs" in result.output


def test_usage_errors_exit_2(good_tree, tmp_path, tiny_onnx):
    assert run(tmp_path / "missing", tmp_path / "out").exit_code == 2
    assert run(good_tree, tmp_path / "out", "--format", "gif").exit_code == 2
    assert run(good_tree, tmp_path / "out", "--batch-size", 0).exit_code == 2
    assert run(good_tree, tmp_path / "out", "--model", tmp_path / "missing.onnx").exit_code == 2


def test_no_shipped_model_is_fatal(good_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(select_module, "SHIPPED_MODEL", "missing-model.safetensors")
    result = run(good_tree, tmp_path / "out")
    assert result.exit_code == 1
    assert "Error: no shipped model: pass --model or run make train" in result.output


def test_locked_out_dir_is_fatal(good_tree, tmp_path, tiny_onnx):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".facecolor-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = run(good_tree, out, "--model", tiny_onnx)
    assert result.exit_code == 1 and "another facecolor-batch is writing" in result.output


def test_max_pixels_option(good_tree, tmp_path, tiny_onnx):
    result = run(good_tree, tmp_path / "out", "--model", tiny_onnx, "--max-pixels", 8000)
    assert result.exit_code == 3
    assert "done 2, skipped 0, failed 2" in result.stdout  # 120x90 and 90x120 are over 8000 px


def test_checkpoint_model_and_render_size(good_tree, tmp_path, tiny_checkpoint):
    result = run(good_tree, tmp_path / "out", "--model", tiny_checkpoint, "--render-size", 32, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("backend: torch-cpu on CPU (--device cpu; --render-size 32")
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["backend"]["render_size"] == 32 and report["model"]["preset"] == "pug"


def test_first_use_of_a_checkpoint_says_it_is_exporting(good_tree, tmp_path, tiny_checkpoint, monkeypatch):
    """The export takes seconds to a minute on a CPU: the user hears about it, once."""
    monkeypatch.setenv("FACECOLOR_CACHE", str(tmp_path / "fresh-cache"))
    first = CliRunner().invoke(main, [str(good_tree), str(tmp_path / "a"), "--model", str(tiny_checkpoint)])
    assert first.exit_code == 0, first.output
    assert "building tiny-pug.safetensors to fp32 ONNX (first use on this machine" in first.stderr
    assert first.stdout.splitlines()[0].startswith("backend: onnxruntime-cpu")
    again = CliRunner().invoke(main, [str(good_tree), str(tmp_path / "b"), "--model", str(tiny_checkpoint)])
    assert again.exit_code == 0 and "building" not in again.stderr
