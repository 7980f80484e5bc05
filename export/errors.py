"""Typed errors of the export stage; each message says what went wrong and how to fix it.

The library raises these; ``facecolor.export.cli`` turns them into ``click.ClickException``
(exit code 1). Corrupted or mismatched checkpoints raise ``facecolor.checkpoint.CheckpointError``,
which the CLI treats the same way.
"""

from __future__ import annotations

from facecolor.errors import FacecolorError, Unavailable  # noqa: F401 - no TensorRT, no GPU: Unavailable

#: What a user without TensorRT should run; quoted by every message about it.
INSTALL_TENSORRT = "pip install facecolor[tensorrt]"


class ExportError(FacecolorError):
    """Base class: an export step that could not produce its file."""


class ExportCheckError(ExportError):
    """ONNX Runtime on the exported file disagrees with PyTorch beyond the tolerance.

    ``report`` is the ``CheckReport`` that failed; the file it describes was not written.
    """

    def __init__(self, message: str, report=None) -> None:
        super().__init__(message)
        self.report = report


class EngineBuildError(ExportError):
    """TensorRT could not parse the ONNX file or build an engine from it."""


class PlanError(ExportError):
    """A TensorRT plan file or its ``.plan.json`` sidecar is missing or unreadable."""


class PlanMismatchError(PlanError):
    """A plan built for another TensorRT version or GPU than this machine's."""
