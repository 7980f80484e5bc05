"""File helpers every stage shares: atomic writes, content hashes, human-readable sizes.

One copy of each: checkpoints, training outputs, exported models, caches and reports all
write through ``write_atomically``, so a crash never leaves a half-written file behind.
(The runtime's image writer keeps its own fixed-name variant on purpose: a restarted run
reuses what a killed one left, see ``facecolor.runtime.write``.)
"""

from __future__ import annotations

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


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``."""
    with temporary_sibling(path) as tmp:
        write(tmp)
        os.replace(tmp, path)


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
