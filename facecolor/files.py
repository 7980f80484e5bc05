"""File helpers every stage shares: atomic writes, content hashes, human-readable sizes.

One copy of each: checkpoints, training outputs, exported models, caches, reports and the
runtime's images all write through ``write_atomically``, so a crash never leaves a
half-written file behind. The runtime asks for a fixed temporary name (``fixed_temp``): a
restarted run then reuses and removes what a killed one left, instead of collecting strays.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def temporary_sibling(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A fresh temporary path in ``path``'s folder (same file system, so a rename is atomic).

    It gets the usual file mode (mkstemp makes 0600) and is removed on exit unless the caller
    has renamed it away.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{suffix}.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


#: Suffix of the fixed temporary names (``.NAME.facecolor-tmp``); hidden, so walks skip them.
TEMP_SUFFIX = ".facecolor-tmp"


def temp_path(target: str | Path) -> Path:
    """The fixed hidden temporary name beside ``target`` (hashed if the name is very long)."""
    target = Path(target)
    name = f".{target.name}{TEMP_SUFFIX}"
    if len(os.fsencode(name)) > 255:
        name = "." + hashlib.sha1(os.fsencode(target.name)).hexdigest() + TEMP_SUFFIX
    return target.with_name(name)


def write_atomically(path: str | Path, content: bytes | Callable[[Path], object], *, fixed_temp: bool = False) -> None:
    """Write ``content`` (bytes, or ``write(tmp)`` that writes a path) to a temporary sibling
    of ``path``, then rename it onto ``path``; parents are made, and the temporary file is
    removed if anything fails. ``fixed_temp``: the sibling is ``temp_path(path)`` rather than
    a fresh unique name (for writers that never race for one path, such as the runtime's).

    Nothing is fsync'ed: this protects against killed processes, not against power loss on
    filesystems that reorder renames before data.
    """
    write = content if callable(content) else (lambda tmp: tmp.write_bytes(content))
    if not fixed_temp:
        with temporary_sibling(path) as tmp:
            write(tmp)
            os.replace(tmp, path)
        return
    temp = temp_path(path)
    temp.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``text`` as UTF-8 at ``path`` (parents made, written atomically)."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return Path(path)


def write_json(path: str | Path, document: object, *, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> Path:
    """``document`` as indented UTF-8 JSON at ``path`` (parents made, written atomically).

    The one JSON writer of settings, metrics, tables, sidecars and benchmark results.
    """
    return write_text(path, json.dumps(document, indent=2, sort_keys=sort_keys, default=default,
                                       ensure_ascii=False) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def human_size(num_bytes: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show them)."""
    size = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string, to the second (sidecars, reports)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
