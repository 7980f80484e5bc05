"""facecolor.export: checkpoint -> ONNX (fp32, fp16) -> TensorRT engine, each checked and described.

    from facecolor.export import export_onnx, build_engine, check_plan, cached_engine
    export_onnx("gpsagd.safetensors", "gpsagd.onnx")                      # fp32, checked
    export_onnx("gpsagd.safetensors", "gpsagd.fp16.onnx", fp16=True, fp32_onnx="gpsagd.onnx")
    build_engine("gpsagd.fp16.onnx", "gpsagd.plan", max_batch=256)        # needs TensorRT + GPU
    check_plan("gpsagd.plan")                                             # refuses another machine's
    cached_engine("gpsagd.safetensors")                                   # the runtime's entry point

Every artifact has a JSON sidecar ``NAME.EXT.json`` (source hashes, versions, shapes, checks).
Modules: ``onnx`` (export), ``check`` (ONNX Runtime vs PyTorch), ``tensorrt`` (engine build and
plan check), ``cache`` (per-machine cache), ``files`` (hashes, sidecars, atomic writes),
``errors``, ``cli``. Names are imported lazily so ``facecolor-export --help`` stays fast.
"""

from __future__ import annotations

import importlib

from facecolor.export.errors import (
    INSTALL_TENSORRT,
    EngineBuildError,
    ExportCheckError,
    ExportError,
    PlanError,
    PlanMismatchError,
    Unavailable,
)

_LAZY = {
    "export_onnx": "facecolor.export.onnx",
    "fp16_path": "facecolor.export.onnx",
    "check_onnx": "facecolor.export.check",
    "TOLERANCES": "facecolor.export.check",
    "build_engine": "facecolor.export.tensorrt",
    "check_plan": "facecolor.export.tensorrt",
    "current_machine": "facecolor.export.tensorrt",
    "MachineFacts": "facecolor.export.tensorrt",
    "cached_onnx": "facecolor.export.cache",
    "cached_engine": "facecolor.export.cache",
    "cache_root": "facecolor.export.cache",
}

__all__ = [
    "INSTALL_TENSORRT",
    "EngineBuildError",
    "ExportCheckError",
    "ExportError",
    "PlanError",
    "PlanMismatchError",
    "Unavailable",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facecolor.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
