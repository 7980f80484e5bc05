"""The stage runner: every item comes out once, failures stay per item, fatal errors stop the
run, batches form, and the number of items in flight stays bounded."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path, PurePath

import pytest

from facecolor.runtime.pipeline import DONE, BatchStage, FatalError, Item, MapStage, StageRunner
from facecolor.runtime.walk import FAILED, SKIPPED, Job


def items(n, skipped=()):
    for i in range(n):
        job = Job(Path(f"/in/{i}"), PurePath(str(i)), Path(f"/out/{i}"), "jpeg")
        yield Item(job, payload=i, status=SKIPPED if i in skipped else None)


def test_every_item_finishes_once_with_failures_kept_per_item():
    def decode(item):
        if item.payload % 7 == 3:
            raise ValueError(f"bad file {item.payload}")
        return item

    batches = []

    def infer(batch):
        batches.append(len(batch))
        return batch

    stages = [MapStage("decode", decode, workers=3), BatchStage("infer", infer, batch_size=4), MapStage("write", lambda i: i, workers=2)]
    runner = StageRunner(stages)
    out = list(runner.run(items(50, skipped={0, 1})))
    assert sorted(int(str(i.job.relative)) for i in out) == list(range(50))
    by_status = {}
    for item in out:
        by_status.setdefault(item.status, []).append(item)
    assert len(by_status[SKIPPED]) == 2
    assert {i.reason for i in by_status[FAILED]} == {f"ValueError: bad file {n}" for n in range(3, 50, 7)}
    assert all(i.stage == "decode" for i in by_status[FAILED])
    assert len(by_status[DONE]) == 50 - 2 - 7
    assert max(batches) == 4 and sum(batches) == 41
    assert runner.stats["infer"].items == 41 and runner.stats["decode"].items == 48
    assert all(i.payload is None for i in out)  # finished items hold no pixels


def test_a_failing_batch_is_fatal_and_stops_everything():
    def infer(batch):
        raise RuntimeError("CUDA error: device lost")

    runner = StageRunner([MapStage("decode", lambda i: i), BatchStage("infer", infer)])
    with pytest.raises(RuntimeError, match="device lost"):
        list(runner.run(items(1000)))
    assert not any(t.is_alive() for t in runner._threads)


def test_fatal_error_in_a_map_stage_stops_the_run():
    def write(item):
        raise FatalError("OUT_DIR vanished")

    with pytest.raises(FatalError):
        list(StageRunner([MapStage("write", write)]).run(items(10)))


def test_items_in_flight_stay_bounded():
    """A slow consumer stage: the fast reader may run ahead only by the queue sizes."""
    alive, peak, lock = set(), [0], threading.Lock()

    def read(item):
        with lock:
            alive.add(item.payload)
            peak[0] = max(peak[0], len(alive))
        return item

    def slow_write(item):
        time.sleep(0.002)
        with lock:
            alive.discard(item.payload)
        return item

    stages = [MapStage("read", read, queue_size=4), BatchStage("infer", lambda b: b, batch_size=4, queue_size=8),
              MapStage("write", slow_write, workers=2, queue_size=8)]
    out = list(StageRunner(stages).run(items(300)))
    assert len(out) == 300
    bound = 4 + 1 + 8 + 4 + 8 + 2  # queues, stage threads and one batch
    assert peak[0] <= bound


def test_consumer_stopping_early_stops_the_threads():
    runner = StageRunner([MapStage("slow", lambda i: (time.sleep(0.01), i)[1], workers=2)])
    results = runner.run(items(10_000))
    next(results)
    results.close()
    assert not any(t.is_alive() for t in runner._threads)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_nice_lowers_only_the_stage_threads():
    seen = []

    def probe(item):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return item

    base = os.getpriority(os.PRIO_PROCESS, 0)
    list(StageRunner([MapStage("probe", probe, nice=5)]).run(items(3)))
    assert seen == [min(base + 5, 19)] * 3
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the main thread keeps its priority
