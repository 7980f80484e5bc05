"""The job list: every input under IN as a Job (one input -> one output path), lazily.

- A local IN is walked recursively and sorted (files of a folder first, then its
  subfolders), one folder's listing in memory at a time, so a tree of millions of files costs
  no more memory than its largest folder.
- Inputs are recognised by extension (JPEG, PNG, TIFF, BMP, WebP) or, for any other name, by
  their first bytes; other files (``notes.txt``) are ignored and only counted. A file with an
  image extension and content that is not an image still becomes a job, so the decoder
  reports it. Images in formats facecolor does not read (GIF, JPEG 2000, HEIF, AVIF) are
  skipped with a reason that names the format, so they never vanish from a run unnoticed.
- Symlinks: a link to a file inside IN_DIR is an input under the link's name; a link to a
  file outside IN_DIR and any link to a folder are never followed (skipped, with the reason).
- OUT inside IN is pruned, so outputs are never read back as inputs.
- Outputs mirror the relative path; ``--format jpg|png`` changes the suffix, and two inputs
  that would then share one output (``a.png`` and ``a.jpg``) make the second one fail.
- A URL IN is one fsspec listing under the same rules where they apply (object stores have
  no symlinks, and the reader sniffs a name without an image extension); existing outputs on
  a URL OUT are one listing of OUT, not one request per file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from facecolor.runtime.storage import Storage

#: extension -> format name (the names ``decode.sniff_format`` returns).
EXTENSION_FORMATS = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg",
    ".png": "png",
    ".tif": "tiff", ".tiff": "tiff",
    ".bmp": "bmp", ".dib": "bmp",
    ".webp": "webp",
}
#: extension -> name of an image format that is not read, for the skip reason.
UNSUPPORTED_IMAGES = {
    ".gif": "GIF", ".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".jpx": "JPEG 2000",
    ".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF",
}
#: ``--format`` value -> (format, suffix). ``keep`` keeps the name and its format.
OUTPUT_FORMATS = {"jpg": ("jpeg", ".jpg"), "png": ("png", ".png")}
SKIPPED, FAILED = "skipped", "failed"
OUTPUT_EXISTS = "output exists (pass --overwrite to redo it)"
#: A URL input with no image extension whose content is no image either: dropped by the
#: reader, as the local walk drops ``notes.txt`` (counted as skipped with this reason).
NOT_AN_IMAGE = "not an image (no image extension, content not JPEG/PNG/TIFF/BMP/WebP): ignored"


def sniff_format(head: bytes) -> str | None:
    """The image format named by a file's first 12+ bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def unsupported_reason(rel: PurePath) -> str | None:
    """The skip reason for a file named as an image format that is not read, else None."""
    unsupported = UNSUPPORTED_IMAGES.get(rel.suffix.lower())
    if unsupported is None:
        return None
    return f"{unsupported} is not read (JPEG, PNG, TIFF, BMP, WebP are); convert it to PNG to include it"


