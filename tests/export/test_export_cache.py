"""The per-machine cache: built once, reused, keyed by content, safe with concurrent callers."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from facecolor.export import cache as cache_module
from facecolor.export import onnx as onnx_module
from facecolor.export import tensorrt as trt_module
from facecolor.export.cache import cache_root, cached_engine, cached_onnx
from facecolor.errors import Unavailable
from facecolor.export.files import read_sidecar, sha256_file, write_sidecar
from facecolor.export.tensorrt import PLAN_FORMAT, MachineFacts


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECOLOR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECOLOR_CACHE", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    monkeypatch.delenv("FACECOLOR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "facecolor"


def test_onnx_is_exported_once_then_reused(cache, tmp_path, monkeypatch):
    checkpoint = tmp_path / "pug.safetensors"
    checkpoint.write_bytes(b"the fake export does not read it")
    log: list[str] = []
    monkeypatch.setattr(onnx_module, "export_onnx", _fake_export(log))
    fp16 = cached_onnx(checkpoint, fp16=True, max_batch=8)
    digest = sha256_file(checkpoint)[:16]
    fp32_name = f"pug-{digest}-fp32-b8.onnx"
    assert fp16 == cache / "onnx" / f"pug-{digest}-fp16-b8.onnx"
    assert log == [(fp32_name, None), (fp16.name, fp32_name)]  # traced once, fp16 converted from it
    stamp = fp16.stat().st_mtime_ns

    assert cached_onnx(checkpoint, fp16=True, max_batch=8) == fp16
    assert cached_onnx(checkpoint, max_batch=8).name == fp32_name
    assert len(log) == 2  # nothing rebuilt
    assert fp16.stat().st_mtime_ns == stamp
    assert cached_onnx(checkpoint, max_batch=16).name.endswith("-fp32-b16.onnx") and len(log) == 3


def test_a_cached_onnx_that_failed_or_skipped_its_check_is_rebuilt(cache, tmp_path, monkeypatch):
    checkpoint = tmp_path / "pug.safetensors"
    checkpoint.write_bytes(b"bytes")
    log: list[str] = []
    monkeypatch.setattr(onnx_module, "export_onnx", _fake_export(log))
    path = cached_onnx(checkpoint)
    write_sidecar(path, {**read_sidecar(path), "check": {"passed": None}})
    assert cached_onnx(checkpoint) == path and len(log) == 2


def _fake_export(log):
    def fake(checkpoint, out, *, fp32_onnx=None, **kwargs):
        log.append((out.name, fp32_onnx.name if fp32_onnx else None))
        time.sleep(0.3)  # long enough for the other thread to arrive while this one builds
        out.write_bytes(b"onnx")
        write_sidecar(out, {
            "source_checkpoint": {"sha256": sha256_file(checkpoint)},
            "size_bytes": 4,
            "check": {"passed": True},
        })
        return out

    return fake


def test_concurrent_callers_build_once(cache, tmp_path, monkeypatch):
    checkpoint = tmp_path / "c.safetensors"
    checkpoint.write_bytes(b"any bytes: the fake export does not read them")
    log: list[str] = []
    monkeypatch.setattr(onnx_module, "export_onnx", _fake_export(log))
    results = []
    threads = [threading.Thread(target=lambda: results.append(cached_onnx(checkpoint))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 1 and len(set(results)) == 1


def test_a_changed_checkpoint_is_a_new_entry(cache, tmp_path, monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(onnx_module, "export_onnx", _fake_export(log))
    checkpoint = tmp_path / "c.safetensors"
    checkpoint.write_bytes(b"version one")
    first = cached_onnx(checkpoint)
    checkpoint.write_bytes(b"version two")
    second = cached_onnx(checkpoint)
    assert first != second and len(log) == 2


def test_engine_cache_without_tensorrt_says_what_to_install(cache, gpsagd_fp16, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(Unavailable, match=r"pip install facecolor\[tensorrt\]"):
        cached_engine(gpsagd_fp16)


def test_engine_is_built_once_per_machine(cache, gpsagd_fp16, monkeypatch):
    machine = MachineFacts("10.16.1.11", "NVIDIA H100 80GB HBM3", "9.0")
    monkeypatch.setattr(trt_module, "current_machine", lambda: machine)
    built = []

    def fake_build(onnx_path, plan_path, *, max_batch, opt_batch):
        built.append(plan_path)
        plan_path.write_bytes(b"plan for " + machine.gpu_name.encode())
        write_sidecar(plan_path, {
            "format": PLAN_FORMAT, "tensorrt_version": machine.tensorrt_version,
            "gpu_name": machine.gpu_name, "compute_capability": machine.compute_capability,
            "sha256": sha256_file(plan_path), "size_bytes": plan_path.stat().st_size,
        })
        return plan_path

    monkeypatch.setattr(trt_module, "build_engine", fake_build)
    plan = cached_engine(gpsagd_fp16, max_batch=32)
    assert plan.parent == cache / "engines" and machine.slug in plan.name and "-b32-o32-" in plan.name
    assert cached_engine(gpsagd_fp16, max_batch=32) == plan
    assert len(built) == 1

    # Another GPU is another entry; a stale entry (plan replaced behind its sidecar) is rebuilt.
    machine = MachineFacts("10.16.1.11", "NVIDIA H200", "9.0")
    other = cached_engine(gpsagd_fp16, max_batch=32)
    assert other != plan and len(built) == 2
    other.write_bytes(b"corrupted")
    assert cached_engine(gpsagd_fp16, max_batch=32) == other and len(built) == 3


def test_checkpoint_sources_go_through_the_fp16_onnx(cache, tmp_path, monkeypatch):
    checkpoint = tmp_path / "gpsagd.safetensors"
    checkpoint.write_bytes(b"read by the (faked) cached_onnx only")
    monkeypatch.setattr(trt_module, "current_machine", lambda: MachineFacts("10.16.1.11", "X", "9.0"))
    seen = []
    monkeypatch.setattr(cache_module, "cached_onnx", lambda path, fp16, max_batch, notify=None: seen.append((path, fp16, max_batch)) or tmp_path / "g.onnx")
    (tmp_path / "g.onnx").write_bytes(b"onnx")

    def fake_build(onnx_path, plan_path, *, max_batch, opt_batch):
        raise RuntimeError(f"build from {onnx_path.name}")

    monkeypatch.setattr(trt_module, "build_engine", fake_build)
    with pytest.raises(RuntimeError, match="build from g.onnx"):
        cached_engine(checkpoint, max_batch=16)
    assert seen == [(checkpoint, True, 256)]  # one fp16 ONNX serves every engine batch up to 256


def test_a_build_is_announced_and_timed_and_a_reuse_is_silent(cache, tmp_path, monkeypatch):
    checkpoint = tmp_path / "pug.safetensors"
    checkpoint.write_bytes(b"bytes")
    monkeypatch.setattr(onnx_module, "export_onnx", _fake_export([]))
    heard: list[str] = []
    cached_onnx(checkpoint, fp16=True, notify=heard.append)
    assert [line.split(" (")[0].split(" in ")[0] for line in heard] == [
        "building pug.safetensors to fp32 ONNX", f"built pug-{sha256_file(checkpoint)[:16]}-fp32-b256.onnx",
        "building pug.safetensors to fp16 ONNX", f"built pug-{sha256_file(checkpoint)[:16]}-fp16-b256.onnx",
    ]
    assert "first use on this machine" in heard[0] and str(cache / "onnx") in heard[0]
    heard.clear()
    cached_onnx(checkpoint, fp16=True, notify=heard.append)
    assert heard == []
