"""What the bench runs: the backends by name, the files they run, and the reference.

Names (``--compare``) and what each opens through the runtime's backends
(``facecolor.runtime.backends``; the bench never has a backend of its own):

============  ==========================================  =========  ========
name          runtime backend                             precision  device
============  ==========================================  =========  ========
torch-fp32    TorchBackend                                fp32       cpu/cuda
torch-fp16    TorchBackend (CUDA, fp16 autocast)          fp16       cuda
ort-cpu       OnnxRuntimeBackend, CPUExecutionProvider    the ONNX's cpu
ort-cuda      OnnxRuntimeBackend, CUDAExecutionProvider   the ONNX's cuda
trt           TensorRTBackend                             the plan's cuda
============  ==========================================  =========  ========

Each backend's file comes from ``--engine`` when it is of the backend's kind; otherwise from
the files the engine was made from (a plan's sidecar names its ONNX, an ONNX's sidecar its
checkpoint, and ``--reference`` is a checkpoint) or is made from them through the export
stage's per-machine cache (``facecolor.export.cache``).

The reference is always PyTorch fp32 (TF32 off on CUDA, so it is true fp32). ``--reference``
defaults to the checkpoint the engine was exported from (its sidecar records it), to the
engine itself when it is a checkpoint, else to the shipped model.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecolor.bench.errors import EngineError, ReferenceNotFound, UnknownTarget
from facecolor.files import sha256_file
from facecolor.errors import Unavailable
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.backends.torch_backend import TorchBackend

ENGINE_SUFFIXES = (".plan", ".onnx", ".safetensors")


@dataclass(frozen=True)
class TargetSpec:
    """A backend name of ``--compare``: which runtime backend, at which precision, where."""

    name: str
    kind: str  # 'torch', 'onnxruntime', 'tensorrt'
    device: str | None  # None: follows --device (torch-fp32)
    precision: str | None  # None: that of the file it runs (ONNX, plan)


TARGETS: dict[str, TargetSpec] = {
    spec.name: spec
    for spec in (
        TargetSpec("torch-fp32", "torch", None, "fp32"),
        TargetSpec("torch-fp16", "torch", "cuda", "fp16"),
        TargetSpec("ort-cpu", "onnxruntime", "cpu", None),
        TargetSpec("ort-cuda", "onnxruntime", "cuda", None),
        TargetSpec("trt", "tensorrt", "cuda", None),
    )
}


def parse_targets(names: str) -> list[str]:
    """'torch-fp32, ort-cpu' -> ['torch-fp32', 'ort-cpu'] (order kept, duplicates dropped)."""
    chosen: list[str] = []
    for name in (part.strip() for part in names.split(",")):
        if not name:
            continue
        if name not in TARGETS:
            raise UnknownTarget(f"unknown backend {name!r}; choose from {', '.join(TARGETS)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise UnknownTarget(f"--compare names no backend; choose from {', '.join(TARGETS)}")
    return chosen


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cpu'/'cuda' unchanged."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


def default_targets(engine: Path, device: str) -> list[str]:
    """What ``--engine`` alone benchmarks: a plan on TensorRT, an ONNX on ONNX Runtime (CUDA on
    a GPU), a checkpoint in PyTorch fp32 and fp16 (fp16 only where it runs: CUDA)."""
    suffix = engine.suffix.lower()
    if suffix == ".plan":
        return ["trt"]
    if suffix == ".onnx":
        return ["ort-cuda" if device == "cuda" else "ort-cpu"]
    return ["torch-fp32", "torch-fp16"] if device == "cuda" else ["torch-fp32"]


def check_engine(engine: Path) -> Path:
    engine = Path(engine)
    if engine.suffix.lower() not in ENGINE_SUFFIXES:
        raise EngineError(
            f"{engine}: --engine takes a TensorRT .plan, an .onnx or a .safetensors checkpoint; "
            "make one with facecolor-export CHECKPOINT --onnx OUT.onnx"
        )
    return engine


# --------------------------------------------------------------------------- sidecars


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """``PATH.json`` beside ``path``, or None when absent or unreadable."""
    try:
        document = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _recorded_path(document: dict[str, Any] | None, beside: Path, *keys: str) -> Path | None:
    """The first existing file a sidecar names under ``keys`` (a path string, or a dict with
    ``path``); relative paths are tried as given and relative to the sidecar's folder."""
    if not document:
        return None
    for key in keys:
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


@dataclass(frozen=True)
class Reference:
    """The PyTorch checkpoint the engine is compared with, and how it was found."""

    path: Path
    how: str  # '--reference', 'engine sidecar', 'the engine itself', 'shipped model'
    sha256: str
    warning: str = ""  # e.g. the checkpoint changed since the engine was exported


