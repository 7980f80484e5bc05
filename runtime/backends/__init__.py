"""Inference backends behind one interface (``base.Backend``), chosen in ``select``.

    from facecolor.runtime.backends import open_backend
    backend, reason = open_backend(None, "auto", batch_size=16)
"""

from facecolor.errors import Unavailable
from facecolor.runtime.backends.base import Backend, BackendError, ModelInfo
from facecolor.runtime.backends.select import ModelNotFound, open_backend, shipped_model

__all__ = [
    "Backend",
    "BackendError",
    "ModelInfo",
    "ModelNotFound",
    "open_backend",
    "shipped_model",
    "Unavailable",
]
