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
stage's per-machine cache (``facecolor.export.cache``). The reference is always PyTorch fp32
(TF32 off on CUDA, so it is true fp32).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from facecolor.bench.errors import BenchError
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
    chosen = list(dict.fromkeys(name for name in (part.strip() for part in names.split(",")) if name))
    for name in chosen:
        if name not in TARGETS:
            raise BenchError(f"unknown backend {name!r}; choose from {', '.join(TARGETS)}")
    if not chosen:
        raise BenchError(f"--compare names no backend; choose from {', '.join(TARGETS)}")
    return chosen


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
    if engine.suffix.lower() not in MODEL_SUFFIXES:
        raise BenchError(
            f"{engine}: --engine takes a TensorRT .plan, an .onnx or a .safetensors checkpoint; "
            "make one with facecolor-export CHECKPOINT --onnx OUT.onnx"
        )
    return engine


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
    """Turn TF32 off for CUDA matmuls and convolutions while the reference runs, so it is fp32
    arithmetic; restores torch's settings afterwards. A no-op for CPU work."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass
class OpenedTarget:
    """A backend opened for a target, with what it runs and at which precision."""

    backend: Backend
    artifact: Path
    precision: str


def open_target(name: str, engine: Path, reference: Path, device: str, max_batch: int) -> OpenedTarget:
    """Open target ``name`` for ``engine`` on the resolved ``device`` ('cpu' or 'cuda'), through
    the runtime's own resolution (``runtime.backends.select``: which file, which precision).

    Raises Unavailable (with the reason shown in the row) when it cannot run here.
    """
    spec = TARGETS[name]
    where = spec.device or device
    missing = missing_for(spec.kind, where, device)
    if missing:
        raise Unavailable("; ".join(missing))
    if spec.kind == "torch":
        checkpoint = engine if engine.suffix.lower() == ".safetensors" else reference
        backend = open_kind("torch", checkpoint, where, precision=spec.precision, max_batch=max_batch)
        return OpenedTarget(backend, checkpoint, spec.precision)
    artifact = artifact_for(spec.kind, engine, max_batch=max_batch)
    return OpenedTarget(open_kind(spec.kind, artifact, where, max_batch=max_batch), artifact, precision_of(artifact))


def open_reference(reference: Reference, device: str) -> Backend:
    """PyTorch fp32 on ``device`` (run it inside ``true_fp32()`` on CUDA)."""
    return open_kind("torch", reference.path, device, precision="fp32", max_batch=0)
