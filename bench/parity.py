"""Parity: does a backend give the colors of the PyTorch reference, on the same inputs?

With ``--data`` (color photos): each image is placed in the render square as the runtime
places it (``facecolor.runtime.geometry``); its color version at that size is the ground
truth, its L* what both models colorize. Both outputs are scored against the truth with
DESIGN §6's metrics (FID's absence is reported, never a silent skip), and the engine's scores
minus the reference's are the deltas the gates check. Without ``--data`` there is no truth:
``examples/`` (or synthetic portraits) are colorized by both and only their agreement counts.

Agreement, on every unpadded pixel: |Δab| between the two predicted (a*, b*) in CIELAB units
before gamut clipping, and the PSNR between the two 8-bit RGB outputs (capped at 100 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facecolor.bench import BenchError
from facecolor.color import AB_SCALE, join_lab, lightness, normalize_l, to_dtype
from facecolor.metrics import PSNR_CAP_DB, FidScorer, evaluate_pair, psnr, summarize
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.geometry import fit_geometry

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
PARITY_BATCH = 32


@dataclass
class ParityImages:
    """``l_norm``: float32 [N, 1, S, S] in [-1, 1] (L/50-1), edge-padded squares, host memory.
    Per image, of the unpadded box ``crops`` (y0, y1, x0, x1): ``lightness`` float32 L* [h, w]
    and ``truth`` uint8 sRGB [h, w, 3] (None without ground truth).
    """

    source: str
    names: list[str]
    render_size: int
    l_norm: np.ndarray
    lightness: list[np.ndarray]
    crops: list[tuple[int, int, int, int]]
    truth: list[np.ndarray] | None
    skipped: list[str] = field(default_factory=list)

    @property
    def has_truth(self) -> bool:
        return self.truth is not None

    def __len__(self) -> int:
        return len(self.names)


# --------------------------------------------------------------------------- inputs


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def render(rgb: np.ndarray, render_size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """uint8 RGB -> (L/50-1 float32 [S, S] edge-padded, uint8 RGB [h, w, 3] at render scale, crop)."""
    geometry = fit_geometry(rgb.shape[0], rgb.shape[1], render_size)
    interpolation = cv2.INTER_AREA if geometry.shrinks else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (geometry.inner_width, geometry.inner_height), interpolation=interpolation)
    padded = cv2.copyMakeBorder(lightness(small), *geometry.padding, cv2.BORDER_REPLICATE)
    return normalize_l(padded).astype(np.float32), small, geometry.crop


def synthetic_portraits(count: int, seed: int = 0, size: tuple[int, int] = (160, 128)) -> list[np.ndarray]:
    """uint8 RGB face-like scenes (a skin-toned ellipse, hair, a shirt, a colored gradient): not
    photos, but colored, smooth and varied, which is all agreement and plumbing need."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for _ in range(count):
        top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
        t = (yy / height)[..., None]
        image = (1 - t) * top + t * bottom
        cy, cx = height * rng.uniform(0.38, 0.48), width * rng.uniform(0.42, 0.58)
        ry, rx = height * rng.uniform(0.22, 0.28), width * rng.uniform(0.2, 0.27)
        face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        hair = (((yy - cy + 0.35 * ry) / (0.8 * ry)) ** 2 + ((xx - cx) / (1.1 * rx)) ** 2 <= 1.0) & ~face
        shirt = yy > cy + 1.6 * ry
        image[hair] = rng.uniform(20, 120, 3)
        image[face] = np.array([224, 172, 140]) * rng.uniform(0.55, 1.05)
        image[shirt] = rng.uniform(30, 230, 3)
        image += rng.normal(0, 4, image.shape)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images


def _assemble(source: str, named: list[tuple[str, np.ndarray]], render_size: int, truth: bool,
              skipped: list[str]) -> ParityImages:
    rendered = [render(rgb, render_size) for _, rgb in named]
    return ParityImages(
        source=source,
        names=[name for name, _ in named],
        render_size=render_size,
        l_norm=np.stack([l_norm for l_norm, _, _ in rendered])[:, None],
        lightness=[lightness(small) for _, small, _ in rendered],
        crops=[crop for _, _, crop in rendered],
        truth=[small for _, small, _ in rendered] if truth else None,
        skipped=skipped,
    )


