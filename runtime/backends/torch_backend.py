"""PyTorch backends: the generator from a ``.safetensors`` checkpoint, on the CPU or CUDA.

CPU runs in fp32 (numpy in and out). CUDA runs under fp16 autocast by default (``precision``
"fp16"), or in plain fp32, in inference mode on torch CUDA tensors; BatchNorm and the tanh
output stay fp32 through autocast's own rules, and the output is returned as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facecolor.checkpoint import CheckpointError, load_generator
from facecolor.errors import Unavailable
from facecolor.files import sha256_file
from facecolor.runtime.backends.base import Backend, BackendError, ModelInfo


class TorchBackend(Backend):
    """A generator in eval mode. Any render size the architecture accepts works."""

    def __init__(
        self,
        checkpoint_path: Path,
        *,
        device: str = "cpu",
        render_size: int | None = None,
        precision: str | None = None,
        model: ModelInfo | None = None,
    ) -> None:
        default = "fp16" if device == "cuda" else "fp32"
        precision = precision or default
        if precision not in ("fp16", "fp32"):
            raise Unavailable(f"precision {precision!r}: use fp16 or fp32")
        if device == "cpu" and precision == "fp16":
            raise Unavailable("PyTorch fp16 runs on CUDA only (CPU autocast is slower than fp32); "
                              "use fp32 on the CPU")
        if device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch sees no CUDA device: use --device cpu")
        checkpoint_path = Path(checkpoint_path)
        try:
            self._model, checkpoint = load_generator(checkpoint_path, device)
        except CheckpointError as error:
            raise Unavailable(str(error)) from error
        self.precision = precision
        self.name = f"torch-{device}" if precision == default else f"torch-{device}-{precision}"
        self.device = device
        self.render_size = int(render_size or checkpoint.render_size)
        self.max_batch = None
        # open_backend has hashed the checkpoint already: the file is read once more, not twice
        self.model = model or ModelInfo(checkpoint.preset, sha256_file(checkpoint_path), checkpoint_path)

    def predict_ab(self, l_norm):
        if self._model is None:
            raise BackendError("the torch backend was closed")
        try:
            with torch.inference_mode():
                if self.device == "cpu":
                    x = torch.from_numpy(np.ascontiguousarray(l_norm, dtype=np.float32))
                    return self._model(x).numpy()
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16"):
                    ab = self._model(l_norm.float())
                return ab.float()
        except Exception as error:
            raise BackendError(f"torch failed on a batch of {len(l_norm)}: {error}") from error

    def close(self) -> None:
        self._model = None
