"""A per-machine cache of exported files, so a user never exports or builds by hand.

The runtime asks ``cached_engine(checkpoint)`` (or ``cached_onnx``) and gets a path: built on
first use, reused afterwards. Files live in ``$FACECOLOR_CACHE`` or ``~/.cache/facecolor``:

    onnx/<stem>-<sha16>-<precision>-b<max_batch>.onnx        (+ .json sidecar)
    engines/<stem>-<sha16>-b<max_batch>-o<opt>-<trt-gpu-sm>.plan   (+ .json, .timing-cache)

keyed by the SHA-256 of the source file's bytes (not its name or date), the precision and
batch bound, and for engines the TensorRT version and GPU, since a plan runs only where it was
built. Each entry is built under a file lock (``filelock``, which torch already depends on),
so two processes asking at once build it once; writes are atomic renames, so a crash never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from facecolor.export.errors import ExportError, PlanError
from facecolor.export.files import read_sidecar, sha256_file

#: Environment variable that moves the cache (tests, shared machines, read-only homes).
CACHE_ENV = "FACECOLOR_CACHE"
DEFAULT_MAX_BATCH = 256


def cache_root() -> Path:
    """``$FACECOLOR_CACHE`` if set, else ``~/.cache/facecolor`` (``$XDG_CACHE_HOME`` honoured)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facecolor"


#: Receives progress lines (a build starting, and its time) while a cached file is made.
Notify = Callable[[str], None]


def cached_onnx(
    checkpoint: str | Path, *, fp16: bool = False, max_batch: int = DEFAULT_MAX_BATCH, notify: Notify | None = None
) -> Path:
    """The checked ONNX export of ``checkpoint`` for this precision, exported once and reused.

    An fp16 entry is converted from the fp32 entry (exported first if missing), so a checkpoint
    is traced once whatever is asked for. ``notify`` hears a line before and after a build,
    which takes seconds to minutes, so that a first run does not sit silent.
    """
    from facecolor.export.onnx import export_onnx

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ExportError(f"checkpoint not found: {checkpoint}")
    digest = sha256_file(checkpoint)
    precision = "fp16" if fp16 else "fp32"
    target = cache_root() / "onnx" / f"{_stem(checkpoint)}-{digest[:16]}-{precision}-b{max_batch}.onnx"
    if _onnx_entry_valid(target, digest):
        return target
    fp32_source = cached_onnx(checkpoint, max_batch=max_batch, notify=notify) if fp16 else None
    with _lock(target):
        if not _onnx_entry_valid(target, digest):  # another process may have built it meanwhile
            with _building(notify, f"{checkpoint.name} to {precision} ONNX", target):
                export_onnx(checkpoint, target, fp16=fp16, max_batch=max_batch, fp32_onnx=fp32_source)
    return target


def cached_engine(
    checkpoint_or_onnx: str | Path,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int | None = None,
    notify: Notify | None = None,
) -> Path:
    """A TensorRT plan for this machine, built once per (source, batch profile, TensorRT, GPU).

    Given a checkpoint (``.safetensors``) the plan is built from its cached fp16 ONNX; given an
    ``.onnx`` file, from that file as it is. A cached plan is checked (``check_plan``) before
    it is returned, and rebuilt if it fails. Raises Unavailable without TensorRT.
    ``notify`` as for ``cached_onnx``.
    """
    from facecolor.export.tensorrt import DEFAULT_OPT_BATCH, build_engine, check_plan, current_machine

    source = Path(checkpoint_or_onnx)
    machine = current_machine()  # fails early and clearly without TensorRT or a GPU
    if source.suffix == ".onnx":
        if not source.is_file():
            raise ExportError(f"ONNX file not found: {source}")
        onnx_path = source
    else:
        # The ONNX batch dimension is symbolic, so one file serves every engine up to 256:
        # a runtime asking for batch 32 and then 64 must not trace the model twice.
        onnx_path = cached_onnx(source, fp16=True, max_batch=max(max_batch, DEFAULT_MAX_BATCH), notify=notify)
    opt = min(max_batch, DEFAULT_OPT_BATCH) if opt_batch is None else opt_batch
    digest = sha256_file(onnx_path)
    target = (
        cache_root() / "engines"
        / f"{_stem(onnx_path)}-{digest[:16]}-b{max_batch}-o{opt}-{machine.slug}.plan"
    )
    with _lock(target):
        try:
            check_plan(target)
            return target
        except PlanError:
            pass  # missing, stale or for another machine: build it
        with _building(notify, f"{source.name} to a TensorRT engine for {machine.slug}", target):
            build_engine(onnx_path, target, max_batch=max_batch, opt_batch=opt)
    return target


@contextmanager
def _building(notify: Notify | None, what: str, target: Path) -> Iterator[None]:
    """Say that a build starts (and that it happens once per machine), then how long it took."""
    if notify is None:
        yield
        return
    notify(f"building {what} (first use on this machine; cached in {target.parent}) ...")
    start = time.perf_counter()
    yield
    notify(f"built {target.name} in {time.perf_counter() - start:.1f} s")


def _onnx_entry_valid(path: Path, source_sha256: str) -> bool:
    """A cached ONNX is reused only if it and its sidecar agree and name the same source."""
    document = read_sidecar(path)
    return (
        path.is_file()
        and document is not None
        and document.get("source_checkpoint", {}).get("sha256") == source_sha256
        and document.get("size_bytes") == path.stat().st_size
        and document.get("check", {}).get("passed") is True
    )


def _stem(path: Path) -> str:
    """'gpsagd.fp16.onnx' -> 'gpsagd'; file-name-safe."""
    stem = path.name.split(".")[0] or "model"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)


def _lock(target: Path) -> FileLock:
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target) + ".lock")
