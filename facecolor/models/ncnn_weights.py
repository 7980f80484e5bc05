"""ImageNet SqueezeNet 1.1 weights from an ncnn file pair, as torchvision's own state dict.

Why: torchvision's ``squeezenet1_1-b8a52dc0.pth`` cannot be downloaded on the training machines,
but the same weights exist as an ncnn export (``shared/data/weights/``, made by pnnx from
torchvision's model). Converting them once into the state dict torchvision would have written
lets every SqueezeNet preset start from ImageNet through the one existing path
(``--encoder-weights`` or torchvision's cache), with nothing ncnn-specific downstream.

ncnn format (as written by pnnx): the ``.param`` text lists one layer a line,
``Type Name n_in n_out inputs... outputs... key=value...``; for ``Convolution``, key 0 is the
output channels, 1 the kernel size, 5 whether there is a bias and 6 the weight count. The
``.bin`` holds, per convolution in listed order, a 4-byte tag and the weights ([out, in, kh, kw];
tag ``0x01306B47`` = float16, padded to 4 bytes; tag 0 = float32), then the bias as plain
float32. The file must be consumed exactly: a short or long file is the wrong file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from facecolor.files import write_atomically
from facecolor.models.encoders import EncoderWeightsError, cached_weights_path

NCNN_MAGIC = "7767517"
PARAM_NAME = "squeezenet_v1.1.ncnn.param"
BIN_NAME = "squeezenet_v1.1.ncnn.bin"
_TAG_FLOAT16 = 0x01306B47
_TAG_FLOAT32 = 0x00000000


@dataclass(frozen=True)
class NcnnConvolution:
    """One convolution layer of the ``.param`` file: what the ``.bin`` holds for it."""

    name: str
    out_channels: int
    kernel: int
    weight_count: int
    has_bias: bool


def read_convolutions(param_path: Path) -> list[NcnnConvolution]:
    """The ``Convolution`` layers of an ncnn ``.param`` file, in file order."""
    lines = Path(param_path).read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != NCNN_MAGIC:
        raise EncoderWeightsError(
            f"{param_path} is not an ncnn .param file (first line must be {NCNN_MAGIC})"
        )
    convolutions = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        try:
            inputs, outputs = int(fields[2]), int(fields[3])
            options = dict(item.split("=", 1) for item in fields[4 + inputs + outputs :])
            convolutions.append(NcnnConvolution(
                fields[1], int(options["0"]), int(options.get("1", "1")), int(options["6"]),
                options.get("5", "0") == "1",
            ))
        except (IndexError, KeyError, ValueError) as error:
            raise EncoderWeightsError(f"{param_path}:{number}: unreadable Convolution line ({error})") from error
    return convolutions


def read_tensors(param_path: Path, bin_path: Path) -> list[tuple[NcnnConvolution, np.ndarray, np.ndarray | None]]:
    """Each convolution's float32 weights (flat) and bias, read from the ``.bin`` to its last byte."""
    data = Path(bin_path).read_bytes()
    offset, tensors = 0, []
    for conv in read_convolutions(param_path):
        if offset + 4 > len(data):
            raise EncoderWeightsError(f"{bin_path} ends early, at layer {conv.name} (truncated file?)")
        tag = int.from_bytes(data[offset : offset + 4], "little")
        offset += 4
        if tag == _TAG_FLOAT16:
            size = conv.weight_count * 2
            dtype = np.float16
        elif tag == _TAG_FLOAT32:
            size = conv.weight_count * 4
            dtype = np.float32
        else:
            raise EncoderWeightsError(
                f"{bin_path}: layer {conv.name} has storage tag {tag:#010x}; only float16 "
                f"({_TAG_FLOAT16:#010x}) and float32 (0) are read (a quantised or other model?)"
            )
        if offset + size > len(data):
            raise EncoderWeightsError(f"{bin_path} ends early, in the weights of {conv.name} (truncated file?)")
        weights = np.frombuffer(data, dtype, conv.weight_count, offset).astype(np.float32)
        offset += (size + 3) // 4 * 4
        bias = None
        if conv.has_bias:
            if offset + 4 * conv.out_channels > len(data):
                raise EncoderWeightsError(f"{bin_path} ends early, in the bias of {conv.name} (truncated file?)")
            bias = np.frombuffer(data, np.float32, conv.out_channels, offset).copy()
            offset += 4 * conv.out_channels
        tensors.append((conv, weights, bias))
    if offset != len(data):
        raise EncoderWeightsError(
            f"{bin_path} has {len(data) - offset} bytes after its last layer: it does not belong "
            f"to {param_path}"
        )
    return tensors


def squeezenet_state_dict(param_path: Path, bin_path: Path) -> dict[str, torch.Tensor]:
    """torchvision ``squeezenet1_1``'s state dict filled from the ncnn pair.

    torchvision's convolutions, in state-dict order (for each Fire: squeeze, expand1x1,
    expand3x3; then the classifier), are the ncnn file's convolutions in file order; every
    shape is checked, so a file of another network is refused rather than half-loaded.
    """
    reference = torchvision.models.squeezenet1_1(weights=None).state_dict()
    weight_keys = [key for key in reference if key.endswith(".weight")]
    tensors = read_tensors(param_path, bin_path)
    if len(tensors) != len(weight_keys):
        raise EncoderWeightsError(
            f"{param_path} has {len(tensors)} convolutions; SqueezeNet 1.1 has {len(weight_keys)}"
        )
    state = {}
    for key, (conv, weights, bias) in zip(weight_keys, tensors):
        expected = reference[key].shape
        bias_key = key[: -len("weight")] + "bias"
        if weights.size != expected.numel() or conv.out_channels != expected[0] or bias is None:
            raise EncoderWeightsError(
                f"ncnn layer {conv.name} ({conv.out_channels} outputs, {weights.size} weights, "
                f"bias {'yes' if bias is not None else 'no'}) does not fit {key} {tuple(expected)}"
            )
        state[key] = torch.from_numpy(weights.reshape(tuple(expected)).copy())
        state[bias_key] = torch.from_numpy(bias)
    return state


def install_squeezenet_weights(source_dir: Path, target: Path | None = None) -> Path:
    """Convert ``source_dir``'s ncnn pair and write it where torchvision's cache is read.

    The default target is ``cached_weights_path('squeezenet1_1')``, so every SqueezeNet preset
    picks the weights up without a flag. Written atomically: a half-written cache file would
    be taken for the real one by the next run.
    """
    source_dir = Path(source_dir)
    param_path, bin_path = source_dir / PARAM_NAME, source_dir / BIN_NAME
    for path in (param_path, bin_path):
        if not path.is_file():
            raise EncoderWeightsError(f"{path} not found: {source_dir} should hold {PARAM_NAME} and {BIN_NAME}")
    state = squeezenet_state_dict(param_path, bin_path)
    target = Path(target) if target is not None else cached_weights_path("squeezenet1_1")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, lambda temporary: torch.save(state, temporary))
    return target
