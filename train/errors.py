"""Typed errors of the training stage; each message says what went wrong and how to fix it.

Library code raises these; ``facecolor.train.cli`` turns every one into a
``click.ClickException`` (``Error: ...``, exit 1).
"""

from __future__ import annotations

from facecolor.errors import FacecolorError, Unavailable


class TrainError(FacecolorError):
    """Base class of every error the training stage raises on purpose."""


class NoImagesError(TrainError):
    """A data folder held no decodable image."""


class DeviceUnavailableError(TrainError, Unavailable):
    """``--device cuda`` on a machine where torch sees no CUDA device."""


class InitCheckpointError(TrainError):
    """``--init CHECKPOINT`` cannot start this preset (wrong architecture, nothing left to run)."""


class ResumeMismatchError(TrainError):
    """RUN_DIR holds a run made with different settings than the ones given now."""


class DistributedSetupError(TrainError):
    """torchrun's environment is incomplete or the process group cannot start."""
