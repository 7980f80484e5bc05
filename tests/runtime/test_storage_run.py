"""Single-machine runs with s3:// IN or OUT (moto on 127.0.0.1), against the local runtime."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from runtime_helpers import FakeBackend, encode_cv2, encode_pil, moto_s3, portrait, run_single_process, s3_with_tree

from facecolor.runtime.batch import colorize_tree
from facecolor.runtime.cli import run_cli
from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.pipeline_gpu import GpuPipeline
from facecolor.runtime.run import LocationError, run_batch
from facecolor.runtime.report import REPORT_NAME

DONE = ["a.jpg", "b.png", "deep/sixteen.png", "deep/no extension"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("urls") / "in"
    (root / "deep").mkdir(parents=True)
    (root / "a.jpg").write_bytes(encode_cv2(portrait(64, 48), ".jpg"))
    (root / "b.png").write_bytes(encode_cv2(portrait(40, 72, seed=3), ".png"))
    (root / "deep" / "sixteen.png").write_bytes(encode_cv2(portrait(48, 64, np.uint16), ".png"))
    (root / "deep" / "no extension").write_bytes(encode_cv2(portrait(64, 48, seed=5), ".jpg"))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "readme.txt").write_bytes(b"not an image\n")
    (root / "old.gif").write_bytes(encode_pil(portrait(40, 30), "GIF"))  # a format not read
    return root


@pytest.fixture(scope="module")
def reference(tree, tiny_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("urls-reference") / "out"
    run_single_process(tree, out, tiny_onnx)
    return out


@pytest.fixture(scope="module")
def s3(tree):
    """moto on 127.0.0.1, the AWS variables pointing at it, ``tree`` under s3://urls/in."""
    with moto_s3():
        yield s3_with_tree("urls", tree)


def _run(in_url, out_url, model, **options):
    return colorize_tree(in_url, out_url, model=model, device="cpu", batch_size=2, workers=2,
                            echo=lambda line: None, **options)


def test_local_to_s3_matches_the_local_runtime(s3, tree, reference, tiny_onnx):
    report = _run(tree, "s3://urls/from-disk", tiny_onnx)
    assert (report.done, report.failed) == (len(DONE), 1)
    for rel in DONE:
        assert s3.cat(f"urls/from-disk/{rel}") == (reference / rel).read_bytes(), rel
    document = json.loads(s3.cat(f"urls/from-disk/{REPORT_NAME}"))
    assert document["failed"][0]["path"] == "broken.png" and document["settings"]["out_dir"] == "s3://urls/from-disk"
    assert sorted(k.split("from-disk/")[1] for k in s3.find("urls/from-disk")) == sorted(DONE + [REPORT_NAME])


def test_s3_to_local_matches_and_reruns_skip(s3, reference, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    report = _run("s3://urls/in", out, tiny_onnx)
    assert (report.done, report.failed) == (len(DONE), 1)
    reasons = {skip["path"]: skip["reason"] for skip in report.skips}
    assert set(reasons) == {"readme.txt", "old.gif"}
    assert reasons["old.gif"].startswith("GIF is not read") and reasons["readme.txt"].startswith("not an image")
    for rel in DONE:
        assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel
    assert not [p for p in out.rglob(".*")], "a temporary or lock file was left in OUT"
    again = _run("s3://urls/in", out, tiny_onnx)
    assert (again.done, again.skipped, again.failed) == (0, len(DONE) + 2, 1)


def test_s3_to_s3_format_and_name_collisions(s3, tiny_onnx):
    s3.pipe("urls/clash/x.jpg", encode_cv2(portrait(40, 40), ".jpg"))
    s3.pipe("urls/clash/x.png", encode_cv2(portrait(40, 40, seed=1), ".png"))
    report = _run("s3://urls/clash", "s3://urls/clash-out", tiny_onnx, out_format="png")
    assert report.done == 1 and len(report.failures) == 1 and "already written from" in report.failures[0]["reason"]
    assert s3.cat("urls/clash-out/x.png").startswith(b"\x89PNG")


def test_out_inside_in_is_not_read_back(s3, tiny_onnx):
    s3.pipe("urls/nest/a.jpg", encode_cv2(portrait(40, 40), ".jpg"))
    first = _run("s3://urls/nest", "s3://urls/nest/colored", tiny_onnx)
    second = _run("s3://urls/nest", "s3://urls/nest/colored", tiny_onnx)
    assert (first.done, second.done, second.skipped) == (1, 0, 1)


def test_bad_locations_are_fatal_with_a_reason(s3, tiny_onnx):
    with pytest.raises(LocationError, match="IN or contains it"):
        _run("s3://urls/in/deep", "s3://urls/in", tiny_onnx)
    with pytest.raises(LocationError, match="no such bucket or prefix"):
        _run("s3://urls/nothing-here", "s3://urls/out-x", tiny_onnx)
    with pytest.raises(LocationError, match="create the bucket"):
        _run("s3://urls/in", "s3://no-such-bucket/out", tiny_onnx)


def test_cli_entry_prints_backend_first_and_exits_3_on_failures(s3, tiny_onnx, capsys):
    code = run_cli("s3://urls/in", "s3://urls/cli-out", ray_address=None, model=tiny_onnx, device="cpu", workers=1)
    printed = capsys.readouterr()
    assert code == 3
    assert printed.out.splitlines()[0].startswith("backend: onnxruntime-cpu")
    assert "failed: broken.png" in printed.err and f"s3://urls/cli-out/{REPORT_NAME}" in printed.out


class TensorFake(FakeBackend):
    """FakeBackend with the CUDA backends' contract (torch tensors in and out), on the CPU."""

    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(super().predict_ab(l_norm.numpy()))


def test_url_in_through_the_gpu_stages(tmp_path):
    """The GPU path's ``read`` triages the bytes the URL reader fetched (its stages on the CPU)."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/gpu-stages-in/a.jpg", encode_cv2(portrait(64, 48), ".jpg"))
    fs.pipe("/gpu-stages-in/deep/b.png", encode_cv2(portrait(40, 72, seed=3), ".png"))
    backend = TensorFake()
    executor = ThreadExecutor(backend, "test", lambda settings: GpuPipeline(settings, backend, device="cpu").stages())
    settings = Settings(in_dir="memory://gpu-stages-in", out_dir=tmp_path / "out", batch_size=2, workers=2)
    report = run_batch(settings, executor, progress=False, echo=lambda line: None)
    assert (report.done, report.failed, report.status) == (2, 0, "complete")
    assert (tmp_path / "out" / "a.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert (tmp_path / "out" / "deep" / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