def display(path: PurePath | str) -> str:
    """A path as printable text, whatever bytes its name holds (undecodable ones escaped)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Job:
    """One input and where its output goes. ``out_format`` None (a name with no image
    extension) keeps the decoded content's format; ``status`` is set when the walk already
    decided the outcome ('skipped' or 'failed', with ``reason``)."""

    source: Path
    relative: PurePath
    target: Path
    out_format: str | None
    status: str | None = None
    reason: str = ""


def _walk_folder(folder, relative, real_root, real_out, out_root, out_format) -> Iterator[Job]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        yield Job(folder, relative, out_root / relative, None, FAILED, f"cannot list folder: {error.strerror}")
        return
    taken: dict[PurePath, str] = {}  # output -> input name, within this folder
    subfolders = []
    for entry in entries:
        path = Path(entry.path)
        rel = relative / entry.name
        try:
            if entry.is_symlink():
                job = _symlink_job(path, rel, real_root, out_root, out_format)
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() != real_out:  # OUT inside IN: never read back
                    subfolders.append((path, rel))
                continue
            elif entry.is_file(follow_symlinks=False):
                job = _file_job(path, rel, out_root, out_format)
            else:
                continue  # sockets, fifos, devices
        except OSError as error:
            job = Job(path, rel, out_root / rel, None, FAILED, f"cannot read: {error.strerror}")
        if job is None:  # neither an image nor named like one
            continue
        if job.status is None:
            job = _claim_output(job, taken)
        yield job
    for path, rel in subfolders:
        yield from _walk_folder(path, rel, real_root, real_out, out_root, out_format)


def output_name(rel: PurePath, out_format: str, content_format: str | None = None) -> tuple[PurePath, str | None]:
    """The output's path relative to OUT and its format: ``keep`` keeps the name (format from
    the extension, else ``content_format``); ``jpg`` and ``png`` change the suffix."""
    if out_format != "keep":
        fmt, suffix = OUTPUT_FORMATS[out_format]
        return rel.with_suffix(suffix), fmt
    return rel, EXTENSION_FORMATS.get(rel.suffix.lower(), content_format)


def _file_job(path: Path, rel: PurePath, out_root: Path, out_format: str) -> Job | None:
    """A job for a regular file that is an image by extension or by content, else None."""
    content_format = None
    if rel.suffix.lower() not in EXTENSION_FORMATS:
        with open(path, "rb") as handle:
            content_format = sniff_format(handle.read(16))
        if content_format is None:
            reason = unsupported_reason(rel)
            return None if reason is None else Job(path, rel, out_root / rel, None, SKIPPED, reason)
    name, fmt = output_name(rel, out_format, content_format)
    return Job(path, rel, out_root / name, fmt)


def _symlink_job(path: Path, rel: PurePath, real_root: Path, out_root: Path, out_format: str) -> Job | None:
    target = path.resolve()
    if target.is_dir():
        return Job(path, rel, out_root / rel, None, SKIPPED, "symlink to a folder (not followed)")
    if target != real_root and real_root not in target.parents:
        return Job(path, rel, out_root / rel, None, SKIPPED, "symlink to a file outside IN_DIR (not followed)")
    if not target.is_file():
        return Job(path, rel, out_root / rel, None, FAILED, "broken symlink")
    return _file_job(path, rel, out_root, out_format)


# --------------------------------------------------------------------------- IN and OUT as any storage


def list_jobs(
    in_store: Storage, out_store: Storage, out_format: str = "keep", *, overwrite: bool = False
) -> Iterator[Job]:
    """Every input under IN as a Job: ``job.target`` is a local ``Path`` when OUT is local, else
    the output's path relative to OUT (``PurePosixPath``)."""
    if out_format != "keep" and out_format not in OUTPUT_FORMATS:
        raise ValueError(f"out_format must be 'keep' or one of {sorted(OUTPUT_FORMATS)}")
    out_root = _job_root(out_store)
    if in_store.is_local:
        root = in_store.root_path
        real_out = out_store.root_path.resolve() if out_store.is_local else None  # OUT inside IN: pruned
        jobs = _walk_folder(root, PurePath(), root.resolve(), real_out, out_root, out_format)
    else:
        jobs = _url_jobs(in_store, out_store, out_root, out_format)
    listing = functools.cache(lambda: set(out_store.iter_files()))  # a URL OUT: one listing, not a request per file
    for job in jobs:
        if job.status is None and not overwrite:
            exists = os.path.lexists(job.target) if out_store.is_local else str(job.target) in listing()
            if exists:
                job = replace(job, status=SKIPPED, reason=OUTPUT_EXISTS)
        yield job


def _job_root(store: Storage) -> PurePath:
    """What a job's paths are joined onto: the local folder, or nothing for a URL, whose files
    jobs name relative to the root."""
    return store.root_path if store.is_local else PurePosixPath()


def _url_jobs(in_store: Storage, out_store: Storage, out_root: PurePath, out_format: str) -> Iterator[Job]:
    exclude = in_store.relative_to_me(out_store)  # OUT inside IN: never read back
    taken: dict[PurePath, str] = {}  # output -> input name
    for rel in in_store.iter_files(exclude_prefix=exclude):
        relative = PurePosixPath(rel)
        name, fmt = output_name(relative, out_format)
        yield _claim_output(Job(relative, relative, out_root / name, fmt), taken)


def _claim_output(job: Job, taken: dict[PurePath, str]) -> Job:
    """Two inputs that would write one output (``a.png`` and ``a.tif`` into PNG): the first keeps
    it, the second fails and names the first, so no output is silently overwritten."""
    if job.target in taken:
        return replace(job, status=FAILED,
                       reason=f"its output {job.target.name} is already written from {taken[job.target]}")
    taken[job.target] = job.relative.name
    return job


def job_row(job: Job, out_store: Storage) -> dict[str, Any]:
    """A job still to do as a compact Ray Data row: its path relative to IN, its output's path
    relative to OUT (empty when the same), the output format (empty: the content's). Paths
    travel as bytes (``os.fsencode``), so local names that are not valid UTF-8 survive."""
    relative = os.fsencode(str(job.relative))
    output = os.fsencode(str(job.target.relative_to(_job_root(out_store))))
    return {"relative": relative, "output": b"" if output == relative else output, "out_format": job.out_format or ""}


def row_job(relative: bytes, output: bytes, out_format: str, in_store: Storage, out_store: Storage) -> Job:
    """The inverse of ``job_row``: the same Job the walk (or the URL listing) made."""
    rel = os.fsdecode(bytes(relative))
    out = os.fsdecode(bytes(output)) or rel
    return Job(_job_root(in_store) / rel, PurePath(rel), _job_root(out_store) / out, str(out_format) or None)
