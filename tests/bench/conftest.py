"""Shared fixtures: a tiny checkpoint, its ONNX export, a perturbed copy, and color photos.

The ONNX files come from torch's TorchScript exporter (about 2 s) instead of
``facecolor.export.onnx.export_onnx`` (the dynamo exporter, 25-35 s on two shared cores), so
the bench's tests stay within a minute; the sidecar written beside them holds the two fields
the bench reads from export's sidecar (``precision``, ``source_checkpoint``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecolor.bench.parity import synthetic_portraits
from facecolor.checkpoint import load_generator, save_checkpoint
from facecolor.models import build_generator
from facecolor.files import sha256_file

RENDER_SIZE = 64


def export_tiny_onnx(checkpoint: Path, out: Path) -> Path:
    """fp32 ONNX (input L, output ab, dynamic batch) plus a sidecar naming its checkpoint."""
    generator, _ = load_generator(checkpoint, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator, (torch.zeros(2, 1, RENDER_SIZE, RENDER_SIZE),), str(out),
            input_names=["L"], output_names=["ab"], opset_version=17, dynamo=False,
            dynamic_axes={"L": {0: "batch"}, "ab": {0: "batch"}},
        )
    sidecar = {"precision": "fp32", "source_checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint)}}
    Path(str(out) + ".json").write_text(json.dumps(sidecar))
    return out


def perturb_onnx(source: Path, out: Path, scale: float = 0.2, seed: int = 0) -> Path:
    """A copy of ``source`` whose float weights got Gaussian noise of ``scale`` times their own
    spread: an engine whose weights changed after export."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.size > 16:
            noisy = weights + rng.normal(0, scale * (weights.std() + 1e-3), weights.shape).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(noisy, tensor.name))
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """{'checkpoint', 'onnx', 'perturbed', 'data'}: psag at width 0.125 and 64 px."""
    root = tmp_path_factory.mktemp("bench-tiny")
    torch.manual_seed(0)
    generator = build_generator("psag", width=0.125, render_size=RENDER_SIZE)
    checkpoint = save_checkpoint(root / "tiny.safetensors", generator, generator.config)
    onnx_path = export_tiny_onnx(checkpoint, root / "tiny.onnx")
    perturbed = perturb_onnx(onnx_path, root / "perturbed.onnx")
    data = root / "photos"
    data.mkdir()
    for index, rgb in enumerate(synthetic_portraits(5, seed=1, size=(90, 72))):
        suffix = ".png" if index % 2 else ".jpg"
        cv2.imwrite(str(data / f"face{index}{suffix}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return {"checkpoint": checkpoint, "onnx": onnx_path, "perturbed": perturbed, "data": data}

