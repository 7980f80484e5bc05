"""The one place that chooses the inference backend (DESIGN §5), and says why.

``--device auto`` takes the first that works: TensorRT, ONNX Runtime CUDA, PyTorch CUDA, ONNX
Runtime CPU (PyTorch CPU only if the ONNX export itself fails). The model file narrows the
list: a ``.plan`` runs only on TensorRT, an ``.onnx`` only on ONNX Runtime, a checkpoint on
any (its ONNX and engine come from the per-machine cache of ``facecolor.export.cache``). A
``--render-size`` other than the model's own needs PyTorch. ``--device cuda`` never falls
back to the CPU. Each candidate passed over adds its reason to the line printed first, e.g.
``backend: onnxruntime-cpu on CPU (no CUDA device; TensorRT not installed)``.

The bench opens backends by name instead (``open_kind``), through the same resolution:
``artifact_for`` (which file), ``precision_of`` and ``missing_for`` (what this machine lacks).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

import torch

from facecolor.checkpoint import CheckpointError, read_checkpoint
from facecolor.errors import FacecolorError, Unavailable
from facecolor.export.cache import Notify, cached_engine, cached_onnx
from facecolor.export.errors import ExportError
from facecolor.export.files import read_sidecar
from facecolor.files import sha256_file
from facecolor.runtime.backends.base import Backend, ModelInfo
from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend, cuda_provider_available
from facecolor.runtime.backends.tensorrt import TensorRTBackend
from facecolor.runtime.backends.torch_backend import TorchBackend

#: The default model (models/README.md says why psag: issue 12's floors, no invented color).
SHIPPED_MODEL = "psag.safetensors"
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


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


# --------------------------------------------------------------------------- which file, which precision


def _recorded_path(document: dict | None, beside: Path, *keys: str) -> Path | None:
    """The first existing file a sidecar names under ``keys`` (a path string, or a dict with
    ``path``); relative paths are tried as given and relative to the sidecar's folder."""
    for key in keys if document else ():
        value = document.get(key)
        if isinstance(value, dict):
            value = value.get("path")
        if not isinstance(value, str) or not value:
            continue
        for candidate in (Path(value), beside.parent / value, beside.parent / Path(value).name):
            if candidate.is_file():
                return candidate
    return None


def source_onnx(plan: Path) -> Path | None:
    """The ONNX a plan was built from, as its sidecar records it (if that file still exists)."""
    return _recorded_path(read_sidecar(plan), plan, "source_onnx", "onnx", "source")


def source_checkpoint(artifact: Path) -> tuple[Path | None, str | None]:
    """The checkpoint an ONNX (or a plan, through its ONNX) was exported from, and the SHA-256
    the sidecar recorded for it (None when unrecorded)."""
    if artifact.suffix.lower() == ".plan":
        onnx = source_onnx(artifact)
        return source_checkpoint(onnx) if onnx is not None else (None, None)
    document = read_sidecar(artifact)
    recorded = (document or {}).get("source_checkpoint") or {}
    sha = recorded.get("sha256") if isinstance(recorded, dict) else None
    return _recorded_path(document, artifact, "source_checkpoint", "checkpoint"), sha


