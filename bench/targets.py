"""What the bench runs: the backends of ``--compare`` (``TARGETS``), the files they run, and
the reference. The bench has no backend of its own: each name opens one of the runtime's
(``facecolor.runtime.backends``), whose own resolution picks the file: ``--engine`` when it
is of the backend's kind, else one the engine was made from (a plan's sidecar names its ONNX,
an ONNX's its checkpoint) or made from them through the export cache
(``facecolor.export.cache``). The reference is always PyTorch fp32, with TF32 off on CUDA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from facecolor.bench import BenchError
from facecolor.errors import Unavailable
from facecolor.files import sha256_file
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.backends.select import (
    MODEL_SUFFIXES,
    ModelNotFound,
    artifact_for,
    missing_for,
    open_kind,
    precision_of,
    shipped_model,
    source_checkpoint,
)


@dataclass(frozen=True)
class TargetSpec:
    kind: str  # 'torch', 'onnxruntime', 'tensorrt'
    device: str | None  # None: follows --device (torch-fp32)
    precision: str | None  # None: that of the file it runs (ONNX, plan)


TARGETS: dict[str, TargetSpec] = {
    "torch-fp32": TargetSpec("torch", None, "fp32"),
    "torch-fp16": TargetSpec("torch", "cuda", "fp16"),
    "ort-cpu": TargetSpec("onnxruntime", "cpu", None),
    "ort-cuda": TargetSpec("onnxruntime", "cuda", None),
    "trt": TargetSpec("tensorrt", "cuda", None),
}


def default_targets(engine: Path, device: str) -> list[str]:
    """What ``--engine`` alone benchmarks (fp16 PyTorch only where it runs: CUDA)."""
    suffix = engine.suffix.lower()
    if suffix == ".plan":
        return ["trt"]
    if suffix == ".onnx":
        return ["ort-cuda" if device == "cuda" else "ort-cpu"]
    return ["torch-fp32", "torch-fp16"] if device == "cuda" else ["torch-fp32"]


def check_engine(engine: Path) -> Path:
    engine = Path(engine)
    if engine.suffix.lower() not in MODEL_SUFFIXES:
        raise BenchError(
            f"{engine}: --engine takes a TensorRT .plan, an .onnx or a .safetensors checkpoint; "
            "make one with facecolor-export CHECKPOINT --onnx OUT.onnx"
        )
    return engine


@dataclass(frozen=True)
class Reference:
    path: Path
    how: str  # '--reference', 'engine sidecar', 'the engine itself', 'shipped model'
    sha256: str
    warning: str = ""  # e.g. the checkpoint changed since the engine was exported


def resolve_reference(engine: Path, reference: Path | None) -> Reference:
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
            try:
                path, how = shipped_model(), "shipped model"
            except ModelNotFound as error:
                raise BenchError(
                    f"no reference checkpoint: {engine.name} has no sidecar naming an existing "
                    f"checkpoint, and {error}; pass --reference CHECKPOINT"
                ) from error
    if not path.is_file():
        raise BenchError(f"reference checkpoint not found: {path}; pass --reference CHECKPOINT")
    if path.suffix.lower() != ".safetensors":
        raise BenchError(f"--reference must be a .safetensors checkpoint, got {path}")
    sha = sha256_file(path)
    warning = ""
    if recorded_sha and recorded_sha != sha:
        warning = (
            f"{path} changed since {engine.name} was exported from it (sha256 {sha[:12]} != "
            f"{recorded_sha[:12]} in the sidecar); differences may be the checkpoint's, not the engine's"
        )
    return Reference(path=path, how=how, sha256=sha, warning=warning)


# --------------------------------------------------------------------------- opening backends


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """TF32 off while the reference runs on CUDA, so it is fp32 arithmetic."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def open_target(name: str, engine: Path, reference: Path, device: str, max_batch: int) -> tuple[Backend, Path, str]:
    """(backend, the file it runs, its precision); raises Unavailable (the reason shown in the
    row) when ``name`` cannot run here."""
    spec = TARGETS[name]
    where = spec.device or device
    missing = missing_for(spec.kind, where, device)
    if missing:
        raise Unavailable("; ".join(missing))
    if spec.kind == "torch":
        checkpoint = engine if engine.suffix.lower() == ".safetensors" else reference
        backend = open_kind("torch", checkpoint, where, precision=spec.precision, max_batch=max_batch)
        return backend, checkpoint, spec.precision
    artifact = artifact_for(spec.kind, engine, max_batch=max_batch)
    return open_kind(spec.kind, artifact, where, max_batch=max_batch), artifact, precision_of(artifact)
