"""Typed errors of the bench; each message says what went wrong and how to fix it.

The library raises these; ``facecolor.bench.cli`` turns them into ``click.ClickException``
(exit 1). A failed gate is not an error: the bench finishes, prints the table with the failing
gates named, and the CLI exits 1.
"""

from __future__ import annotations

from facecolor.errors import FacecolorError


class BenchError(FacecolorError):
    """Base class: the bench cannot run as asked."""


class EngineError(BenchError):
    """The file given with ``--engine`` cannot be benchmarked (wrong kind, unreadable sidecar)."""


class ReferenceNotFound(BenchError):
    """No PyTorch checkpoint to compare against: neither ``--reference``, a sidecar, nor the
    shipped model."""


class DataError(BenchError):
    """``--data`` (or the examples) holds no image the bench can read."""


class UnknownTarget(BenchError, ValueError):
    """A ``--compare`` name that is not a known backend; the message lists the valid ones."""