def precision_of(artifact: Path) -> str:
    """'fp16' or 'fp32', the arithmetic a model file runs at: a checkpoint's fp32; else the
    sidecar's record; else a plan's from the ONNX it was built from (fp16, what facecolor-export
    builds, when that is gone), an ONNX's from its own metadata, else whether any weight is
    stored as float16."""
    suffix = artifact.suffix.lower()
    if suffix == ".safetensors":
        return "fp32"
    document = read_sidecar(artifact) or {}
    if document.get("precision") in ("fp16", "fp32"):
        return document["precision"]
    if suffix == ".plan":
        source = source_onnx(artifact)
        return precision_of(source) if source is not None else "fp16"
    import onnx

    model = onnx.load(str(artifact), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("facecolor.precision") in ("fp16", "fp32"):
        return props["facecolor.precision"]
    halves = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    return "fp16" if halves else "fp32"


def artifact_for(kind: str, model: Path, *, max_batch: int, notify: Notify | None = None) -> Path:
    """The file backend ``kind`` ('torch', 'onnxruntime', 'tensorrt') runs for ``model``: the
    model itself when it is of that kind; a plan's recorded ONNX; a checkpoint's fp32 ONNX or
    engine from the per-machine cache (built on first use)."""
    suffix = model.suffix.lower()
    if kind == "tensorrt" and suffix != ".plan":
        return cached_engine(model, max_batch=max_batch, notify=notify)
    if kind == "onnxruntime" and suffix == ".plan":
        onnx = source_onnx(model)
        if onnx is None:
            raise Unavailable(f"{model.name}'s sidecar names no existing ONNX; pass --engine MODEL.onnx "
                              "to run ONNX Runtime")
        return onnx
    if kind == "onnxruntime" and suffix == ".safetensors":
        return cached_onnx(model, fp16=False, notify=notify)
    return model


def missing_for(kind: str, device: str, requested: str, *, fixes: bool = True) -> list[str]:
    """Everything this machine lacks to run ``kind`` on ``device`` (all of it, so one run tells
    the whole story), each with its fix unless ``fixes`` is False (``open_backend``'s first
    line names only what was missing); ``requested`` is the user's --device."""
    missing = []
    if device == "cuda" and not cuda_available():
        missing.append(("no CUDA device", "torch sees none"))
    elif device == "cuda" and requested == "cpu":
        missing.append(("--device cpu", None))
    if kind == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        missing.append(("TensorRT not installed", "pip install 'facecolor[tensorrt]'"))
    if kind == "onnxruntime" and device == "cuda" and not cuda_provider_available():
        missing.append(("onnxruntime-gpu not installed",
                        "onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu"))
    return [f"{what} ({fix})" if fixes and fix else what for what, fix in missing]


def open_kind(kind: str, artifact: Path, device: str, *, precision: str | None = "fp32", max_batch: int,
              render_size: int | None = None, threads: int | None = None, model: ModelInfo | None = None) -> Backend:
    """Backend ``kind`` on ``artifact`` (see ``artifact_for``) and ``device``, as asked: no
    choosing, no falling back (the bench compares backends by name). ``model`` names the
    checkpoint a derived ONNX or engine runs (default: what the file itself records)."""
    if kind == "torch":
        return TorchBackend(artifact, device=device, render_size=render_size, precision=precision, model=model)
    if kind == "onnxruntime":
        return OnnxRuntimeBackend(artifact, device=device, render_size=render_size, threads=threads, model=model)
    return TensorRTBackend(artifact, max_batch=max_batch, model=model)


# --------------------------------------------------------------------------- choosing


#: What ``--device auto`` tries, in order: (kind, device, the model files it runs).
CANDIDATES = (
    ("tensorrt", "cuda", (".plan", ".safetensors")),
    ("onnxruntime", "cuda", (".onnx", ".safetensors")),
    ("torch", "cuda", (".safetensors",)),
    ("onnxruntime", "cpu", (".onnx", ".safetensors")),
    ("torch", "cpu", (".safetensors",)),
)


def _open_candidate(kind: str, device: str, model: Path, *, batch_size: int, render_size: int | None,
                    info: ModelInfo | None, notify: Notify | None, threads: int | None) -> Backend:
    """One candidate of ``open_backend``, or Unavailable with a short reason."""
    missing = missing_for(kind, device, device, fixes=False)  # only a library can be missing here
    if missing:
        raise Unavailable(missing[0])
    try:
        artifact = artifact_for(kind, model, max_batch=batch_size, notify=notify)
    except Exception as error:
        if kind == "tensorrt" and isinstance(error, (ExportError, Unavailable)):  # no GPU match, build failure
            raise Unavailable(f"engine build failed ({error})") from error
        if kind == "onnxruntime" and not isinstance(error, Unavailable):  # an export failure; torch still runs
            raise Unavailable(f"ONNX export failed ({type(error).__name__}: {error})") from error
        raise
    return open_kind(kind, artifact, device, precision=None, max_batch=batch_size, render_size=render_size,
                     threads=threads, model=info)


def open_backend(
    model: Path | None,
    device: str = "auto",
    *,
    batch_size: int,
    render_size: int | None = None,
    notify: Notify | None = None,
    threads: int | None = None,
) -> tuple[Backend, str]:
    """Open the best backend for ``model`` on ``device``; return it and the reason line.

    ``notify`` hears about first-use builds (ONNX export, TensorRT engine) while they run;
    ``threads`` bounds ONNX Runtime's CPU pool (default: one per core).

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

    gpu_name = None
    if device != "cpu" and cuda_available():
        gpu_name = torch.cuda.get_device_name(torch.cuda.current_device())
    if device == "cuda" and gpu_name is None:
        raise Unavailable("--device cuda, but torch sees no CUDA device: use --device cpu or auto")
    passed_over = ["--device cpu"] if device == "cpu" else []
    if device == "auto" and gpu_name is None:  # the first candidate's reasons say why none on CUDA runs
        passed_over = missing_for("tensorrt", "cuda", device, fixes=False)

    info, native_size = (None, None)
    if suffix == ".safetensors":
        try:
            checkpoint = read_checkpoint(model)
        except CheckpointError as error:
            raise ModelNotFound(str(error)) from error
        info, native_size = ModelInfo(checkpoint.preset, sha256_file(model), model), checkpoint.render_size
    resized = render_size is not None and native_size is not None and render_size != native_size
    if resized:
        passed_over.append(f"--render-size {render_size} differs from the model's {native_size}, "
                           "so no ONNX or TensorRT")

    for kind, where, suffixes in CANDIDATES:
        if suffix not in suffixes or (resized and kind != "torch"):
            continue
        if (where == "cuda" and gpu_name is None) or (where == "cpu" and device == "cuda"):
            continue
        try:
            backend = _open_candidate(kind, where, model, batch_size=batch_size, render_size=render_size, info=info,
                                      notify=notify, threads=threads)
        except Unavailable as error:
            passed_over.append(f"{kind if kind == 'tensorrt' else f'{kind}-{where}'}: {error}")
            continue
        place = f"CUDA ({gpu_name})" if backend.device == "cuda" else "CPU"
        why = "; ".join(passed_over) or "fastest available"
        return backend, f"backend: {backend.name} on {place} ({why})"

    if suffix == ".plan":
        hint = "a .plan runs only with TensorRT on a CUDA device: pass the .onnx or .safetensors"
    elif suffix == ".onnx" and device == "cuda":
        hint = "an .onnx runs on CUDA only with onnxruntime-gpu: install it or pass the .safetensors"
    else:
        hint = "see the reasons above"
    tried = "; ".join(passed_over) or "no candidate"
    raise Unavailable(f"no backend can run {model.name} on --device {device} ({tried}); {hint}")
