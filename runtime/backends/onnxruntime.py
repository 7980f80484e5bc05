"""ONNX Runtime backends: CPU (numpy in and out) and CUDA (I/O binding on torch CUDA tensors).

The I/O names are read from the session, so any one-input, one-output graph works. On CUDA
ONNX Runtime reads and writes the torch tensors' memory directly (``io_binding``,
notes/tensorrt-onnx.md): no host copies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecolor.errors import Unavailable
from facecolor.files import sha256_file
from facecolor.runtime.backends.base import Backend, BackendError, ModelInfo, preset_in

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise Unavailable(
            "onnxruntime is not installed: pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"
        ) from error
    return onnxruntime


def cuda_provider_available() -> bool:
    """True when the installed onnxruntime was built with the CUDA provider."""
    try:
        return CUDA_PROVIDER in _import_onnxruntime().get_available_providers()
    except Unavailable:
        return False


def onnx_model_info(path: Path, session: Any) -> ModelInfo:
    """The preset from the ONNX metadata (``facecolor.preset``, ``preset``, or a ``facecolor``
    JSON document); the hash is the file's own."""
    meta = session.get_modelmeta().custom_metadata_map or {}
    try:
        document = json.loads(meta.get("facecolor", "{}"))
    except json.JSONDecodeError:
        document = None
    preset = preset_in({"preset": meta.get("facecolor.preset") or meta.get("preset")}, document)
    return ModelInfo(preset=preset, sha256=sha256_file(path), source=path)


class OnnxRuntimeBackend(Backend):
    """One ONNX Runtime session on the CPU or on one CUDA device."""

    def __init__(
        self,
        onnx_path: Path,
        *,
        device: str = "cpu",
        render_size: int | None = None,
        threads: int | None = None,
        model: ModelInfo | None = None,
    ) -> None:
        ort = _import_onnxruntime()
        onnx_path = Path(onnx_path)
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers: list = [CPU_PROVIDER]
        if device == "cpu":
            # Idle ORT threads spin by default, burning the cores that the pipeline's decode and
            # encode threads need between batches (measured: 1.0 -> 1.5 images/s on 2 cores).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        else:
            if not cuda_provider_available():
                raise Unavailable(
                    "onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu "
                    "(in place of onnxruntime)"
                )
            self._device_index = torch.cuda.current_device()
            providers.insert(0, (CUDA_PROVIDER, {"device_id": self._device_index}))
        try:
            self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise Unavailable(
                f"onnxruntime cannot load {onnx_path}: {error}; re-export it with facecolor-export"
            ) from error
        if device == "cuda" and CUDA_PROVIDER not in self._session.get_providers():
            raise Unavailable(
                "onnxruntime fell back to the CPU (its CUDA libraries did not load); "
                "check that onnxruntime-gpu matches the installed CUDA (notes: 1.27+ is CUDA 13)"
            )
        (inp,), (out,) = self._session.get_inputs(), self._session.get_outputs()
        self._input, self._output = inp.name, out.name
        batch, _, height, width = inp.shape
        fixed = height if isinstance(height, int) else None
        if fixed is not None and width != height:
            raise Unavailable(f"{onnx_path}: input {inp.shape} is not square")
        if fixed is not None and render_size not in (None, fixed):
            raise Unavailable(
                f"{onnx_path} takes {fixed}x{fixed} renders, not {render_size}; "
                f"omit --render-size or re-export at that size"
            )
        if fixed is None and render_size is None:
            raise Unavailable(f"{onnx_path} has a dynamic input size: pass --render-size")
        self.name = f"onnxruntime-{device}"
        self.device = device
        self.render_size = int(fixed or render_size)
        self.max_batch = batch if isinstance(batch, int) else None
        self.model = model or onnx_model_info(onnx_path, self._session)

    def predict_ab(self, l_norm):
        if self._session is None:
            raise BackendError("the onnxruntime backend was closed")
        try:
            if self.device == "cpu":
                batch = np.ascontiguousarray(l_norm, dtype=np.float32)
                (ab,) = self._session.run([self._output], {self._input: batch})
                return ab
            x = l_norm.to(dtype=torch.float32).contiguous()
            n, _, s, _ = x.shape
            y = torch.empty((n, 2, s, s), dtype=torch.float32, device=x.device)
            binding = self._session.io_binding()
            binding.bind_input(self._input, "cuda", self._device_index, np.float32, tuple(x.shape), x.data_ptr())
            binding.bind_output(self._output, "cuda", self._device_index, np.float32, tuple(y.shape), y.data_ptr())
            # ONNX Runtime runs on its own stream: the input must be complete before it reads it,
            # and run_with_iobinding returns once its outputs are written.
            torch.cuda.current_stream().synchronize()
            self._session.run_with_iobinding(binding)
            return y
        except Exception as error:
            raise BackendError(f"onnxruntime failed on a batch of {len(l_norm)}: {error}") from error

    def close(self) -> None:
        self._session = None
