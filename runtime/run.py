"""The one batch run: lock OUT, walk IN, skip what exists, execute, report (DESIGN §5, §7).

    report = run_batch(settings, ThreadExecutor(backend, reason))

IN and OUT are :class:`~facecolor.runtime.storage.Storage` roots, so a local folder and an
``s3://`` prefix go through the same lines here. Only how batches execute differs, in the
executor passed in (``executor.ThreadExecutor`` in this process, ``distributed.ray_job.
RayExecutor`` on Ray); everything around them is this module's, once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from facecolor.runtime.pipeline import FatalError, Item, Settings, failure_reason
from facecolor.runtime.report import REPORT_NAME, Report
from facecolor.runtime.storage import Storage, StorageError, is_url, open_storage
from facecolor.runtime.walk import FAILED, Job, display, list_jobs

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, runs must not share OUT_DIR
    fcntl = None

if TYPE_CHECKING:
    from facecolor.runtime.distributed.ray_job import RayExecutor
    from facecolor.runtime.executor import ThreadExecutor

LOCK_NAME = ".facecolor-lock"


class DirectoryError(FatalError):
    """IN_DIR or OUT_DIR cannot be used; the message says why."""


class LocationError(FatalError):
    """IN or OUT cannot be used (missing, unreadable, OUT containing IN); says why."""


def check_locations(in_store: Storage, out_store: Storage) -> None:
    """IN must be a readable folder or prefix; OUT must not be IN or contain it (outputs mirror
    IN's paths, so they could land on inputs; OUT inside IN is fine); a URL OUT must be
    writable (its bucket exists)."""
    if in_store.is_local and out_store.is_local:
        in_dir, out_dir = in_store.root_path, out_store.root_path
        if not in_dir.is_dir():
            raise DirectoryError(f"IN_DIR {display(in_dir)} is not a folder")
        try:
            os.scandir(in_dir).close()
        except OSError as error:
            raise DirectoryError(f"cannot read IN_DIR {display(in_dir)}: {error.strerror}") from error
        if out_store.contains(in_store):
            raise DirectoryError(
                f"OUT_DIR {display(out_dir)} is IN_DIR or contains it: outputs could replace inputs; "
                "choose a folder outside IN_DIR (or one inside it)"
            )
        return
    if out_store.contains(in_store):
        raise LocationError(f"OUT {out_store.location} is IN or contains it: outputs could replace inputs; "
                            "choose a prefix outside IN (or one inside it)")
    try:
        in_store.check_readable_root()
        out_store.check_writable_root()
    except StorageError as error:
        raise LocationError(str(error)) from error


@contextlib.contextmanager
def _output_lock(out_store: Storage) -> Iterator[None]:
    """An advisory lock on a local OUT (created first), held for the run and freed by the OS
    if the process dies. Object stores have none (see docs/ray.md): two runs into one prefix
    write the same bytes."""
    if out_store.is_local:
        out_store.makedirs()
    if not out_store.is_local or fcntl is None:
        yield
        return
    path = out_store.root_path / LOCK_NAME
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:  # another run holds the lock
            raise FatalError(f"another facecolor-batch is writing into {display(out_store.root_path)}; "
                             "wait for it to finish or choose another OUT_DIR") from error
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still ours: leave no stray file in OUT_DIR (closing frees the lock)


def report_location(out_dir: str | Path) -> str:
    """Where the report of a run into ``out_dir`` is, as the user wrote OUT (for messages)."""
    text = str(out_dir)
    return f"{text.rstrip('/')}/{REPORT_NAME}" if is_url(text) else os.path.join(text, REPORT_NAME)


def _count_jobs(jobs: Iterator[Job], bar: tqdm, stop: threading.Event) -> None:
    """Count the jobs of a local run in a second, lazy walk, so the progress bar can show an ETA
    (with ``overwrite``: every job counts either way, so no output is looked up a second time)."""
    n = 0
    for _ in jobs:
        if stop.is_set():
            return
        n += 1
    bar.total = n  # drawn from the bar's next update


def run_batch(
    settings: Settings,
    executor: ThreadExecutor | RayExecutor,
    *,
    in_store: Storage | None = None,
    out_store: Storage | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> Report:
    """Colorize every job under ``settings.in_dir`` into ``settings.out_dir`` with ``executor``;
    return the Report, also written into OUT however the run ends (status 'complete',
    'interrupted' on Ctrl-C, or 'fatal' with its reason, the error then propagating).

    ``executor.describe()`` gives the report's backend and model sections before the run,
    ``executor.run`` yields every item once finished (those the walk decided pass through),
    ``executor.stats`` the stage numbers. ``echo`` prints a line to stderr (each failed input
    as it happens); the progress bar is drawn on stderr only when it is a terminal.
    """
    if in_store is None or out_store is None:  # stores passed in were checked by their opener (colorize_tree)
        in_store = in_store or open_storage(settings.in_dir)
        out_store = out_store or open_storage(settings.out_dir)
        check_locations(in_store, out_store)
    echo = echo or (lambda line: print(line, file=sys.stderr))
    with _output_lock(out_store):
        backend, model = executor.describe()
        report = Report(settings=settings.as_dict(), backend=backend, model=model)
        listing = functools.partial(list_jobs, in_store, out_store, settings.out_format, overwrite=settings.overwrite)
        jobs = listing() if in_store.is_local else list(listing())  # a URL IN's is one listing: the bar's total
        # disable=None: tqdm draws only when stderr is a terminal, so logs get no \r-lines
        bar = tqdm(total=None if in_store.is_local else len(jobs), unit="img", file=sys.stderr,
                   disable=None if progress else True, dynamic_ncols=True)
        stop_count = threading.Event()
        if in_store.is_local and out_store.is_local:  # a second walk costs only local metadata, never OUT listings
            threading.Thread(target=_count_jobs, args=(listing(overwrite=True), bar, stop_count), daemon=True).start()
        status, fatal = "complete", None
        try:
            for item in executor.run(settings, map(Item.from_job, jobs), in_store, out_store, report):
                report.add(item)
                if item.status == FAILED:
                    bar.clear()
                    echo(f"failed: {display(item.job.relative)}: {item.reason}")
                bar.update(1)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as error:
            status, fatal = "fatal", failure_reason(error)
            raise
        finally:
            report.finish(status, executor.stats, fatal)
            out_store.write_bytes(REPORT_NAME, report.to_json().encode("utf-8", "backslashreplace"))
            stop_count.set()
            bar.close()
    return report
