"""The one place that chooses the inference backend (DESIGN §5), and says why.

``--device auto`` takes the first that works, in this order:

1. TensorRT engine   (``tensorrt`` importable and a CUDA device)
2. ONNX Runtime CUDA (``CUDAExecutionProvider`` available and a CUDA device)
3. PyTorch CUDA      (a CUDA device)
4. ONNX Runtime CPU  (always; PyTorch CPU only if the ONNX export itself fails)

What the model file allows narrows the list: a ``.plan`` runs only on TensorRT, an ``.onnx``
only on ONNX Runtime, a ``.safetensors`` checkpoint on any of them (its ONNX and engine come
from the per-machine cache of ``facecolor.export.cache``, built on first use). A
``--render-size`` other than the model's own needs a backend that can take any size, so it
selects PyTorch. ``--device cuda`` never falls back to the CPU; ``--device cpu`` never uses
CUDA. Each backend that was passed over adds its reason to the line the CLI prints first,
e.g. ``backend: onnxruntime-cpu on CPU (no CUDA device; TensorRT not installed)``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from facecolor.files import sha256_file
from facecolor.errors import FacecolorError, Unavailable
from facecolor.runtime.backends.base import Backend, ModelInfo

if TYPE_CHECKING:  # the export package is imported only when a backend needs a build
    from facecolor.export.cache import Notify

SHIPPED_MODEL = "gpsagd.safetensors"
MODEL_SUFFIXES = (".safetensors", ".onnx", ".plan")
DEVICES = ("auto", "cpu", "cuda")


class ModelNotFound(FacecolorError, FileNotFoundError):
    """No model to run: the shipped one is missing or ``--model`` does not exist."""


def shipped_model() -> Path:
    """The default model installed with the package (``models/`` in the repository)."""
    path = Path(str(importlib.resources.files("facecolor.shipped") / SHIPPED_MODEL))
    if not path.is_file():
        raise ModelNotFound("no shipped model: pass --model or run make train")
    return path


def _cuda_device() -> str | None:
    """The CUDA device's name, or None when torch sees none."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.cuda.current_device())


def _tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _checkpoint_info(path: Path) -> tuple[ModelInfo, int]:
    from facecolor.checkpoint import CheckpointError, read_checkpoint

    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as error:
        raise ModelNotFound(str(error)) from error
    return ModelInfo(checkpoint.preset, sha256_file(path), path), checkpoint.render_size


# Each opener returns a backend or raises Unavailable with a short reason.


def _tensorrt(model: Path, suffix: str, batch_size: int, info: ModelInfo | None, notify: Notify | None) -> Backend:
    if not _tensorrt_installed():
        raise Unavailable("TensorRT not installed")
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    plan = model
    if suffix == ".safetensors":
        from facecolor.export.cache import cached_engine
        from facecolor.export.errors import ExportError

        try:
            plan = cached_engine(model, max_batch=batch_size, notify=notify)
        except (ExportError, Unavailable) as error:  # no GPU match, build failure: the next backend runs
            raise Unavailable(f"engine build failed ({error})") from error
    backend = TensorRTBackend(plan, max_batch=batch_size)
    if info is not None:
        backend.model = info
    return backend


def _onnxruntime(
    model: Path, suffix: str, device: str, render_size: int | None, info, notify: Notify | None
) -> Backend:
    from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend, cuda_provider_available

    if device == "cuda" and not cuda_provider_available():
        raise Unavailable("onnxruntime-gpu not installed")
    onnx = model
    if suffix == ".safetensors":
        from facecolor.export.cache import cached_onnx

        try:
            onnx = cached_onnx(model, fp16=False, notify=notify)
        except Unavailable:
            raise
        except Exception as error:  # an export failure names itself; torch still runs
            raise Unavailable(f"ONNX export failed ({type(error).__name__}: {error})") from error
    return OnnxRuntimeBackend(onnx, device=device, render_size=render_size, model=info)


def _torch(model: Path, device: str, render_size: int | None) -> Backend:
    from facecolor.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(model, device=device, render_size=render_size)


def open_backend(
    model: Path | None,
    device: str = "auto",
    *,
    batch_size: int,
    render_size: int | None = None,
    notify: Notify | None = None,
) -> tuple[Backend, str]:
    """Open the best backend for ``model`` on ``device``; return it and the reason line.

    ``notify`` hears about first-use builds (ONNX export, TensorRT engine) while they run.

    Raises ModelNotFound (no such model, or no shipped model) and Unavailable (nothing
    can run this model on this device; the message lists what each candidate lacked).
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    model = Path(model) if model is not None else shipped_model()
    if not model.is_file():
        raise ModelNotFound(f"model not found: {model}")
    suffix = model.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelNotFound(f"{model}: a model is a .safetensors checkpoint, an .onnx or a .plan file")

    gpu_name = _cuda_device() if device != "cpu" else None
    if device == "cuda" and gpu_name is None:
        raise Unavailable("--device cuda, but torch sees no CUDA device: use --device cpu or auto")
    passed_over: list[str] = []
    if device == "cpu":
        passed_over.append("--device cpu")
    elif gpu_name is None:
        passed_over.append("no CUDA device")
        if not _tensorrt_installed():
            passed_over.append("TensorRT not installed")

    info, native_size = (None, None)
    if suffix == ".safetensors":
        info, native_size = _checkpoint_info(model)
    resized = render_size is not None and native_size is not None and render_size != native_size
    fixed_size_reason = f"--render-size {render_size} differs from the model's {native_size}"

    candidates: list[tuple[str, Callable[[], Backend]]] = []
    if gpu_name is not None:
        if suffix in (".plan", ".safetensors") and not resized:
            candidates.append(("tensorrt", lambda: _tensorrt(model, suffix, batch_size, info, notify)))
        if suffix in (".onnx", ".safetensors") and not resized:
            candidates.append(
                ("onnxruntime-cuda", lambda: _onnxruntime(model, suffix, "cuda", render_size, info, notify))
            )
        if suffix == ".safetensors":
            candidates.append(("torch-cuda", lambda: _torch(model, "cuda", render_size)))
    if device != "cuda":
        if suffix in (".onnx", ".safetensors") and not resized:
            candidates.append(
                ("onnxruntime-cpu", lambda: _onnxruntime(model, suffix, "cpu", render_size, info, notify))
            )
        if suffix == ".safetensors":
            candidates.append(("torch-cpu", lambda: _torch(model, "cpu", render_size)))
    if resized:
        passed_over.append(f"{fixed_size_reason}, so no ONNX or TensorRT")

    for name, opener in candidates:
        try:
            backend = opener()
        except Unavailable as error:
            passed_over.append(f"{name}: {error}")
            continue
        where = f"CUDA ({gpu_name})" if backend.device == "cuda" else "CPU"
        why = "; ".join(passed_over) or "fastest available"
        return backend, f"backend: {backend.name} on {where} ({why})"

    if suffix == ".plan":
        hint = "a .plan runs only with TensorRT on a CUDA device: pass the .onnx or .safetensors"
    elif suffix == ".onnx" and device == "cuda":
        hint = "an .onnx runs on CUDA only with onnxruntime-gpu: install it or pass the .safetensors"
    else:
        hint = "see the reasons above"
    tried = "; ".join(passed_over) or "no candidate"
    raise Unavailable(f"no backend can run {model.name} on --device {device} ({tried}); {hint}")
