"""Input checks shared by the per-image metrics.

The metrics are defined on 8-bit sRGB (DESIGN §6), so they accept exactly that and say how to
convert anything else, rather than guessing a scale: a float image in [0, 255] and one in
[0, 1] would otherwise give silently different PSNRs.
"""

from __future__ import annotations

import numpy as np


class MetricsError(ValueError):
    """An input that the metrics cannot score (wrong type, shape, or an empty set of rows)."""


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a uint8 HxWx3 numpy array, or raise MetricsError saying how to fix it."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise MetricsError(
            f"{name} has dtype {image.dtype}; metrics are defined on 8-bit sRGB, so convert it "
            "first, e.g. facecolor.color.to_dtype(rgb_in_0_1, np.uint8)"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise MetricsError(
            f"{name} has shape {image.shape}; expected a non-empty HxWx3 RGB image "
            "(expand gray images to (g, g, g) and drop alpha first)"
        )
    return image


def check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a prediction and its ground truth: both uint8 HxWx3 and the same size."""
    pred = check_image(pred, "prediction")
    true = check_image(true, "ground truth")
    if pred.shape != true.shape:
        raise MetricsError(
            f"prediction {pred.shape} and ground truth {true.shape} differ in size; "
            "resize the prediction to the ground truth before scoring"
        )
    return pred, true
