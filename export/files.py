"""Small file helpers shared by the export steps: hashes, sidecars, atomic writes, sizes.

Every artifact ``NAME.EXT`` gets a JSON sidecar ``NAME.EXT.json`` (never metadata glued into the
artifact's bytes). Writers put the sidecar in place first and the artifact last, so the
artifact's appearance is the commit point that caches and readers rely on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from facecolor.files import human_size, sha256_file, temporary_sibling, utc_now, write_atomically, write_json

__all__ = [
    "human_size",
    "publish",
    "read_sidecar",
    "sha256_file",
    "sidecar_path",
    "temporary_sibling",
    "utc_now",
    "write_atomically",
    "write_sidecar",
]


def sidecar_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``; ``model.plan`` -> ``model.plan.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as the sidecar of ``path`` (pretty JSON, atomically); return its path."""
    return write_json(sidecar_path(path), document, sort_keys=True, default=str)


def publish(tmp: Path, target: str | Path, document: dict[str, Any], seconds_key: str, started: float) -> Path:
    """Commit a finished artifact: record its hash, size and time in the sidecar, write the
    sidecar, then rename the artifact into place (its appearance is the commit point)."""
    document["sha256"] = sha256_file(tmp)
    document["size_bytes"] = tmp.stat().st_size
    document[seconds_key] = round(time.perf_counter() - started, 2)
    write_sidecar(target, document)
    os.replace(tmp, target)
    return Path(target)


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The sidecar document of ``path``, or None when there is none or it is not valid JSON."""
    target = sidecar_path(path)
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None

