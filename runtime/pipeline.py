"""The stage runner both pipelines share (DESIGN §7).

A pipeline is a list of stages over ``Item``s, each in its own threads, joined by bounded
queues, so reading, decoding, inference and writing overlap and memory stays bounded by the
queue sizes whatever the number of files. An exception in a ``MapStage`` fails that item only
(one broken file never stops the run); one in a ``BatchStage`` is fatal, since a backend
failure is never one file's fault; ``FatalError`` from any stage stops the whole run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecolor.errors import FacecolorError
from facecolor.runtime.decode import DEFAULT_MAX_PIXELS
from facecolor.runtime.walk import FAILED, Job

DONE = "done"
_END = object()  # end of stream, passed from stage to stage
_POLL_S = 0.1  # how often blocked threads look at the stop flag


class FatalError(FacecolorError, RuntimeError):
    """Stops the whole run (the backend failed, OUT_DIR is locked, ...)."""


@dataclass(frozen=True)
class Settings:
    """Everything a run needs besides the backend; saved in the report."""

    in_dir: Path
    out_dir: Path
    out_format: str = "keep"  # 'keep', 'jpg' or 'png'
    quality: int = 95  # JPEG and WebP quality, 1-100
    overwrite: bool = False
    batch_size: int = 8
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    max_pixels: int = DEFAULT_MAX_PIXELS

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


@dataclass(eq=False)
class Item:
    """One job on its way through the stages; ``payload`` is whatever the stages pass on."""

    job: Job
    payload: Any = None
    status: str | None = None  # None while in flight; then 'done', 'skipped' or 'failed'
    reason: str = ""
    stage: str = ""  # the stage that failed it
    size: int = 0  # bytes written, once done

    @classmethod
    def from_job(cls, job: Job) -> Item:
        """A job's item; one the walk already decided (skipped, failed) is finished as it is."""
        return cls(job, status=job.status, reason=job.reason, stage="walk" if job.status else "")

    def fail(self, stage: str, reason: str) -> None:
        self.status, self.stage, self.reason, self.payload = FAILED, stage, reason, None


@dataclass
class MapStage:
    """``nice`` > 0 lowers the priority of the stage's threads (Linux; ignored elsewhere), so
    they use the cores only where a higher-priority bottleneck (the CPU backend) leaves room."""

    name: str
    fn: Callable[[Item], Item]
    workers: int = 1
    queue_size: int = 8
    nice: int = 0


@dataclass
class BatchStage:
    """One thread gathers up to ``batch_size`` items, waiting at most ``linger_s`` for more
    once its queue runs dry."""

    name: str
    fn: Callable[[list[Item]], list[Item]]
    batch_size: int = 8
    queue_size: int = 16
    linger_s: float = 0.05


@dataclass
class StageStats:
    """Wall seconds the stage's threads spent inside its function, the CPU seconds those
    threads used meanwhile (less than busy_s when they waited for a core or for I/O; the
    backend's own threads are not counted), and how many items the stage saw."""

    busy_s: float = 0.0
    cpu_s: float = 0.0
    items: int = 0
    calls: int = 0

    def add(self, numbers: dict[str, Any]) -> None:
        """Add another run's numbers (``asdict`` of one, possibly from another process)."""
        for name, value in numbers.items():
            setattr(self, name, getattr(self, name) + value)