def load_folder(folder: Path, render_size: int, *, limit: int | None, truth: bool) -> ParityImages:
    """Unreadable files are listed in ``skipped`` with their reason; none readable: BenchError."""
    files = list_images(folder)
    named, skipped = [], []
    for path in files:
        if limit is not None and len(named) >= limit:
            break
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8-bit; gray becomes three equal channels
        if image is None:
            skipped.append(f"{path}: OpenCV cannot decode it")
        else:
            named.append((str(path.relative_to(folder)), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    if not named:
        found = f"{len(files)} image file(s), none readable" if files else "no image files"
        raise BenchError(f"{folder} holds {found} ({', '.join(IMAGE_SUFFIXES)}); pass a folder of color photos")
    return _assemble(str(folder), named, render_size, truth, skipped)


def load_parity_images(data: Path | None, render_size: int, *, limit: int | None = None) -> ParityImages:
    """``--data`` as ground truth, else the examples (agreement only), else synthetic portraits."""
    if data is not None:
        return load_folder(Path(data), render_size, limit=limit, truth=True)
    if EXAMPLES_DIR.is_dir() and list_images(EXAMPLES_DIR):
        return load_folder(EXAMPLES_DIR, render_size, limit=limit, truth=False)
    count = min(limit or 8, 8)
    named = [(f"synthetic_{i}", rgb) for i, rgb in enumerate(synthetic_portraits(count))]
    return _assemble("synthetic portraits (examples/ is empty)", named, render_size, False, [])


# --------------------------------------------------------------------------- outputs


@dataclass
class Colorized:
    """``ab`` float32 [N, 2, S, S] (ab/110, host memory); ``rgb`` uint8, the truth's L* joined
    with the predicted a*b* on the unpadded box."""

    ab: np.ndarray
    rgb: list[np.ndarray]


def predict_parity(backend: Backend, images: ParityImages) -> Colorized:
    """Raises whatever the backend raises (BackendError): the caller records it on the row."""
    if backend.render_size != images.render_size:
        raise BenchError(
            f"{backend.name} renders at {backend.render_size} px but the images were prepared at "
            f"{images.render_size} px; export the engine at the reference's render size"
        )
    step = min(PARITY_BATCH, backend.max_batch or PARITY_BATCH)
    parts = []
    for start in range(0, len(images), step):
        batch = images.l_norm[start : start + step]
        if backend.device == "cuda":
            parts.append(backend.predict_ab(torch.from_numpy(batch).to("cuda")).float().cpu().numpy())
        else:
            parts.append(np.asarray(backend.predict_ab(batch), dtype=np.float32))
    ab = np.concatenate(parts)
    rgb = []
    for index, (y0, y1, x0, x1) in enumerate(images.crops):
        ab_crop = np.nan_to_num(ab[index, :, y0:y1, x0:x1]).transpose(1, 2, 0) * AB_SCALE
        rgb.append(to_dtype(join_lab(images.lightness[index], ab_crop), np.uint8))
    return Colorized(ab=ab, rgb=rgb)


# --------------------------------------------------------------------------- scores


def agreement(engine: Colorized, reference: Colorized, images: ParityImages) -> dict[str, Any]:
    distances, nonfinite = [], 0
    for index, (y0, y1, x0, x1) in enumerate(images.crops):
        a = engine.ab[index, :, y0:y1, x0:x1].astype(np.float64)
        b = reference.ab[index, :, y0:y1, x0:x1].astype(np.float64)
        nonfinite += int((~np.isfinite(a)).sum())
        distances.append(np.hypot(a[0] - b[0], a[1] - b[1]).ravel() * AB_SCALE)
    dab = np.concatenate(distances)
    finite = dab[np.isfinite(dab)]
    psnrs = [psnr(p, q) for p, q in zip(engine.rgb, reference.rgb)]
    return {
        "max_dab": float(finite.max()) if finite.size else math.inf,
        "mean_dab": float(finite.mean()) if finite.size else math.inf,
        "p99_dab": float(np.percentile(finite, 99)) if finite.size else math.inf,
        "psnr": float(np.mean(psnrs)),
        "psnr_cap": PSNR_CAP_DB,
        "nonfinite": nonfinite,
        "pixels": int(dab.size),
    }


def truth_scores(outputs: Colorized, images: ParityImages, fid: float | None) -> dict[str, float | None] | None:
    if not images.has_truth:
        return None
    return {**summarize([evaluate_pair(p, t) for p, t in zip(outputs.rgb, images.truth)]), "fid": fid}


def fid_scorer(images: ParityImages, weights: Path | None, workdir: Path, device: str) -> FidScorer:
    unavailable = "FID needs at least 2 images" if len(images) < 2 else ""
    if not images.has_truth:
        unavailable = "no ground truth (no --data)"
    return FidScorer(images.truth, workdir, weights=weights, device=device, unavailable=unavailable)


def _delta(engine: dict[str, float] | None, reference: dict[str, float] | None, key: str) -> float | None:
    if engine is None or reference is None or engine.get(key) is None or reference.get(key) is None:
        return None
    return float(engine[key]) - float(reference[key])


def parity_record(
    engine: Colorized,
    reference: Colorized,
    images: ParityImages,
    reference_scores: dict[str, Any] | None,
    engine_fid: float | None,
) -> dict[str, Any]:
    """Scores vs truth, deltas to the reference (engine minus reference) and agreement."""
    scores = truth_scores(engine, images, engine_fid)
    delta = {key: _delta(scores, reference_scores, key) for key in ("psnr", "hist", "ciede2000", "fid")}
    delta["colorfulness"] = _delta(scores, reference_scores, "colorfulness_pred")
    return {"scores": scores, "delta": delta, "agreement": agreement(engine, reference, images)}
