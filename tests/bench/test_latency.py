"""Latency: percentiles, run counts, and a timed fake backend (no model needed)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facecolor.bench.latency import LatencySettings, measure_batch, measure_latency, percentiles, run_count
from facecolor.runtime.backends.base import BackendError


class SleepyBackend:
    """A CPU backend that takes ``ms`` per call and answers zeros of the right shape."""

    name, device, render_size = "sleepy", "cpu", 8

    def __init__(self, ms: float = 2.0, max_batch: int | None = None, fail_above: int | None = None):
        self.ms, self.max_batch, self.fail_above, self.calls = ms, max_batch, fail_above, 0

    def predict_ab(self, l_norm):
        self.calls += 1
        if self.fail_above is not None and len(l_norm) > self.fail_above:
            raise BackendError("out of memory")
        time.sleep(self.ms / 1000)
        return np.zeros((len(l_norm), 2, 8, 8), np.float32)

    def close(self):
        pass


def test_percentiles_are_ordered_and_exact():
    stats = percentiles([5.0, 1.0, 3.0, 2.0, 4.0])
    assert stats["p50_ms"] == 3.0 and stats["min_ms"] == 1.0 and stats["max_ms"] == 5.0
    assert stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]


def test_run_count_fills_min_time_within_bounds():
    settings = LatencySettings(min_time=1.0, min_runs=5, max_runs=100)
    assert run_count(10.0, settings) == 100  # 1 s / 10 ms, capped
    assert run_count(50.0, settings) == 20
    assert run_count(2000.0, settings) == 5  # slow: at least min_runs
    assert run_count(0.0, settings) == 100


def test_measure_batch_times_and_derives_throughput():
    backend = SleepyBackend(ms=2.0)
    result = measure_batch(backend, 4, LatencySettings(min_time=0.05, min_runs=3, warmup_time=0.01))
    assert result.ok and result.timer == "perf_counter"
    assert result.runs >= 3 and backend.calls == result.runs + result.warmup_runs
    assert 1.5 <= result.p50_ms <= result.p90_ms <= result.p99_ms
    assert result.images_per_s == pytest.approx(4 * 1000 / result.p50_ms)


def test_oversized_and_failing_batches_become_statuses():
    settings = LatencySettings(batch_sizes=(1, 2, 8), min_time=0.0, min_runs=1, warmup_runs=1)
    results = measure_latency(SleepyBackend(ms=0.1, max_batch=4, fail_above=1), settings)
    assert [r.batch_size for r in results] == [1, 2, 8]
    assert results[0].ok
    assert results[1].status == "error: out of memory" and results[1].p50_ms is None
    assert results[2].status.startswith("skipped: above the engine's max batch 4")


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError):
        LatencySettings(batch_sizes=(0,))
    with pytest.raises(ValueError):
        LatencySettings(min_runs=10, max_runs=5)


def test_memory_guard_skips_a_batch_that_would_not_fit(monkeypatch):
    from facecolor.bench import latency

    peaks = iter([1_000e6, 1_000e6, 3_400e6])  # at parity (32), after 16 (no growth), after 64
    monkeypatch.setattr(latency, "_peak_rss_bytes", lambda: int(next(peaks)))
    monkeypatch.setattr(latency, "_available_bytes", lambda: int(8e9))
    guard = latency.HostMemoryGuard(already_ran=32)
    assert guard.refusal(16) is None
    guard.record(16)
    assert guard.refusal(64) is None  # one point so far: no slope, run it
    guard.record(64)
    refusal = guard.refusal(256)  # 75 MB per image * 192 more images * 1.1 = 15.8 GB > 8 GB
    assert refusal.startswith("skipped: needs about 15.8 GB more host memory, 8.0 GB available")
    assert "75 MB per image, from batches 32 and 64" in refusal
    assert guard.refusal(96) is None  # 2.6 GB more fits


def test_memory_guard_only_applies_on_the_cpu(monkeypatch):
    from facecolor.bench import latency

    monkeypatch.setattr(latency, "HostMemoryGuard", lambda *a: pytest.fail("no guard for CUDA backends"))
    backend = SleepyBackend(ms=0.1)
    backend.device = "cuda"
    monkeypatch.setattr(latency, "measure_batch", lambda b, size, s: latency.LatencyResult(size, "ok"))
    assert [r.batch_size for r in latency.measure_latency(backend, LatencySettings(batch_sizes=(1, 2)))] == [1, 2]
