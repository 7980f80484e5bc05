"""``--ray``: the runtime's pipeline on a local Ray instance (2 CPUs), disk and S3 (moto).

One Ray instance serves the module (starting Ray is the slow part). Every run is compared
byte for byte with the single-process runtime (``run_batch`` with its thread executor) on the
same files with the same backend: outputs carry the same pixels and the same metadata note.
Worker deaths are injected by a test-only actor class (``DyingActor``), never by shipped code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import encode_cv2, moto_s3, portrait, run_single_process, s3_with_tree

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from facecolor.runtime.batch import colorize_tree  # noqa: E402
from facecolor.runtime.cli import run_cli  # noqa: E402
from facecolor.runtime.distributed import ray_job  # noqa: E402
from facecolor.runtime.distributed.ray_job import ColorizeActor, RayExecutor, RaySettings  # noqa: E402
from facecolor.runtime.pipeline import DONE as DONE_STATUS  # noqa: E402
from facecolor.runtime.report import REPORT_NAME  # noqa: E402

class DyingActor(ColorizeActor):
    """A ColorizeActor whose first life exits hard (as if killed) after writing ``die_after``
    files, mid-block; only the first actor to get there (the one that creates ``marker``),
    once per run. The class travels to the workers by value, its attributes with it."""

    die_after = 0
    marker = ""

    def finished_items(self, jobs):
        written = 0
        for item in super().finished_items(jobs):
            yield item
            if self.restarted or not self.die_after or item.status not in (None, DONE_STATUS):
                continue
            written += 1
            if written >= self.die_after:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue  # another actor already died for this run
                os._exit(77)


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file

pytestmark = pytest.mark.slow

DONE = [f"p{i:02d}.jpg" for i in range(10)] + ["sub dir/sixteen.png", "sub dir/ü no-extension", "sub dir/wide.png"]


@pytest.fixture(scope="module")
def ray_local(model_cache):
    # After model_cache: the workers inherit FACECOLOR_CACHE and keep the shipped model there.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "in"
    (root / "sub dir").mkdir(parents=True)
    for i in range(10):
        (root / f"p{i:02d}.jpg").write_bytes(encode_cv2(portrait(64, 48, seed=i), ".jpg"))
    (root / "sub dir" / "sixteen.png").write_bytes(encode_cv2(portrait(48, 64, np.uint16), ".png"))
    (root / "sub dir" / "ü no-extension").write_bytes(encode_cv2(portrait(64, 48, seed=42), ".jpg"))
    (root / "sub dir" / "wide.png").write_bytes(encode_cv2(portrait(32, 96, seed=7), ".png"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "notes.txt").write_bytes(b"ignored\n")
    return root


@pytest.fixture(scope="module")
def reference(tree, tiny_onnx, tmp_path_factory) -> Path:
    """The single-process runtime's outputs for ``tree`` with the same model and backend."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run_single_process(tree, out, tiny_onnx)
    assert report.done == len(DONE) and [f["path"] for f in report.failures] == ["broken.jpg"]
    return out


@pytest.fixture(scope="module")
def s3(tree):
    """A moto S3 server on 127.0.0.1 holding ``tree`` under s3://ray-test/in; yields the fs."""
    with moto_s3() as endpoint:
        yield s3_with_tree("ray-test", tree), {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}


def _assert_same_outputs(reference: Path, read) -> None:
    for rel in DONE:
        assert read(rel) == (reference / rel).read_bytes(), f"{rel} differs from the single-process output"


def test_disk_to_disk_cli_matches_single_process(ray_local, tree, reference, tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ray_job, "ROWS_PER_CHUNK", 8)  # the dataset is a union of chunks, as for big runs
    out = tmp_path / "out"
    code = run_cli(tree, out, ray_address="local", model=tiny_onnx, device="cpu", batch_size=2, num_actors=2,
                   files_per_task=4)
    assert code == 3  # broken.jpg failed, everything else done
    printed = capsys.readouterr()
    assert printed.out.startswith("ray: 2 CPU actors") and "backend: onnxruntime-cpu" in printed.out
    assert "failed: broken.jpg" in printed.err
    _assert_same_outputs(reference, lambda rel: (out / rel).read_bytes())
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["status"] == "complete" and report["counts"] == {"done": len(DONE), "skipped": 0, "failed": 1}
    assert report["backend"]["name"] == "onnxruntime-cpu" and report["model"]["preset"] == "pug"
    assert report["settings"]["ray"]["num_actors"] == 2
    stages = report["timings"]["stages"]  # summed over both actors' blocks
    assert stages["infer"]["items"] == len(DONE) and stages["decode"]["items"] == len(DONE) + 1
    assert sum(actor["cpu_s"] for actor in report["backend"]["actors"].values()) > 0
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_s3_to_s3_survives_a_killed_worker_and_reruns(ray_local, s3, reference, tiny_onnx, tmp_path, monkeypatch):
    fs, options = s3
    marker = tmp_path / "worker-died"
    monkeypatch.setattr(DyingActor, "die_after", 3)  # the first actor to write 3 files dies (os._exit)
    monkeypatch.setattr(DyingActor, "marker", str(marker))
    monkeypatch.setattr(RayExecutor, "actor_class", DyingActor)
    report = colorize_tree("s3://ray-test/in", "s3://ray-test/out", model=tiny_onnx, batch_size=2,
                           ray=RaySettings(num_actors=2, files_per_task=4), storage_options=options)
    assert marker.exists(), "no worker was killed: the fault injection did not fire"
    assert sum(actor["restarts"] for actor in report.backend["actors"].values()) >= 1
    assert report.status == "complete" and report.done == len(DONE)
    assert [f["path"] for f in report.failures] == ["broken.jpg"]
    assert [s["path"] for s in report.skips] == ["notes.txt"]
    _assert_same_outputs(reference, lambda rel: fs.cat(f"ray-test/out/{rel}"))
    written = sorted(key[len("ray-test/out/"):] for key in fs.find("ray-test/out"))
    assert written == sorted(DONE + [REPORT_NAME])  # nothing missing, no temporary objects
    assert json.loads(fs.cat(f"ray-test/out/{REPORT_NAME}"))["counts"]["done"] == len(DONE)

    # The rerun finds every output and leaves them alone, without starting a single actor.
    monkeypatch.setattr(RayExecutor, "actor_class", ColorizeActor)
    before = {key: fs.info(key)["LastModified"] for key in fs.find("ray-test/out") if not key.endswith(REPORT_NAME)}
    again = colorize_tree("s3://ray-test/in", "s3://ray-test/out", model=tiny_onnx, ray=RaySettings(),
                          storage_options=options)
    assert (again.done, again.skipped, again.failed) == (0, len(DONE) + 1, 1)
    fs.invalidate_cache()
    assert {key: fs.info(key)["LastModified"] for key in before} == before


def test_a_model_no_actor_can_open_is_fatal_with_the_reason(ray_local, tree, tmp_path):
    import click

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(click.ClickException, match="an actor could not start: .*Unavailable"):
        run_cli(tree, tmp_path / "out", ray_address="local", model=bad, device="cpu", num_actors=1)
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["status"] == "fatal" and "INVALID_PROTOBUF" in report["fatal_error"]
