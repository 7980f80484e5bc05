"""check_plan without TensorRT: the sidecar decides, and 'this machine' is injected."""

from __future__ import annotations

import pytest

from facecolor.export import tensorrt as trt_module
from facecolor.export.errors import PlanError, PlanMismatchError
from facecolor.export.files import sha256_file, write_sidecar
from facecolor.export.tensorrt import PLAN_FORMAT, MachineFacts, check_plan, timing_cache_path

H100 = MachineFacts(tensorrt_version="10.16.1.11", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")


def _fake_plan(path, built_on: MachineFacts):
    """Plan bytes plus the sidecar build_engine would write, for a plan built on ``built_on``."""
    path.write_bytes(b"not really a TensorRT plan, but its sidecar is what is checked")
    write_sidecar(path, {
        "format": PLAN_FORMAT,
        "format_version": 1,
        "tensorrt_version": built_on.tensorrt_version,
        "gpu_name": built_on.gpu_name,
        "compute_capability": built_on.compute_capability,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "batch_profile": {"min": 1, "opt": 64, "max": 256},
    })
    return path


@pytest.fixture
def on_h100(monkeypatch):
    monkeypatch.setattr(trt_module, "current_machine", lambda: H100)


def test_plan_built_here_is_accepted(tmp_path, on_h100):
    plan = _fake_plan(tmp_path / "gpsagd.plan", H100)
    assert check_plan(plan)["batch_profile"]["max"] == 256


@pytest.mark.parametrize(
    "built_on, named",
    [
        (MachineFacts("10.8.0.43", H100.gpu_name, "9.0"), "TensorRT 10.8.0.43 (this machine: 10.16.1.11)"),
        (MachineFacts(H100.tensorrt_version, "NVIDIA A100-SXM4-80GB", "8.0"), "compute capability 8.0 (this machine: 9.0)"),
        (MachineFacts(H100.tensorrt_version, "NVIDIA H200", "9.0"), "GPU NVIDIA H200 (this machine: NVIDIA H100 80GB HBM3)"),
    ],
)
def test_plan_for_another_machine_is_refused_with_how_to_rebuild(tmp_path, on_h100, built_on, named):
    plan = _fake_plan(tmp_path / "gpsagd.plan", built_on)
    with pytest.raises(PlanMismatchError) as caught:
        check_plan(plan)
    message = str(caught.value)
    assert named in message
    assert f"facecolor-export CHECKPOINT --engine {plan}" in message
    assert "delete it" in message


def test_plan_without_sidecar_or_with_other_bytes_is_refused(tmp_path, on_h100):
    plan = _fake_plan(tmp_path / "gpsagd.plan", H100)
    plan.write_bytes(b"replaced after the sidecar was written!!!!!!!!!!!!!!!!!!!!!!!!!!")
    with pytest.raises(PlanError, match="does not match its sidecar"):
        check_plan(plan)
    plan.with_name(plan.name + ".json").unlink()
    with pytest.raises(PlanError, match="no readable sidecar"):
        check_plan(plan)
    with pytest.raises(PlanError, match="no TensorRT plan"):
        check_plan(tmp_path / "missing.plan")


def test_machine_slug_is_a_safe_file_name():
    assert H100.slug == "trt10.16.1.11-nvidia-h100-80gb-hbm3-sm90"


def test_timing_cache_sits_beside_the_plan(tmp_path):
    assert timing_cache_path(tmp_path / "m.plan") == tmp_path / "m.plan.timing-cache"
