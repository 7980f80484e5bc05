"""Per-image metrics of DESIGN §6: PSNR, HSV histogram similarity, colorfulness.

Every function takes uint8 HxWx3 sRGB numpy arrays (a prediction and its ground truth) and
returns a Python float for ONE image; DESIGN §6 averages per-image values, which
``facecolor.metrics.summary`` does. ``evaluate_batch`` scores a whole numpy or torch batch.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facecolor.color import rgb_to_lab
from facecolor.metrics.ciede2000 import ciede2000
from facecolor.metrics.validate import MetricsError, check_image, check_pair

#: PSNR reported for identical images (and the ceiling for all others). An infinite PSNR would
#: make the mean over a set infinite and hide every other image's score; 100 dB is far above
#: anything two different 8-bit images reach in practice (one channel of one pixel off by 1
#: in a 12-megapixel image is about 124 dB, a 128x128 image about 95 dB).
PSNR_CAP_DB = 100.0

#: OpenCV HSV for uint8: H in [0, 180), S and V in [0, 256). (channel, bins, range), DESIGN §6.
HSV_HIST_BINS: tuple[tuple[int, int, tuple[int, int]], ...] = (
    (0, 30, (0, 180)),
    (1, 32, (0, 256)),
    (2, 32, (0, 256)),
)

#: Keys of one row from ``evaluate_pair``, in report order.
METRIC_KEYS = ("psnr", "hist", "ciede2000", "colorfulness_pred", "colorfulness_true")


def psnr(pred: np.ndarray, true: np.ndarray) -> float:
    """PSNR in dB of 8-bit sRGB images (peak 255, MSE over all pixels and channels).

    Identical images give ``PSNR_CAP_DB`` (100 dB) instead of infinity, and no image scores
    above it, so that means over a set stay finite.
    """
    pred, true = check_pair(pred, true)
    mse = float(np.mean((pred.astype(np.float64) - true.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * float(np.log10(255.0**2 / mse)))


def hsv_histogram(image: np.ndarray) -> np.ndarray:
    """The 94-bin HSV descriptor of DESIGN §6 (float64): H, S, V histograms, each L1-normalised.

    HSV comes from ``cv2.cvtColor(rgb_uint8, cv2.COLOR_RGB2HSV)``; bins are uniform over
    the ranges in ``HSV_HIST_BINS`` (so H bin = h // 6, S and V bin = value // 8).
    """
    hsv = cv2.cvtColor(np.ascontiguousarray(check_image(image)), cv2.COLOR_RGB2HSV)
    parts = []
    for channel, bins, value_range in HSV_HIST_BINS:
        hist = cv2.calcHist([hsv], [channel], None, [bins], list(value_range)).ravel()
        hist = hist.astype(np.float64)
        parts.append(hist / hist.sum())
    return np.concatenate(parts)


def hist_similarity(pred: np.ndarray, true: np.ndarray) -> float:
    """Cosine similarity of the HSV descriptors of two images, in [0, 1]; 1 = same histograms.

    It compares color distributions, not positions: a prediction with the right colors in
    the wrong places still scores high, which is why PSNR and CIEDE2000 are reported beside it.
    """
    pred, true = check_pair(pred, true)
    a, b = hsv_histogram(pred), hsv_histogram(true)
    # Each of the three parts sums to 1, so neither norm can be 0.
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def colorfulness(image: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) colorfulness M = sigma_rgyb + 0.3 * mu_rgyb, on 0-255 values.

    rg = R - G and yb = (R + G)/2 - B; sigma_rgyb and mu_rgyb are the root sums of squares
    of their standard deviations and of their means. 0 for any gray image; about 33 is
    "moderately", 59 "quite" and 82 "highly colorful" on the authors' scale. Reported for
    output and truth because a colorizer that plays safe (sepia, desaturated) scores well on
    PSNR but visibly low here.
    """
    rgb = check_image(image).astype(np.float64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    sigma = np.hypot(rg.std(), yb.std())
    mu = np.hypot(rg.mean(), yb.mean())
    return float(sigma + 0.3 * mu)


#: Vivid pixels: CIELAB chroma C*ab above this, measured with the image's long side at
#: ``VIVID_LONG_SIDE`` px. True-color FFHQ faces have about 6.6 % of them; a colorizer that
#: invents rainbow patches on hair, clothes and backgrounds has two or three times as many.
VIVID_CHROMA = 40.0
VIVID_LONG_SIDE = 256


def vivid_share(image: np.ndarray, chroma: float = VIVID_CHROMA, long_side: int = VIVID_LONG_SIDE) -> float:
    """Share of pixels (0-1) whose CIELAB chroma sqrt(a*^2 + b*^2) exceeds ``chroma``.

    Why: real black-and-white photos have no ground truth, so PSNR cannot say whether a model
    invents color there; a model that paints saturated patches where a photo would be muted
    shows up as a high share. The image is first resized (area averaging) so its long side is
    ``long_side`` px: the figure then does not depend on the scan's resolution or on its grain.
    """
    rgb = check_image(image)
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2]) > chroma))


def evaluate_pair(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """All per-image metrics for one prediction and its ground truth (uint8 HxWx3 each).

    Returns a row keyed by ``METRIC_KEYS``: psnr (dB, higher better), hist (higher better),
    ciede2000 (lower better), colorfulness_pred and colorfulness_true.
    """
    pred, true = check_pair(pred, true)
    return {
        "psnr": psnr(pred, true),
        "hist": hist_similarity(pred, true),
        "ciede2000": ciede2000(pred, true),
        "colorfulness_pred": colorfulness(pred),
        "colorfulness_true": colorfulness(true),
    }


def batch_to_uint8_images(batch: Any) -> np.ndarray:
    """A batch of RGB images -> uint8 NxHxWx3 numpy.

    Accepts numpy uint8 NxHxWx3, or a torch tensor Nx3xHxW on any device: uint8 as is,
    float in [0, 1] (the output of ``facecolor.color.join_lab_torch``) clamped and rounded.
    """
    import torch

    if isinstance(batch, torch.Tensor):
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise MetricsError(f"expected a Nx3xHxW tensor, got shape {tuple(batch.shape)}")
        if batch.is_floating_point():
            batch = (batch.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        elif batch.dtype != torch.uint8:
            raise MetricsError(f"tensor dtype {batch.dtype}; use uint8 or float in [0, 1]")
        return batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    array = np.asarray(batch)
    if array.ndim != 4:
        raise MetricsError(f"expected a NxHxWx3 uint8 array, got shape {array.shape}")
    return array


def evaluate_batch(pred: Any, true: Any) -> list[dict[str, float]]:
    """``evaluate_pair`` for every image of two equally sized batches -> one row per image.

    Each batch is numpy uint8 NxHxWx3 or torch Nx3xHxW (uint8, or float in [0, 1]); see
    ``batch_to_uint8_images``. Feed the rows to ``summarize``.
    """
    preds, trues = batch_to_uint8_images(pred), batch_to_uint8_images(true)
    if len(preds) != len(trues):
        raise MetricsError(f"{len(preds)} predictions for {len(trues)} ground-truth images")
    return [evaluate_pair(p, t) for p, t in zip(preds, trues)]
