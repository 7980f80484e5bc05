"""Colorization metrics of DESIGN §6: PSNR, HSV histogram similarity, CIEDE2000,
colorfulness (per image, then the mean) and FID (per set, via clean-fid).

Per-image functions take uint8 HxWx3 sRGB numpy arrays. FID lives in ``facecolor.metrics.fid``
and imports clean-fid (the optional extra ``facecolor[fid]``) only when it runs.

    rows = [evaluate_pair(pred, true) for pred, true in pairs]
    summary = MetricsSummary.from_rows(rows).with_fid(compute_fid(out_dir, truth_dir))
"""

from facecolor.metrics.ciede2000 import ciede2000, delta_e_ciede2000
from facecolor.metrics.fid import (
    CLEANFID_WEIGHTS_NAME,
    FIDDependencyMissing,
    FIDError,
    FIDInputError,
    FIDWeightsMissing,
    FidScorer,
    compute_fid,
    default_weights_path,
    fid_from_features,
    frechet_distance,
    resolve_weights,
)
from facecolor.metrics.image import (
    METRIC_KEYS,
    PSNR_CAP_DB,
    VIVID_CHROMA,
    VIVID_LONG_SIDE,
    colorfulness,
    evaluate_batch,
    evaluate_pair,
    hist_similarity,
    hsv_histogram,
    psnr,
    vivid_share,
)
from facecolor.metrics.summary import MetricsSummary, summarize
from facecolor.metrics.validate import MetricsError

__all__ = [
    "VIVID_CHROMA",
    "VIVID_LONG_SIDE",
    "CLEANFID_WEIGHTS_NAME",
    "FIDDependencyMissing",
    "FIDError",
    "FIDInputError",
    "FIDWeightsMissing",
    "FidScorer",
    "METRIC_KEYS",
    "MetricsError",
    "MetricsSummary",
    "PSNR_CAP_DB",
    "ciede2000",
    "colorfulness",
    "compute_fid",
    "default_weights_path",
    "delta_e_ciede2000",
    "evaluate_batch",
    "evaluate_pair",
    "fid_from_features",
    "frechet_distance",
    "hist_similarity",
    "hsv_histogram",
    "psnr",
    "resolve_weights",
    "summarize",
    "vivid_share",
]
