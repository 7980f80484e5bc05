"""FID between a folder of generated images and a folder of ground truth (DESIGN §6).

Images are read and resized by clean-fid in mode ``clean`` (PIL bicubic on float, to
299x299) and embedded by clean-fid's TorchScript Inception (``inception-2015-12-05.pt``), so
numbers are comparable with published clean-fid scores. Two things differ from calling
``cleanfid.fid.compute_fid`` directly, both on purpose:

- The weights are never downloaded. clean-fid fetches them into ``/tmp`` when missing; here a
  missing file raises ``FIDWeightsMissing``, which says where to put it. A given path
  (``--fid-weights PATH``) is loaded with ``download=False`` whatever its file name.
- The Frechet distance is computed here (``fid_from_features``), because clean-fid's calls
  ``scipy.linalg.sqrtm(..., disp=False)``, which SciPy 1.18 removed, and because an exact
  route exists for the common case of fewer images than feature dimensions.

clean-fid is the optional extra ``facecolor[fid]`` and is imported only when FID is computed.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from glob import glob
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: File name clean-fid looks for (cleanfid.inception_torchscript.InceptionV3W).
CLEANFID_WEIGHTS_NAME = "inception-2015-12-05.pt"


class FIDError(RuntimeError):
    """FID could not be computed (base class of the FID errors)."""


class FIDDependencyMissing(FIDError, ImportError):
    """clean-fid is not installed."""


class FIDWeightsMissing(FIDError, FileNotFoundError):
    """clean-fid's Inception weights are absent and, by design, are not downloaded."""


class FIDInputError(FIDError, ValueError):
    """A folder or feature set that FID cannot be computed from."""


# --------------------------------------------------------------------------- Frechet distance


def _trace_sqrt_product_from_covariances(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) for symmetric PSD S1, S2 (D x D), without a general sqrtm.

    S1 S2 is similar to S1^1/2 S2 S1^1/2, which is symmetric PSD, so the trace is the sum of
    the square roots of its eigenvalues; ``eigh`` keeps everything real, and clipping the
    tiny negative eigenvalues that rounding produces keeps singular covariances finite.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
    root1 = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = root1 @ sigma2 @ root1
    middle = 0.5 * (middle + middle.T)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())


def _trace_sqrt_product_from_features(centered1: np.ndarray, centered2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) with S = X^T X / (n - 1) for centered features X (n x D), exactly.

    The non-zero eigenvalues of S1 S2 are those of C C^T / ((n1-1)(n2-1)) with
    C = X1 X2^T (n1 x n2), i.e. the squared singular values of C, so the trace is the
    nuclear norm of C over sqrt((n1-1)(n2-1)). With fewer images than dimensions (small
    validation sets: hundreds of images, 2048-D Inception features) this is both cheaper
    and better conditioned than working with the rank-deficient D x D covariances.
    """
    cross = centered1 @ centered2.T
    singular_values = np.linalg.svd(cross, compute_uv=False)
    scale = np.sqrt((len(centered1) - 1) * (len(centered2) - 1))
    return float(singular_values.sum() / scale)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)).

    Covariances must be symmetric positive semi-definite (sample covariances are). The
    result is clamped at 0: rounding can leave -1e-12 for identical inputs.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise FIDInputError(
            f"mismatched statistics: means {mu1.shape} and {mu2.shape}, covariances "
            f"{sigma1.shape} and {sigma2.shape}; both sets need the same feature dimension"
        )
    diff = mu1 - mu2
    trace_root = _trace_sqrt_product_from_covariances(sigma1, sigma2)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    return max(0.0, float(value))


def _check_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise FIDInputError(
            f"{name} has shape {features.shape}; FID needs an N x D array with N >= 2 "
            "(a covariance needs at least two images)"
        )
    if not np.isfinite(features).all():
        raise FIDInputError(f"{name} contains NaN or infinite values")
    return features


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two feature sets (N1 x D and N2 x D, N >= 2 each).

    Means and unbiased covariances as clean-fid's ``fid_from_feats``; the trace of the
    covariance square root is computed exactly: from the features when either set has
    fewer rows than dimensions, else from the covariances (see the two helpers above).
    """
    feats_a = _check_features(feats_a, "first feature set")
    feats_b = _check_features(feats_b, "second feature set")
    if feats_a.shape[1] != feats_b.shape[1]:
        raise FIDInputError(
            f"feature dimensions differ ({feats_a.shape[1]} vs {feats_b.shape[1]}); "
            "extract both sets with the same feature extractor"
        )
    mu_a, mu_b = feats_a.mean(axis=0), feats_b.mean(axis=0)
    centered_a, centered_b = feats_a - mu_a, feats_b - mu_b
    dim = feats_a.shape[1]
    if max(len(feats_a), len(feats_b)) > dim:
        sigma_a = centered_a.T @ centered_a / (len(feats_a) - 1)
        sigma_b = centered_b.T @ centered_b / (len(feats_b) - 1)
        return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    diff = mu_a - mu_b
    trace_a = np.sum(centered_a**2) / (len(feats_a) - 1)
    trace_b = np.sum(centered_b**2) / (len(feats_b) - 1)
    trace_root = _trace_sqrt_product_from_features(centered_a, centered_b)
    return max(0.0, float(diff @ diff + trace_a + trace_b - 2.0 * trace_root))


