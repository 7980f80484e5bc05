"""The one small interface every inference backend shares.

A backend turns a batch of normalised render-size lightness into normalised ab (DESIGN §2):

- CPU backends (``device == "cpu"``): numpy float32 ``[N, 1, S, S]`` in ``[-1, 1]``
  (``L/50 - 1``) -> numpy float32 ``[N, 2, S, S]`` in ``[-1, 1]`` (``ab/110``), C-contiguous,
  NCHW, host memory.
- CUDA backends (``device == "cuda"``): the same shapes and ranges as torch float32 CUDA
  tensors, in and out, on the current device; the output is valid once the current torch
  stream reaches it (backends synchronise their own streams with it).

``S`` is ``render_size``; ``N`` is at most ``max_batch`` when that is not None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecolor.errors import FacecolorError


class BackendError(FacecolorError, RuntimeError):
    """A backend failed while running a batch: fatal for the run, never one file's fault."""


@dataclass(frozen=True)
class ModelInfo:
    """Which model a backend runs: written into every output's metadata and the report."""

    preset: str
    sha256: str
    source: Path | None = None

    @property
    def label(self) -> str:
        """``"gpsagd (sha256:0123456789ab)"``: short enough for image metadata."""
        return f"{self.preset} (sha256:{self.sha256[:12]})"

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "sha256": self.sha256, "source": str(self.source or "")}


def preset_in(*documents: Any) -> str:
    """The preset the first of ``documents`` to name one records (``preset`` or
    ``model_config.preset``, as facecolor-export writes sidecars and ONNX metadata), else "unknown"."""
    for document in documents:
        if isinstance(document, dict):
            config = document.get("model_config")
            preset = document.get("preset") or (config.get("preset") if isinstance(config, dict) else None)
            if preset:
                return str(preset)
    return "unknown"


class Backend:
    """What every backend is (the pipelines need nothing else), with the shared plumbing:
    context manager and repr."""

    name: str = "?"  # 'tensorrt', 'onnxruntime-cuda', 'torch-cuda', 'onnxruntime-cpu', 'torch-cpu'
    device: str = "cpu"  # 'cpu' or 'cuda'
    render_size: int = 0  # S: the square input size the model takes
    max_batch: int | None = None  # largest N predict_ab accepts; None when unbounded
    model: ModelInfo

    def predict_ab(self, l_norm: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        """Free the session, engine and buffers; the backend is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, "
            f"render_size={self.render_size}, max_batch={self.max_batch}, model={self.model.label!r})"
        )