def resolve_reference(engine: Path, reference: Path | None) -> Reference:
    """``--reference``, else the engine's source checkpoint, else the engine, else shipped."""
    recorded_sha = None
    if reference is not None:
        path, how = Path(reference), "--reference"
    elif engine.suffix.lower() == ".safetensors":
        path, how = engine, "the engine itself"
    else:
        found, recorded_sha = source_checkpoint(engine)
        if found is not None:
            path, how = found, "engine sidecar"
        else:
            from facecolor.runtime.backends import ModelNotFound, shipped_model

            try:
                path, how = shipped_model(), "shipped model"
            except ModelNotFound as error:
                raise ReferenceNotFound(
                    f"no reference checkpoint: {engine.name} has no sidecar naming an existing "
                    f"checkpoint, and {error}; pass --reference CHECKPOINT"
                ) from error
    if not path.is_file():
        raise ReferenceNotFound(f"reference checkpoint not found: {path}; pass --reference CHECKPOINT")
    if path.suffix.lower() != ".safetensors":
        raise ReferenceNotFound(f"--reference must be a .safetensors checkpoint, got {path}")
    sha = sha256_file(path)
    warning = ""
    if recorded_sha and recorded_sha != sha:
        warning = (
            f"{path} changed since {engine.name} was exported from it (sha256 {sha[:12]} != "
            f"{recorded_sha[:12]} in the sidecar); differences may be the checkpoint's, not the engine's"
        )
    return Reference(path=path, how=how, sha256=sha, warning=warning)


# --------------------------------------------------------------------------- opening backends


def onnx_precision(path: Path) -> str:
    """'fp16' or 'fp32': the sidecar's record, else the file's own metadata, else whether any
    weight is stored as float16."""
    document = read_sidecar(path) or {}
    if document.get("precision") in ("fp16", "fp32"):
        return document["precision"]
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("facecolor.precision") in ("fp16", "fp32"):
        return props["facecolor.precision"]
    halves = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    return "fp16" if halves else "fp32"


def plan_precision(plan: Path) -> str:
    """A plan's precision from its sidecar, else from the ONNX it was built from, else fp16
    (what facecolor-export builds)."""
    document = read_sidecar(plan) or {}
    if document.get("precision") in ("fp16", "fp32"):
        return document["precision"]
    onnx = source_onnx(plan)
    return onnx_precision(onnx) if onnx is not None else "fp16"


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """Turn TF32 off for CUDA matmuls and convolutions while the reference runs, so it is fp32
    arithmetic; restores torch's settings afterwards. A no-op for CPU work."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def open_torch(checkpoint: Path, device: str, precision: str) -> Backend:
    """The runtime's TorchBackend at ``precision`` on ``device`` (fp16 is CUDA only)."""
    return TorchBackend(checkpoint, device=device, precision=precision)


@dataclass
class OpenedTarget:
    """A backend opened for a target, with what it runs and at which precision."""

    backend: Backend
    artifact: Path
    precision: str


def _onnx_for(engine: Path) -> Path:
    suffix = engine.suffix.lower()
    if suffix == ".onnx":
        return engine
    if suffix == ".plan":
        onnx = source_onnx(engine)
        if onnx is None:
            raise Unavailable(
                f"{engine.name}'s sidecar names no existing ONNX; pass --engine MODEL.onnx to run ONNX Runtime"
            )
        return onnx
    from facecolor.export.cache import cached_onnx

    return cached_onnx(engine, fp16=False)  # a checkpoint: its fp32 ONNX, made once per machine


def _plan_for(engine: Path, max_batch: int) -> Path:
    """The plan TensorRT runs: the engine itself, else one built (and cached) from it."""
    if engine.suffix.lower() == ".plan":
        return engine
    from facecolor.export import cache

    return cache.cached_engine(engine, max_batch=max_batch)


def missing_requirements(spec: TargetSpec, where: str, device: str) -> list[str]:
    """Everything this machine lacks for ``spec`` (all of it, so one run tells the whole story)."""
    import importlib.util

    missing = []
    if where == "cuda":
        if not cuda_available():
            missing.append("no CUDA device (torch sees none)")
        elif device == "cpu":
            missing.append("--device cpu")
    if spec.kind == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        missing.append("TensorRT not installed (pip install 'facecolor[tensorrt]')")
    if spec.kind == "onnxruntime" and where == "cuda":
        from facecolor.runtime.backends.onnxruntime import cuda_provider_available

        if not cuda_provider_available():
            missing.append("onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
    return missing


def open_target(name: str, engine: Path, reference: Path, device: str, max_batch: int) -> OpenedTarget:
    """Open target ``name`` for ``engine`` on the resolved ``device`` ('cpu' or 'cuda').

    Raises Unavailable (with the reason shown in the row) when it cannot run here.
    """
    spec = TARGETS[name]
    where = spec.device or device
    missing = missing_requirements(spec, where, device)
    if missing:
        raise Unavailable("; ".join(missing))
    if spec.kind == "torch":
        checkpoint = engine if engine.suffix.lower() == ".safetensors" else reference
        return OpenedTarget(open_torch(checkpoint, where, spec.precision), checkpoint, spec.precision)
    if spec.kind == "onnxruntime":
        from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend

        onnx = _onnx_for(engine)
        return OpenedTarget(OnnxRuntimeBackend(onnx, device=where), onnx, onnx_precision(onnx))
    plan = _plan_for(engine, max_batch)
    try:
        from facecolor.runtime.backends.tensorrt import TensorRTBackend
    except ImportError as error:
        raise Unavailable(f"the runtime has no TensorRT backend here ({error})") from error
    return OpenedTarget(TensorRTBackend(plan, max_batch=max_batch), plan, plan_precision(plan))


def open_reference(reference: Reference, device: str) -> Backend:
    """PyTorch fp32 on ``device`` (run it inside ``true_fp32()`` on CUDA)."""
    return open_torch(reference.path, device, "fp32")
