"""The GPU path's one choke point for CUDA failures, and its few stream helpers.

Every call into CUDA, nvJPEG or TensorRT in ``facecolor.runtime.gpu``, ``pipeline_gpu`` and
the TensorRT backend runs inside ``cuda_errors(...)``, which turns what torch and the libraries
raise (``torch.OutOfMemoryError``, ``torch.AcceleratorError``, ``RuntimeError`` from the
torchvision ops, TensorRT's ``False`` returns checked by the caller) into one of the named
exceptions below, with what was being done in the message. Callers then decide per exception
type: a decode failure sends a file to the CPU decoder, an out-of-memory error names
``--batch-size``, anything else is fatal for the run.

Nothing here needs a GPU to import; ``require_cuda`` says plainly when there is none. The
stream helpers at the end accept a CPU device too (streams and events become None and waits
no-ops), so the GPU pipeline's stage logic runs unchanged on CPU tensors in the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

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
    """Run the block; re-raise CUDA failures as ``error`` (OOM always as GpuOutOfMemory).

    ``what`` says what was being done ("nvJPEG decode of 64 gray JPEGs"); it starts the message.
    Exceptions that are already named (GpuError, or ``error`` itself, raised inside the block
    with a better message) pass through unchanged, and so do programming errors (TypeError,
    ValueError from argument checks) so that bugs are not disguised as GPU faults.
    """
    try:
        yield
    except (GpuError, error):
        raise
    except torch.OutOfMemoryError as exc:
        raise GpuOutOfMemory(
            f"{what}: out of GPU memory ({_first_line(exc)}); lower --batch-size"
        ) from exc
    except RuntimeError as exc:  # torch.AcceleratorError subclasses RuntimeError
        text = _first_line(exc)
        if "out of memory" in text.lower():
            raise GpuOutOfMemory(f"{what}: out of GPU memory ({text}); lower --batch-size") from exc
        raise error(f"{what}: {text}") from exc


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text (torch appends long C++ traces)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def require_cuda(device: str | torch.device = "cuda") -> torch.device:
    """The CUDA device to run on, with its index resolved; Unavailable when there is none."""
    if not torch.cuda.is_available():
        raise Unavailable("torch sees no CUDA device: run with --device cpu")
    device = torch.device(device)
    if device.type != "cuda":
        raise Unavailable(f"the GPU path needs a CUDA device, not {device}")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def hand_over(tensor: torch.Tensor, consumer: torch.cuda.Stream | None) -> torch.Tensor:
    """Tell torch's caching allocator that ``consumer`` uses ``tensor`` too.

    Tensors made on one stream and read on another must be recorded on the reader, or the
    allocator may hand their memory out again while the reader's kernels are still queued
    (see "CUDA caching allocator" in torch's notes). Returns ``tensor`` for chaining.
    """
    if consumer is not None and tensor.is_cuda:
        tensor.record_stream(consumer)
    return tensor


# --------------------------------------------------------------------------- streams and events


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` with its CUDA index resolved (Unavailable without CUDA); CPU as is."""
    device = torch.device(device)
    return device if device.type == "cpu" else require_cuda(device)


def new_stream(device: torch.device) -> torch.cuda.Stream | None:
    """A fresh non-default CUDA stream on ``device``; None for the CPU."""
    return torch.cuda.Stream(device) if device.type == "cuda" else None


def on_stream(stream: torch.cuda.Stream | None) -> AbstractContextManager:
    """Make ``stream`` current for the block (nothing for the CPU's None)."""
    return torch.cuda.stream(stream) if stream is not None else nullcontext()


def mark(stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
    """An event recorded on ``stream`` after everything queued so far; None for the CPU."""
    if stream is None:
        return None
    event = torch.cuda.Event()
    event.record(stream)
    return event


def host_wait(event: torch.cuda.Event | None) -> None:
    """Block this thread (not the GIL) until ``event`` has completed."""
    if event is not None:
        event.synchronize()


def drain(stream: torch.cuda.Stream | None) -> None:
    """Block this thread until ``stream`` has run everything queued on it."""
    if stream is not None:
        stream.synchronize()
