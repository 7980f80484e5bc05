"""Colorize a set of images at render size and score them: used each epoch and by ``eval``.

The study scores at the render size (128 px): the ground truth is the image cropped and
resized exactly as for training, the input is its L*, and the prediction is that L* joined with
the generator's ab. Metrics are those of DESIGN §6, from ``facecolor.metrics``, on 8-bit sRGB.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecolor.color import join_lab_torch, split_lab_torch

#: The per-epoch validation metrics (the rest of evaluate_pair's keys are for ``eval``).
EPOCH_METRICS = ("psnr", "hist", "ciede2000")


def to_uint8_hwc(rgb: torch.Tensor) -> np.ndarray:
    """float [B,3,H,W] sRGB in [0, 1] -> uint8 numpy [B,H,W,3] with rounding."""
    scaled = (rgb.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def predict_at_model_size(generator: nn.Module, l_norm: torch.Tensor) -> torch.Tensor:
    """G's ab for ``l_norm`` [B,1,S,S], computed as the product computes it, at G's own size.

    A model trained at 64 px runs on a 64 px render in ``facecolor-batch`` whatever the photo's
    size, and its ab is upsampled to the photo; scoring it on a 128 px input instead would
    measure a model nobody runs. So the L is area-averaged to G's render size, and the ab is
    upsampled bilinearly (half-pixel centres, like OpenCV's INTER_LINEAR in the runtime) back
    to S, to be joined with the full S x S L*. float [B,2,S,S].
    """
    size = getattr(generator, "config", {}).get("render_size", l_norm.shape[-1])
    full = tuple(l_norm.shape[-2:])
    if full == (size, size):
        return generator(l_norm)
    mode = "area" if size < full[0] else "bilinear"
    small = F.interpolate(l_norm, size=(size, size), mode=mode)
    return F.interpolate(generator(small).float(), size=full, mode="bilinear", align_corners=False)


@torch.no_grad()
def colorize(
    generator: nn.Module | None,
    images: torch.Tensor,
    device: torch.device,
    *,
    batch_size: int = 64,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> np.ndarray:
    """uint8 [N,S,S,3] truths -> uint8 [N,S,S,3] results: their L* with G's ab (at G's size).

    ``generator=None`` gives the gray baseline (ab = 0, output = input). The generator is
    put in eval mode for the call and its previous mode restored afterwards.
    """
    was_training = generator.training if generator is not None else False
    if generator is not None:
        generator.eval()
    out = []
    try:
        for start in range(0, len(images), batch_size):
            pixels = images[start : start + batch_size].to(device, non_blocking=True)
            l_norm, _ = split_lab_torch(pixels.permute(0, 3, 1, 2).float() / 255.0)
            if generator is None:
                ab_norm = torch.zeros_like(l_norm).expand(-1, 2, -1, -1)
            else:
                with autocast():
                    ab_norm = predict_at_model_size(generator, l_norm)
            out.append(to_uint8_hwc(join_lab_torch(l_norm, ab_norm.float())))
    finally:
        if generator is not None:
            generator.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.uint8)


def score(
    predictions: np.ndarray, truths: np.ndarray, workers: int = 1
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Per-image metric rows and their means (DESIGN §6) for uint8 [N,H,W,3] arrays.

    CIEDE2000 dominates (tens of ms per 128 px image in numpy, whose loops release the GIL),
    so ``workers`` threads score images in parallel: on a 16-core GPU host this keeps the
    per-epoch validation of a few hundred images to about a second.
    """
    from facecolor.metrics import evaluate_pair, summarize

    pairs = list(zip(predictions, truths))
    if workers > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(lambda pair: evaluate_pair(*pair), pairs))
    else:
        rows = [evaluate_pair(pred, true) for pred, true in pairs]
    return rows, {key: float(value) for key, value in summarize(rows).items()}


def validate(
    generator: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    batch_size: int = 64,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    workers: int = 1,
) -> dict[str, Any]:
    """The per-epoch validation: mean PSNR, Hist and CIEDE2000 of G on ``images``."""
    predictions = colorize(generator, images, device, batch_size=batch_size, autocast=autocast)
    _, means = score(predictions, images.numpy(), workers)
    return {key: means[key] for key in EPOCH_METRICS}
