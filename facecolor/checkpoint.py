"""Checkpoints: one ``.safetensors`` file that rebuilds its own generator (DESIGN §4).

The tensors are the generator's state dict under ``generator.``; the safetensors metadata holds
one JSON document under the key ``facecolor`` with the model config (preset, widths, render
size, color convention), the training recipe, a data summary and the final metrics. Loading
never unpickles, so a checkpoint from anywhere is safe to open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facecolor.color import COLOR_CONVENTION
from facecolor.files import write_atomically

FORMAT_VERSION = 1
METADATA_KEY = "facecolor"
GENERATOR_PREFIX = "generator."


class CheckpointError(ValueError):
    """A file that is not a usable facecolor checkpoint; the message says why and what to do."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds: the generator's weights and everything about them."""

    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    recipe: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def preset(self) -> str:
        return str(self.model_config.get("preset", "?"))

    @property
    def render_size(self) -> int:
        return int(self.model_config.get("render_size", 128))


def save_checkpoint(
    path: str | Path,
    generator: nn.Module,
    model_config: dict[str, Any],
    *,
    recipe: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write the plain (never compiled or DDP-wrapped) generator and its metadata atomically."""
    module = getattr(generator, "module", generator)  # DDP
    module = getattr(module, "_orig_mod", module)  # torch.compile
    document = {
        "format_version": FORMAT_VERSION,
        "model_config": {**model_config, "color_convention": COLOR_CONVENTION},
        "recipe": recipe or {},
        "data": data or {},
        "metrics": metrics or {},
    }
    return _write(Path(path), module.state_dict(), document, half)


def save_half_copy(source: str | Path, target: str | Path) -> Path:
    """Rewrite a checkpoint with fp16 weights (half the size; BatchNorm statistics stay fp32).

    Why: the shipped model must stay small in git and in transfers; load_generator turns the
    weights back into fp32, and the colors differ from the fp32 file by far less than a level.
    """
    checkpoint = read_checkpoint(source)
    document = {
        "format_version": FORMAT_VERSION,
        "model_config": checkpoint.model_config,
        "recipe": checkpoint.recipe,
        "data": checkpoint.data,
        "metrics": {**checkpoint.metrics, "weights_dtype": "float16"},
    }
    return _write(Path(target), checkpoint.state_dict, document, half=True)


def _write(path: Path, state: dict[str, torch.Tensor], document: dict[str, Any], half: bool) -> Path:
    from safetensors.torch import save_file

    tensors = {}
    for name, tensor in state.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if half and tensor.is_floating_point() and "running_" not in name:
            tensor = tensor.half()
        tensors[GENERATOR_PREFIX + name] = tensor
    metadata = {METADATA_KEY: json.dumps(document, sort_keys=True, default=str)}
    write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint's metadata and tensors without building a model."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
            if raw is None:
                raise CheckpointError(
                    f"{path} is a safetensors file but not a facecolor checkpoint (no "
                    f"'{METADATA_KEY}' metadata); train one with facecolor-train"
                )
            state = {
                key[len(GENERATOR_PREFIX):]: handle.get_tensor(key)
                for key in handle.keys()
                if key.startswith(GENERATOR_PREFIX)
            }
    except (SafetensorError, OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {error}") from error
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: its metadata is not valid JSON ({error})") from error
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}; this facecolor reads {FORMAT_VERSION}"
        )
    config = document.get("model_config", {})
    if config.get("color_convention") != COLOR_CONVENTION:
        raise CheckpointError(
            f"{path} was trained with color convention {config.get('color_convention')!r}, "
            f"this facecolor uses {COLOR_CONVENTION!r}; retrain or use a matching version"
        )
    if not state:
        raise CheckpointError(f"{path} holds no generator weights")
    return Checkpoint(
        model_config=config,
        state_dict=state,
        recipe=document.get("recipe", {}),
        data=document.get("data", {}),
        metrics=document.get("metrics", {}),
        path=path,
    )


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Rebuild the generator a checkpoint describes, load its weights (fp32), eval mode."""
    from facecolor.models import build_generator_from_config

    checkpoint = read_checkpoint(path)
    generator = build_generator_from_config(checkpoint.model_config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()}
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0:3]
        raise CheckpointError(
            f"{path}: weights do not match preset {checkpoint.preset!r}: {' '.join(first)}"
        ) from error
    return generator.to(device).eval(), checkpoint
