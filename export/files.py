"""Small file helpers shared by the export steps: hashes, sidecars, atomic writes, sizes.

Every artifact ``NAME.EXT`` gets a JSON sidecar ``NAME.EXT.json`` (never metadata glued into the
artifact's bytes). Writers put the sidecar in place first and the artifact last, so the
artifact's appearance is the commit point that caches and readers rely on.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "human_size",
    "read_sidecar",
    "sha256_file",
    "sidecar_path",
    "temporary_sibling",
    "utc_now",
    "write_atomically",
    "write_sidecar",
]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``; ``model.plan`` -> ``model.plan.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as the sidecar of ``path`` (pretty JSON, atomically); return its path."""
    target = sidecar_path(path)
    text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
    write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return target


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The sidecar document of ``path``, or None when there is none or it is not valid JSON."""
    target = sidecar_path(path)
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


@contextmanager
def temporary_sibling(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A fresh temporary path in ``path``'s folder (same file system, so a rename is atomic).

    The temporary file is removed on exit unless the caller has renamed it away.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{suffix}.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; exported files are for sharing
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``."""
    with temporary_sibling(path) as tmp:
        write(tmp)
        os.replace(tmp, path)


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def human_size(num_bytes: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show them)."""
    size = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string, for sidecars."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
