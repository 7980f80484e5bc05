"""TensorRT backend: a serialized engine (``.plan``) run on torch CUDA tensors.

``facecolor.export.tensorrt.check_plan`` first refuses a plan built for another TensorRT
version or GPU (its ``NAME.plan.json`` sidecar, DESIGN §4), with the command that rebuilds
it. Running follows notes/tensorrt-onnx.md with torch owning every buffer and stream (no
pycuda or cuda-python, so no second CUDA context): one input and one output buffer in the
engine's own dtypes (an fp16 engine's I/O is cast on the way in and out), and
``execute_async_v3`` on the backend's own stream, which waits for the caller's stream and is
waited for by it: no host synchronisation. TensorRT and CUDA failures become BackendError
(running) or Unavailable (loading), with TensorRT's last error messages attached.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facecolor.errors import Unavailable
from facecolor.export.errors import ExportError
from facecolor.export.tensorrt import check_plan, import_tensorrt, trt_logger
from facecolor.files import sha256_file
from facecolor.runtime.backends.base import Backend, BackendError, ModelInfo, preset_in
from facecolor.runtime.gpu.cuda import GpuError, cuda_errors


class TensorRTBackend(Backend):
    """One TensorRT engine and execution context on the current CUDA device.

    ``max_batch``: the largest batch ``predict_ab`` runs in one go (None: the profile's maximum);
    larger ones run in chunks, a chunk below the profile's minimum zero-padded. ``verify``: check
    the sidecar first (off only for engines built in tests without one). ``model``: the
    checkpoint the plan was built from, when known.
    """

    def __init__(self, plan_path: Path | str, max_batch: int | None = None, *, verify: bool = True,
                 model: ModelInfo | None = None) -> None:
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise Unavailable("TensorRT needs a CUDA device, and torch sees none")
        torch.cuda.init()  # torch's primary context first: TensorRT then runs inside it
        plan_path = Path(plan_path)
        if not plan_path.is_file():
            raise Unavailable(f"no TensorRT plan at {plan_path}")
        sidecar = {}
        if verify:
            try:
                sidecar = check_plan(plan_path)
            except (ExportError, Unavailable) as error:  # PlanError, PlanMismatchError, no TensorRT, ...
                raise Unavailable(str(error)) from error
        self._device = torch.device("cuda", torch.cuda.current_device())
        self._logger = trt_logger()
        self._logger.errors.clear()  # the messages of this load, not of an earlier build
        try:
            self._load(trt, plan_path, max_batch)
        except BaseException:
            self.close()
            raise
        self.name = "tensorrt"
        self.device = "cuda"
        digest = sidecar.get("sha256") or sha256_file(plan_path)  # check_plan hashed it already
        self.model = model or ModelInfo(preset_in(sidecar.get("source_onnx"), sidecar), str(digest), plan_path)

    def _load(self, trt, plan_path: Path, max_batch: int | None) -> None:
        what = f"loading TensorRT plan {plan_path.name}"
        with torch.cuda.device(self._device), cuda_errors(what, Unavailable):
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if self._engine is None:
                raise Unavailable(
                    f"{what}: TensorRT could not deserialize it ({self._logger.last_errors()}); "
                    f"rebuild it on this machine with facecolor-export CHECKPOINT --engine {plan_path}"
                )
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise Unavailable(f"{what}: no execution context ({self._logger.last_errors()})")
            self._bind_io(trt, max_batch)
            self._stream = torch.cuda.Stream(self._device)

    def _bind_io(self, trt, max_batch: int | None) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise Unavailable(
                f"the engine has inputs {inputs} and outputs {outputs}; facecolor needs one of each (L, ab)"
            )
        self._in_name, self._out_name = inputs[0], outputs[0]
        shape = tuple(engine.get_tensor_shape(self._in_name))
        if len(shape) != 4 or shape[1] != 1 or shape[2] < 1 or shape[2] != shape[3]:
            raise Unavailable(
                f"the engine's input {self._in_name} has shape {shape}; expected [N, 1, S, S] with a static S"
            )
        self.render_size = int(shape[2])
        low, _, high = engine.get_tensor_profile_shape(self._in_name, 0)
        self._profile_min, profile_max = max(1, int(low[0])), int(high[0])
        self.max_batch = profile_max if max_batch is None else max(1, min(int(max_batch), profile_max))
        self._in_dtype = _torch_dtype(trt, engine, self._in_name)
        self._out_dtype = _torch_dtype(trt, engine, self._out_name)
        rows = max(self.max_batch, self._profile_min)
        size = self.render_size
        # Fresh allocations: the caching allocator aligns blocks to 512 bytes (>= TensorRT's 256).
        self._input = torch.zeros((rows, 1, size, size), dtype=self._in_dtype, device=self._device)
        self._output = torch.empty((rows, 2, size, size), dtype=self._out_dtype, device=self._device)

    def predict_ab(self, l_norm):
        if self._context is None:
            raise BackendError("the TensorRT backend was closed")
        size = self.render_size
        if (
            not isinstance(l_norm, torch.Tensor)
            or tuple(l_norm.shape[1:]) != (1, size, size)  # so also 4 dimensions
            or l_norm.device != self._device
        ):
            shape = tuple(getattr(l_norm, "shape", ()))
            raise BackendError(
                f"TensorRT takes a CUDA tensor [N, 1, {size}, {size}] on {self._device}, got {shape} "
                f"on {getattr(l_norm, 'device', type(l_norm).__name__)}"
            )
        count = int(l_norm.shape[0])
        result = torch.empty((count, 2, size, size), dtype=torch.float32, device=self._device)
        caller = torch.cuda.current_stream(self._device)
        try:
            with cuda_errors(f"TensorRT inference on a batch of {count}", BackendError):
                self._stream.wait_stream(caller)
                with torch.cuda.stream(self._stream):
                    for start in range(0, count, self.max_batch):
                        stop = min(start + self.max_batch, count)
                        self._run_chunk(l_norm[start:stop], result[start:stop])
                caller.wait_stream(self._stream)
        except GpuError as error:  # out of memory: already named and with its fix
            raise BackendError(str(error)) from error
        return result

    def _run_chunk(self, source, target) -> None:
        """One engine call on the backend's stream (the current stream when this runs)."""
        count = int(source.shape[0])
        rows = max(count, self._profile_min)
        self._input[:count].copy_(source)
        if rows > count:
            self._input[count:rows].zero_()
        size = self.render_size
        context = self._context
        if not context.set_input_shape(self._in_name, (rows, 1, size, size)):
            raise BackendError(
                f"TensorRT refused input shape {(rows, 1, size, size)} ({self._logger.last_errors()})"
            )
        context.set_tensor_address(self._in_name, self._input.data_ptr())
        context.set_tensor_address(self._out_name, self._output.data_ptr())
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise BackendError(f"TensorRT execute_async_v3 failed ({self._logger.last_errors()})")
        target.copy_(self._output[:count])

    def close(self) -> None:
        """Free the context, engine, runtime and buffers (in that order); idempotent."""
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.synchronize()  # nothing may still run on buffers about to be freed
        self._context = self._engine = self._runtime = None
        self._input = self._output = self._stream = None


def _torch_dtype(trt, engine, name: str):
    """The torch dtype of the engine's I/O tensor ``name``: float32 or float16, else Unavailable."""
    dtype = engine.get_tensor_dtype(name)
    if dtype not in (trt.DataType.FLOAT, trt.DataType.HALF):
        raise Unavailable(f"the engine's {name} is {dtype}; facecolor runs float32 or float16 I/O")
    return torch.float32 if dtype == trt.DataType.FLOAT else torch.float16