# --------------------------------------------------------------------------- clean-fid plumbing


def _import_cleanfid() -> Any:
    """clean-fid's ``fid`` module, or FIDDependencyMissing naming the extra to install."""
    try:
        from cleanfid import fid as cleanfid_fid
    except ImportError as error:
        raise FIDDependencyMissing(
            f"FID needs clean-fid, which is not installed ({error}); "
            "install it with: pip install 'facecolor[fid]'"
        ) from error
    return cleanfid_fid


def cleanfid_weights_dir() -> Path:
    """The folder clean-fid reads (and would download) its Inception weights from.

    Mirrors ``cleanfid.features.feature_extractor``: ``/tmp``, or the working directory on
    Windows.
    """
    return Path("./" if platform.system() == "Windows" else "/tmp")


def default_weights_path() -> Path:
    """Where clean-fid expects ``inception-2015-12-05.pt`` when no path is given."""
    return cleanfid_weights_dir() / CLEANFID_WEIGHTS_NAME


def resolve_weights(weights: str | os.PathLike[str] | None = None) -> Path:
    """The Inception weights file to use: ``weights`` if given, else clean-fid's own location.

    Raises FIDWeightsMissing, saying where to put the file, when it does not exist; nothing
    is ever downloaded.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FIDWeightsMissing(
                f"FID weights file {path} does not exist; pass the path of clean-fid's "
                f"{CLEANFID_WEIGHTS_NAME} (TorchScript Inception) with --fid-weights PATH"
            )
        return path
    path = default_weights_path()
    if not path.is_file():
        raise FIDWeightsMissing(
            f"FID needs clean-fid's Inception weights ({CLEANFID_WEIGHTS_NAME}), which are "
            f"missing and cannot be downloaded here. Put the file at {path} (where clean-fid "
            "reads it), or pass its path with --fid-weights PATH. It is published at "
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
            f"{CLEANFID_WEIGHTS_NAME}"
        )
    return path


def _inception_from_folder(folder: str) -> Any:
    """clean-fid's InceptionV3W from ``folder``/inception-2015-12-05.pt, never downloading."""
    from cleanfid.inception_torchscript import InceptionV3W

    with warnings.catch_warnings():
        # clean-fid's weights are TorchScript; torch's deprecation notice is not actionable here.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.", category=FutureWarning)
        return InceptionV3W(folder, download=False, resize_inside=False)


def load_inception(weights: str | os.PathLike[str], device: Any = "cpu") -> Any:
    """clean-fid's Inception feature extractor (mode ``clean``) built from a weights file.

    clean-fid's loader takes a folder and a fixed file name, so a file under another name
    is linked (or copied) into a temporary folder for the duration of the load; the model
    is in memory afterwards. Returns a torch module: float Bx3x299x299 in [0, 255] -> Bx2048.
    """
    _import_cleanfid()
    path = Path(weights).resolve()
    try:
        if path.name == CLEANFID_WEIGHTS_NAME:
            model = _inception_from_folder(str(path.parent))
        else:
            with tempfile.TemporaryDirectory(prefix="facecolor-fid-") as folder:
                alias = Path(folder) / CLEANFID_WEIGHTS_NAME
                try:
                    alias.symlink_to(path)
                except OSError:  # no symlinks (Windows without privilege): copy instead
                    shutil.copyfile(path, alias)
                model = _inception_from_folder(folder)
    except (RuntimeError, ValueError, OSError) as error:
        raise FIDError(
            f"could not load {path} as clean-fid's TorchScript Inception ({error}); "
            f"--fid-weights must point at {CLEANFID_WEIGHTS_NAME}"
        ) from error
    return model.to(device).eval()


