"""The job list for IN and OUT that may be local folders or object-storage URLs.

A local IN goes through the runtime's own ``walk`` (symlink rules, content sniffing, OUT
inside IN pruned, output names, name collisions), so a local run lists exactly what the
single-machine ``facecolor-batch`` lists. A URL IN is listed with fsspec and follows the same
rules where they apply to object stores (no symlinks there): a name with an image extension
is a job; any other object is a job whose first bytes decide (the reader drops it when it is
no image); hidden names and OUT inside IN are left out; ``--format`` renames the suffix and a
second input that would land on the same output fails.

Existing outputs are skipped unless ``overwrite``; on a URL OUT that check is one listing of
OUT, not one request per file.

Jobs travel to Ray workers as rows of plain values (``job_row`` / ``row_job``): paths as
bytes (``os.fsencode``), so local names that are not valid UTF-8 survive the trip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from facecolor.runtime.storage import Storage
from facecolor.runtime.walk import (
    EXTENSION_FORMATS,
    FAILED,
    OUTPUT_EXISTS,
    OUTPUT_FORMATS,
    SKIPPED,
    Job,
    walk,
)

#: A job whose name has no image extension and whose content is no image either: dropped by
#: the reader, as the local walk drops ``notes.txt`` (counted as skipped with this reason).
NOT_AN_IMAGE = "not an image (no image extension, content not JPEG/PNG/TIFF/BMP/WebP): ignored"
#: Placeholder OUT for walking a local IN when OUT is a URL (never created).
_NO_LOCAL_OUT = ".facecolor-url-output"


def output_relpath(rel: str, out_format: str) -> tuple[str, str | None]:
    """``(output relative path, output format or None)`` for input ``rel``, as ``walk`` names it:
    ``keep`` keeps the name (format from the extension, else from content: None); ``jpg`` and
    ``png`` change the suffix."""
    path = PurePosixPath(rel)
    if out_format != "keep":
        fmt, suffix = OUTPUT_FORMATS[out_format]
        return str(path.with_suffix(suffix)), fmt
    return rel, EXTENSION_FORMATS.get(path.suffix.lower())


def list_jobs(
    in_store: Storage, out_store: Storage, out_format: str = "keep", *, overwrite: bool = False
) -> Iterator[Job]:
    """Every input under ``in_store`` as a runtime ``Job`` (lazily for a local IN).

    ``job.relative`` is the input's path relative to IN; ``job.target`` is a local ``Path``
    when OUT is local, else the output's path relative to OUT (``PurePosixPath``). Jobs whose
    outcome is already known carry ``status`` (skipped or failed) and ``reason``.
    """
    if out_format != "keep" and out_format not in OUTPUT_FORMATS:
        raise ValueError(f"out_format must be 'keep' or one of {sorted(OUTPUT_FORMATS)}")
    existing = _ExistingOutputs(out_store, overwrite)
    if in_store.is_local:
        yield from _local_jobs(in_store, out_store, out_format, existing)
    else:
        yield from _url_jobs(in_store, out_store, out_format, existing)


class _ExistingOutputs:
    """``exists(rel)``: os.path.lexists for a local OUT, one listing for a URL OUT."""

    def __init__(self, out_store: Storage, overwrite: bool) -> None:
        self.out_store, self.overwrite = out_store, overwrite
        self._listing: set[str] | None = None

    def __call__(self, rel_out: str) -> bool:
        if self.overwrite:
            return False
        if self.out_store.is_local:
            return os.path.lexists(self.out_store.full(rel_out))
        if self._listing is None:
            self._listing = self.out_store.existing()
        return rel_out in self._listing


def _with(job: Job, status: str, reason: str) -> Job:
    return Job(job.source, job.relative, job.target, job.out_format, status, reason)


def _local_jobs(in_store: Storage, out_store: Storage, out_format: str, existing) -> Iterator[Job]:
    in_root = in_store.root_path
    if out_store.is_local:
        # The walk itself skips existing outputs and prunes OUT inside IN.
        yield from walk(in_root, out_store.root_path, out_format, overwrite=existing.overwrite)
        return
    placeholder = in_root / _NO_LOCAL_OUT
    for job in walk(in_root, placeholder, out_format, overwrite=True):
        rel_out = PurePosixPath(job.target.relative_to(placeholder).as_posix())
        job = Job(job.source, job.relative, rel_out, job.out_format, job.status, job.reason)
        if job.status is None and existing(str(rel_out)):
            job = _with(job, SKIPPED, OUTPUT_EXISTS)
        yield job


def _url_jobs(in_store: Storage, out_store: Storage, out_format: str, existing) -> Iterator[Job]:
    exclude = in_store.relative_to_me(out_store)  # OUT inside IN: never read back
    taken: dict[str, str] = {}
    for rel in in_store.iter_files(exclude_prefix=exclude):
        rel_out, fmt = output_relpath(rel, out_format)
        relative = PurePosixPath(rel)
        target = Path(out_store.full(rel_out)) if out_store.is_local else PurePosixPath(rel_out)
        job = Job(relative, relative, target, fmt)
        if rel_out in taken:
            name = PurePosixPath(rel_out).name
            job = _with(job, FAILED, f"its output {name} is already written from {taken[rel_out]}")
        else:
            taken[rel_out] = relative.name
            if existing(rel_out):
                job = _with(job, SKIPPED, OUTPUT_EXISTS)
        yield job


def needs_sniffing(job: Job) -> bool:
    """True for a URL input whose name has no image extension: its content decides."""
    return PurePosixPath(job.relative).suffix.lower() not in EXTENSION_FORMATS


# --------------------------------------------------------------------------- rows for Ray


def job_row(job: Job, out_store: Storage) -> dict[str, Any]:
    """A job still to do as a compact Ray Data row: its path relative to IN, its output's path
    relative to OUT (empty when the same), the output format (empty: the content's)."""
    relative = os.fsencode(str(job.relative))
    target = job.target.relative_to(out_store.root_path) if out_store.is_local else job.target
    output = os.fsencode(str(target))
    return {"relative": relative, "output": b"" if output == relative else output, "out_format": job.out_format or ""}


def row_job(relative: bytes, output: bytes, out_format: str, in_store: Storage, out_store: Storage) -> Job:
    """The inverse of ``job_row``: the same Job the walk (or the URL listing) made."""
    rel = os.fsdecode(bytes(relative))
    out = os.fsdecode(bytes(output)) or rel
    source = in_store.root_path / rel if in_store.is_local else PurePosixPath(rel)
    target = out_store.root_path / out if out_store.is_local else PurePosixPath(out)
    return Job(source, PurePath(rel), target, str(out_format) or None)
