"""Turn IN_DIR into a lazy, deterministic stream of jobs: one input file -> one output path.

- Recursive, sorted (files of a folder first, then its subfolders), one folder's listing in
  memory at a time, so a tree of millions of files costs no more memory than its largest
  folder.
- Inputs are recognised by extension (JPEG, PNG, TIFF, BMP, WebP) or, for any other name, by
  their first bytes; other files (``notes.txt``) are ignored and only counted. A file with an
  image extension and content that is not an image still becomes a job, so the decoder
  reports it. Images in formats facecolor does not read (GIF, JPEG 2000, HEIF, AVIF) are
  skipped with a reason that names the format, so they never vanish from a run unnoticed.
- Symlinks: a link to a file inside IN_DIR is an input under the link's name; a link to a
  file outside IN_DIR and any link to a folder are never followed (skipped, with the reason).
- OUT_DIR inside IN_DIR is pruned, so outputs are never read back as inputs.
- Outputs mirror the relative path; ``--format jpg|png`` changes the suffix, and two inputs
  that would then share one output (``a.png`` and ``a.jpg``) make the second one fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

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
    """One input and where its output goes.

    ``out_format`` is the output's format ('jpeg', 'png', 'tiff', 'bmp', 'webp') or None when
    the name has no image extension: then the decoded content's format is kept. ``status`` is
    set when the walk already decided the outcome ('skipped' or 'failed', with ``reason``).
    """

    source: Path
    relative: PurePath
    target: Path
    out_format: str | None
    status: str | None = None
    reason: str = ""


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def walk(in_dir: Path, out_dir: Path, out_format: str = "keep", *, overwrite: bool = False) -> Iterator[Job]:
    """Yield a Job for every input under ``in_dir`` (see the module docstring for the rules).

    An output that already exists is a skipped job unless ``overwrite``. ``in_dir`` must be an
    existing folder (the CLI checks); unreadable subfolders become failed jobs.
    """
    root = Path(os.path.abspath(in_dir))
    real_root = root.resolve()
    out_root = Path(os.path.abspath(out_dir))
    real_out = out_root.resolve()
    if out_format != "keep" and out_format not in OUTPUT_FORMATS:
        raise ValueError(f"out_format must be 'keep' or one of {sorted(OUTPUT_FORMATS)}")
    yield from _walk_folder(root, PurePath(), real_root, real_out, out_root, out_format, overwrite)


def _walk_folder(folder, relative, real_root, real_out, out_root, out_format, overwrite) -> Iterator[Job]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        yield Job(folder, relative, out_root / relative, None, FAILED, f"cannot list folder: {error.strerror}")
        return
    taken: dict[str, str] = {}  # output name -> input name, within this folder
    subfolders = []
    for entry in entries:
        path = Path(entry.path)
        rel = relative / entry.name
        try:
            if entry.is_symlink():
                job = _symlink_job(path, rel, real_root, out_root, out_format)
                if job is None:
                    continue
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() != real_out:  # OUT inside IN: never read back
                    subfolders.append((path, rel))
                continue
            elif entry.is_file(follow_symlinks=False):
                job = _file_job(path, rel, out_root, out_format)
                if job is None:
                    continue
            else:
                continue  # sockets, fifos, devices
        except OSError as error:
            job = Job(path, rel, out_root / rel, None, FAILED, f"cannot read: {error.strerror}")
        if job.status is None:
            name = job.target.name
            if name in taken:
                job = _with(job, FAILED, f"its output {name} is already written from {taken[name]}")
            else:
                taken[name] = entry.name
                if not overwrite and os.path.lexists(job.target):
                    job = _with(job, SKIPPED, OUTPUT_EXISTS)
        yield job
    for path, rel in subfolders:
        yield from _walk_folder(path, rel, real_root, real_out, out_root, out_format, overwrite)


def _with(job: Job, status: str, reason: str) -> Job:
    return Job(job.source, job.relative, job.target, job.out_format, status, reason)


def _target(rel: PurePath, out_root: Path, out_format: str, content_format: str | None) -> tuple[Path, str | None]:
    if out_format != "keep":
        fmt, suffix = OUTPUT_FORMATS[out_format]
        return out_root / rel.with_suffix(suffix), fmt
    return out_root / rel, EXTENSION_FORMATS.get(rel.suffix.lower(), content_format)


def _file_job(path: Path, rel: PurePath, out_root: Path, out_format: str) -> Job | None:
    """A job for a regular file that is an image by extension or by content, else None."""
    if rel.suffix.lower() in EXTENSION_FORMATS:
        target, fmt = _target(rel, out_root, out_format, None)
        return Job(path, rel, target, fmt)
    with open(path, "rb") as handle:
        content_format = sniff_format(handle.read(16))
    if content_format is None:
        reason = unsupported_reason(rel)
        return None if reason is None else Job(path, rel, out_root / rel, None, SKIPPED, reason)
    target, fmt = _target(rel, out_root, out_format, content_format)
    return Job(path, rel, target, fmt)


def _symlink_job(path: Path, rel: PurePath, real_root: Path, out_root: Path, out_format: str) -> Job | None:
    target = path.resolve()
    if target.is_dir():
        return Job(path, rel, out_root / rel, None, SKIPPED, "symlink to a folder (not followed)")
    if not _is_within(target, real_root):
        return Job(path, rel, out_root / rel, None, SKIPPED, "symlink to a file outside IN_DIR (not followed)")
    if not target.is_file():
        return Job(path, rel, out_root / rel, None, FAILED, "broken symlink")
    return _file_job(path, rel, out_root, out_format)
