"""The backend alone, per batch size (STYLE point 9): the bench's one timer of a model.

Warm-up first, so lazy allocations, cuDNN/ONNX Runtime autotuning and CPU frequency ramps are
over; then as many runs as fill ``min_time``. On CUDA, events on the current torch stream (the
backends order their own streams after it) give device time, free of Python launch jitter.
images/s = batch size / p50: the median, so one preempted run on a shared machine does not
move the throughput.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facecolor.runtime.backends.base import Backend
from facecolor.runtime.pipeline import failure_reason

DEFAULT_BATCH_SIZES = (1, 16, 64, 256)


@dataclass(frozen=True)
class LatencySettings:
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    min_time: float = 2.0  # seconds of timed runs per batch size
    min_runs: int = 5
    max_runs: int = 1000
    warmup_runs: int = 2
    warmup_time: float = 0.5  # seconds; capped at min_time so short test runs stay short
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be positive integers, got {self.batch_sizes}")
        if self.min_time < 0 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError(
                f"need min_time >= 0 and 1 <= min_runs <= max_runs, got {self.min_time}, "
                f"{self.min_runs}, {self.max_runs}"
            )


@dataclass(frozen=True)
class LatencyResult:
    """Times in milliseconds; None where status is not 'ok'."""

    batch_size: int
    status: str  # 'ok', 'skipped: ...' or 'error: ...'
    timer: str = ""  # 'cuda-events' or 'perf_counter'
    warmup_runs: int = 0
    runs: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    images_per_s: float | None = None
    cpu_s_per_image: float | None = None  # this process's CPU time (all threads) over the timed runs

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
    }


def run_count(estimate_ms: float, settings: LatencySettings) -> int:
    if estimate_ms <= 0:
        return settings.max_runs
    wanted = math.ceil(settings.min_time * 1000.0 / estimate_ms)
    return int(min(settings.max_runs, max(settings.min_runs, wanted)))


# --------------------------------------------------------------------------- timers


def _cpu_timer(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def _cuda_timer() -> Callable[[Callable[[], Any]], float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(call: Callable[[], Any]) -> float:
        start.record()
        call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


# --------------------------------------------------------------------------- host memory


def _peak_rss_bytes() -> int | None:
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


def _available_bytes() -> int | None:
    """What can be allocated without swapping (MemAvailable), or None."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class HostMemoryGuard:
    """Skips a CPU batch size that would not fit in memory, instead of letting the kernel's
    OOM killer end the whole bench (a large model at batch 256 can need tens of GB on the CPU:
    self-attention alone holds an (HW)^2 matrix per image). Memory per image is the slope of
    the peak resident memory between the last two sizes run; a larger size runs when its
    projected extra memory, plus 10%, is available.
    """

    MARGIN = 1.1

    def __init__(self, already_ran: int = 0) -> None:
        peak = _peak_rss_bytes()
        self.points: list[tuple[int, int]] = [(already_ran, peak)] if peak is not None and already_ran else []

    def record(self, batch_size: int) -> None:
        peak = _peak_rss_bytes()
        if peak is not None and (not self.points or batch_size > self.points[-1][0]):
            self.points.append((batch_size, peak))

    def refusal(self, batch_size: int) -> str | None:
        if len(self.points) < 2 or batch_size <= self.points[-1][0]:
            return None
        (b1, m1), (b2, m2) = self.points[-2], self.points[-1]
        per_image = (m2 - m1) / (b2 - b1)
        available = _available_bytes()
        if per_image <= 0 or available is None:
            return None
        needed = per_image * (batch_size - b2) * self.MARGIN
        if needed <= available:
            return None
        return (
            f"skipped: needs about {needed / 1e9:.1f} GB more host memory, {available / 1e9:.1f} GB "
            f"available ({per_image / 1e6:.0f} MB per image, from batches {b1} and {b2})"
        )


# --------------------------------------------------------------------------- measuring


def measure_batch(backend: Backend, batch_size: int, settings: LatencySettings) -> LatencyResult:
    """A failure (out of memory, a shape the engine refuses) is an 'error' result, so the other
    sizes still run."""
    if backend.max_batch is not None and batch_size > backend.max_batch:
        return LatencyResult(batch_size, f"skipped: above the engine's max batch {backend.max_batch}")
    on_cuda = backend.device == "cuda"
    timer = _cuda_timer() if on_cuda else _cpu_timer
    try:
        # float32 [N, 1, S, S] in [-1, 1]: speed does not depend on the values; a fixed seed keeps runs comparable
        size = backend.render_size
        batch = np.random.default_rng(settings.seed).uniform(-1.0, 1.0, (batch_size, 1, size, size)).astype(np.float32)
        batch = torch.from_numpy(batch).to("cuda") if on_cuda else batch
        call = lambda: backend.predict_ab(batch)  # noqa: E731 - the one thing being timed
        warmup: list[float] = []
        warmup_budget = min(settings.warmup_time, settings.min_time)
        started = time.perf_counter()
        while len(warmup) < settings.warmup_runs or time.perf_counter() - started < warmup_budget:
            warmup.append(timer(call))
        runs = run_count(float(np.median(warmup)), settings)
        cpu = time.process_time()
        samples = [timer(call) for _ in range(runs)]
        cpu = (time.process_time() - cpu) / (runs * batch_size)
    except Exception as error:  # the backend's errors, and CUDA out-of-memory and friends raised outside it
        return LatencyResult(batch_size, f"error: {failure_reason(error)}")
    stats = percentiles(samples)
    return LatencyResult(
        batch_size=batch_size,
        status="ok",
        timer="cuda-events" if on_cuda else "perf_counter",
        warmup_runs=len(warmup),
        runs=runs,
        images_per_s=batch_size * 1000.0 / stats["p50_ms"] if stats["p50_ms"] > 0 else math.inf,
        cpu_s_per_image=cpu,
        **stats,
    )


def measure_latency(backend: Backend, settings: LatencySettings, *, already_ran: int = 0) -> list[LatencyResult]:
    """``already_ran``: the largest batch the backend has run before (already in the peak)."""
    guard = HostMemoryGuard(already_ran) if backend.device == "cpu" else None
    results = []
    for size in sorted(set(settings.batch_sizes)):
        refusal = guard.refusal(size) if guard is not None else None
        if refusal is not None:
            results.append(LatencyResult(size, refusal))
            continue
        results.append(measure_batch(backend, size, settings))
        if guard is not None:
            guard.record(size)
    return results
