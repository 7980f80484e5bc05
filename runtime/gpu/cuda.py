"""The GPU path's one choke point for CUDA failures, and its few stream helpers.

Every call into CUDA, nvJPEG or TensorRT in the GPU path runs inside ``cuda_errors``, so that
callers decide by exception type: a decode failure sends a file to the CPU decoder, out of
memory names ``--batch-size``, anything else is fatal for the run. The stream helpers accept
the CPU too (streams and events become None, waits no-ops, as ``torch.cuda.stream(None)`` is),
so the GPU pipeline's stage logic runs unchanged on CPU tensors in the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from facecolor.errors import FacecolorError, Unavailable


class GpuError(FacecolorError, RuntimeError):
    """A CUDA operation failed; the message says which one and what it was given."""


class GpuOutOfMemory(GpuError):
    """The GPU ran out of memory; a smaller ``--batch-size`` (or fewer large images) fixes it."""


class NvjpegError(GpuError):
    """nvJPEG rejected a batch or a file (decode) or an image (encode)."""


@contextmanager
def cuda_errors(what: str, error: type[Exception] = GpuError) -> Iterator[None]:
    """CUDA failures in the block re-raised as ``error`` (out of memory as GpuOutOfMemory), saying
    ``what`` was done. Programming errors (TypeError, ValueError) pass through: bugs must not be
    disguised as GPU faults."""
    try:
        yield
    except (GpuError, error):
        raise
    except RuntimeError as exc:  # torch.OutOfMemoryError and torch.AcceleratorError included
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = lines[0] if lines else type(exc).__name__  # torch appends long C++ traces
        if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower():
            raise GpuOutOfMemory(f"{what}: out of GPU memory ({text}); lower --batch-size") from exc
        raise error(f"{what}: {text}") from exc


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` with its CUDA index resolved (Unavailable without CUDA); the CPU as is."""
    device = torch.device(device)
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise Unavailable("torch sees no CUDA device: run with --device cpu")
    if device.type != "cuda":
        raise Unavailable(f"the GPU path needs a CUDA device, not {device}")
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def hand_over(tensor: torch.Tensor, consumer: torch.cuda.Stream | None) -> None:
    """Record ``tensor`` on the ``consumer`` stream that reads it besides the one that made it,
    or the caching allocator may hand its memory out again while the reader's kernels are still
    queued (torch's notes, "CUDA caching allocator")."""
    if consumer is not None and tensor.is_cuda:
        tensor.record_stream(consumer)


def new_stream(device: torch.device) -> torch.cuda.Stream | None:
    return torch.cuda.Stream(device) if device.type == "cuda" else None


def mark(stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
    return stream.record_event() if stream is not None else None


def host_wait(point: torch.cuda.Stream | torch.cuda.Event | None) -> None:
    """Block this thread (not the GIL) until the stream has run all its queued work, or the event has completed."""
    if point is not None:
        point.synchronize()