def failure_reason(error: BaseException) -> str:
    """One line for the report: our typed errors speak for themselves, others name their type."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if type(error).__module__.startswith("facecolor"):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class StageRunner:
    """Runs items through stages in threads; ``run`` yields each item once it is finished."""

    def __init__(self, stages: Sequence[MapStage | BatchStage]) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self.stats = {stage.name: StageStats() for stage in self.stages}
        # One inbox per stage, then the results (unbounded: the caller drains it)
        self._queues = [queue.Queue(maxsize=max(1, s.queue_size)) for s in self.stages] + [queue.Queue()]
        self._results = self._queues[-1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fatal: BaseException | None = None
        self._threads: list[threading.Thread] = []  # each stage's, then the feeder (started by run)
        for index, stage in enumerate(self.stages):
            batched = isinstance(stage, BatchStage)
            remaining = [1 if batched else max(1, stage.workers)]  # threads of the stage still running
            self._threads += [threading.Thread(target=self._worker, args=(index, stage, remaining), daemon=True,
                                               name=f"facecolor-{stage.name}" + ("" if batched else f"-{n}"))
                              for n in range(remaining[0])]

    def _wait(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call`` (a queue's ``put`` or ``get``) retried until it returns, or ``_END`` once the run stops."""
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full, queue.Empty):
                return call(*args, timeout=_POLL_S)
        return _END

    def _fatal_error(self, error: BaseException) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = error
        self._stop.set()

    def _forward(self, index: int, item: Item) -> bool:
        """Pass ``item`` from stage ``index`` (-1: the feeder) on; False once the run stopped."""
        if item.status is None and index + 1 == len(self.stages):
            item.status = DONE
        if item.status is not None:  # done, or failed (or decided) on the way: straight to the results
            item.payload = None
            self._results.put(item)
            return True
        return self._wait(self._queues[index + 1].put, item) is not _END

    def _worker(self, index: int, stage: MapStage | BatchStage, remaining: list[int]) -> None:
        try:
            if isinstance(stage, BatchStage):
                self._batch_loop(index, stage)
            else:
                self._map_loop(index, stage)
        except BaseException as error:  # the backend failed, or a bug in the runner: stop, never hang
            self._fatal_error(error)
        finally:  # the stage's last thread to exit passes the end on
            with self._lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self._wait(self._queues[index + 1].put, _END)

    def _timed(self, stage: MapStage | BatchStage, arg: Any, items: int) -> Any:
        """``stage.fn(arg)``, its wall and thread CPU time added to the stage's numbers."""
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            return stage.fn(arg)
        finally:
            busy_s, cpu_s = time.perf_counter() - start, time.thread_time() - start_cpu
            stats = self.stats[stage.name]
            with self._lock:  # plain additions: this runs for every item of every stage
                stats.busy_s += busy_s
                stats.cpu_s += cpu_s
                stats.items += items
                stats.calls += 1

    def _map_loop(self, index: int, stage: MapStage) -> None:
        if stage.nice > 0 and sys.platform.startswith("linux"):  # Linux keeps one nice value per thread
            with contextlib.suppress(OSError):  # best effort
                nice = os.getpriority(os.PRIO_PROCESS, 0) + stage.nice
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        inbox = self._queues[index]
        while (item := self._wait(inbox.get)) is not _END:
            try:
                item = self._timed(stage, item, 1)
            except FatalError as error:
                self._fatal_error(error)
                break
            except Exception as error:  # one file's problem: report it and go on
                item.fail(stage.name, failure_reason(error))
            self._forward(index, item)
        self._wait(inbox.put, _END)  # let this stage's other threads see the end too

    def _batch_loop(self, index: int, stage: BatchStage) -> None:
        inbox = self._queues[index]
        while (first := self._wait(inbox.get)) is not _END:
            batch = [first]
            while len(batch) < stage.batch_size:
                try:
                    item = inbox.get(timeout=stage.linger_s)  # short: no need to watch the stop flag meanwhile
                except queue.Empty:
                    break
                if item is _END:
                    self._wait(inbox.put, _END)  # back for the next round: this batch goes first
                    break
                batch.append(item)
            for item in self._timed(stage, batch, len(batch)):
                self._forward(index, item)

    def _feed(self, items: Iterable[Item]) -> None:
        try:
            for item in items:
                if self._stop.is_set() or not self._forward(-1, item):
                    return
        except BaseException as error:  # the walk itself broke (IN_DIR vanished, ...)
            self._fatal_error(error)
            return
        self._wait(self._queues[0].put, _END)

    def run(self, items: Iterable[Item]) -> Iterator[Item]:
        """Yield every item once finished (status 'done', 'skipped' or 'failed'), in no
        particular order. Raises the first fatal error after stopping every thread."""
        self._threads.append(threading.Thread(target=self._feed, args=(items,), name="facecolor-walk", daemon=True))
        for thread in self._threads:
            thread.start()
        try:
            while not (self._stop.is_set() and self._results.empty()):  # after a stop, what finished comes out
                with contextlib.suppress(queue.Empty):
                    item = self._results.get(timeout=_POLL_S)
                    if item is _END:
                        break
                    yield item
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=10)
        if self._fatal is not None:
            raise self._fatal