def list_images(folder: str | os.PathLike[str]) -> list[str]:
    """Image files under ``folder`` (recursive, clean-fid's extensions), sorted; at least 2."""
    _import_cleanfid()
    from cleanfid.utils import EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise FIDInputError(f"FID folder {root} does not exist or is not a folder")
    patterns = [os.path.join(root, f"**/*.{ext}") for ext in EXTENSIONS]
    found = {file for pattern in patterns for file in glob(pattern, recursive=True)}
    if len(found) < 2:
        raise FIDInputError(
            f"FID folder {root} holds {len(found)} image(s); FID needs at least 2 per folder "
            "(and hundreds for a stable value)"
        )
    return sorted(found)


def files_features(
    files: list[str],
    extractor: Callable[[Any], Any],
    *,
    device: Any = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
) -> np.ndarray:
    """Features (N x D) of image files, read and resized as clean-fid's mode ``clean`` does
    (RGB, PIL bicubic to 299x299 in float, values in [0, 255]), then passed to ``extractor``.
    """
    import torch

    return _import_cleanfid().get_files_features(
        files,
        model=extractor,
        num_workers=num_workers,
        batch_size=batch_size,
        device=torch.device(device),
        mode="clean",
        verbose=False,
    )


def compute_fid(
    generated_dir: str | os.PathLike[str],
    truth_dir: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    device: Any = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
    feature_extractor: Callable[[Any], Any] | None = None,
) -> float:
    """clean-fid FID (mode ``clean``) between a folder of generated images and the ground truth.

    Args:
        generated_dir, truth_dir: folders of images (searched recursively, >= 2 images each).
        weights: clean-fid's ``inception-2015-12-05.pt`` (``--fid-weights``); None looks where
            clean-fid does (``default_weights_path()``) and raises FIDWeightsMissing if absent.
        device: torch device for the Inception network.
        batch_size, num_workers: clean-fid's data loader settings (workers 0 = main process).
        feature_extractor: replaces the Inception network (clean-fid's custom_feat_extractor):
            a callable taking a float32 Bx3x299x299 tensor in [0, 255] on ``device`` and
            returning a BxD torch tensor. Excludes ``weights``.
    """
    if feature_extractor is not None and weights is not None:
        raise ValueError("pass either weights or feature_extractor, not both")
    # List both folders first: a typo in a path should not wait for a model to load.
    generated_files, truth_files = list_images(generated_dir), list_images(truth_dir)
    if feature_extractor is None:
        extractor = load_inception(resolve_weights(weights), device)
    else:
        extractor = feature_extractor
    options = dict(device=device, batch_size=batch_size, num_workers=num_workers)
    generated = files_features(generated_files, extractor, **options)
    truth = files_features(truth_files, extractor, **options)
    return fid_from_features(generated, truth)


class FidScorer:
    """FID of several image sets against one truth set, each written as PNGs under ``workdir``
    (the eval table's rows, the bench's backends).

    FID is optional (clean-fid or its weights may be absent), so when it cannot run ``score``
    returns None and ``note`` keeps the first reason, and every other metric still comes out;
    ``strict`` raises the FIDError instead (``eval --require-fid``). ``unavailable`` is a
    reason the caller already knows (no ground truth).
    """

    def __init__(self, truth: Sequence[np.ndarray] | None, workdir: str | os.PathLike[str], *,
                 weights: str | os.PathLike[str] | None = None, device: Any = "cpu", strict: bool = False,
                 unavailable: str = "") -> None:
        self.note, self._strict = unavailable, strict
        self._workdir, self._weights, self._device = Path(workdir), weights, str(device)
        self._truth: Path | None = None
        if unavailable:
            return
        try:  # a missing clean-fid shows up on the first score() as FIDDependencyMissing
            resolve_weights(weights)
        except FIDError as error:
            self._give_up(error)
            return
        self._truth = self._write("truth", truth)

    def _give_up(self, error: FIDError) -> None:
        if self._strict:
            raise error
        self.note, self._truth = str(error), None

    def _write(self, name: str, images: Sequence[np.ndarray]) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._workdir))
        for index, rgb in enumerate(images):
            cv2.imwrite(str(folder / f"{index:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return folder

    def score(self, name: str, images: Sequence[np.ndarray]) -> float | None:
        """FID of uint8 RGB ``images`` ([H, W, 3] each) against the truth, or None (see ``note``)."""
        if self._truth is None:
            return None
        try:
            return float(compute_fid(self._write(name, images), self._truth, weights=self._weights,
                                     device=self._device))
        except FIDError as error:
            self._give_up(error)
            return None
