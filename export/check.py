"""Check an exported ONNX file against PyTorch before it is kept.

ONNX Runtime (CPU) runs the exported file and PyTorch runs the generator on the same inputs:
random L at batch 1 and batch 7 (one file, two batch sizes, so the dynamic batch dimension is
exercised), a smooth synthetic portrait (random noise is nothing like a photograph, and smooth
input is where a colorizer's output is judged), and any real images given. For every input set
the check reports max and mean |Δab| in CIELAB units and the PSNR between the two ab outputs.

PSNR here is on the network's ab/110 output, whose range is [-1, 1]: peak-to-peak 2, so
``PSNR = 10 log10(4 / MSE)``; identical outputs have infinite PSNR (``None`` in JSON).

Tolerances (in CIELAB a*b* units, where a just-noticeable difference is about 1-2 units):

- fp32: max |Δab| <= 1e-4 on the ab/110 scale, i.e. 0.011 CIELAB units: the same arithmetic
  in another order, so anything larger is an export bug, not rounding.
- fp16: max |Δab| <= 1.5 and mean <= 0.15 on the image-like inputs (the synthetic portraits
  and any real images); max <= 6 and mean <= 0.5 on the random-noise inputs.
  Measured on gpsagd at width 1.0 and 128 px (random init, and with attention switched on and
  BatchNorm statistics moved, as training does): this file under ONNX Runtime CPU gives max
  0.40 / mean 0.026, and real fp16 arithmetic on a GPU (PyTorch CUDA, H100, fp32 attention, the
  same inputs) max 0.56 / mean 0.042; ONNX Runtime's CPU kernels compute some fp16 nodes in
  fp32, so it reads a little low. Below 1.5 units on the worst pixel nobody sees a difference
  (a just-noticeable difference is about 2).
  Why noise has its own, looser max: the trained shipped gpsagd (width 0.5) gives max 0.043 on
  the synthetic portraits and 0.50 on 12 real photos (6 ffhq_dev faces, 6 bw_real scans), but
  3.35 on uniform noise, mean 0.11. Noise drives its activations to 300-800, where fp16's
  rounding is ~0.2 per value; the output is a small difference of such sums. Keeping the last
  conv or the whole output head in fp32 changed nothing (measured), so the error is spread
  through the network and only noise brings it out. What the check is for is still caught: a
  lost attention block gives max 48 / mean 6.5 on the portraits and mean 0.9 on noise, and an
  fp16 overflow gives inf or tens of units.
  Why noise has its own mean too: the ImageNet-encoder psag trained at 64 px (2026-12-01), with
  its encoder scaled into fp16's range by the exporter (``fit_encoder_range``), gives max 0.019
  / mean 0.003 on the portraits but mean 0.24-0.28 on noise (max 4.2), again from the decoder's
  sums under noise; 0.5 still catches a lost attention block (0.9 on noise, 6.5 on portraits).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from facecolor.color import AB_SCALE, lightness, normalize_l
from facecolor.export.errors import ExportCheckError

#: Seed of the random check inputs: a check is reproducible, file after file.
CHECK_SEED = 20240611
#: Batch sizes the random inputs are run at, from the same file.
CHECK_BATCHES = (1, 7)
#: Name prefix of the random-noise input sets (held to ``Tolerance.noise_max_ab``).
NOISE_PREFIX = "random-"


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted disagreement, in CIELAB a*b* units.

    ``max_ab`` bounds the worst pixel of image-like inputs, ``noise_max_ab`` that of the
    random-noise inputs, ``mean_ab`` the mean of image-like inputs and ``noise_mean_ab`` (when
    set, else ``mean_ab``) the mean of the noise inputs.
    """

    max_ab: float
    mean_ab: float
    noise_max_ab: float
    noise_mean_ab: float | None = None


TOLERANCES = {
    "fp32": Tolerance(max_ab=1e-4 * AB_SCALE, mean_ab=1e-4 * AB_SCALE, noise_max_ab=1e-4 * AB_SCALE),
    "fp16": Tolerance(max_ab=1.5, mean_ab=0.15, noise_max_ab=6.0, noise_mean_ab=0.5),
}


@dataclass(frozen=True)
class Comparison:
    """ONNX Runtime vs PyTorch on one input set."""

    name: str
    batch: int
    max_ab: float
    mean_ab: float
    psnr_db: float

    @property
    def is_noise(self) -> bool:
        return self.name.startswith(NOISE_PREFIX)

    def to_json(self) -> dict:
        record = asdict(self)
        record["max_ab"] = round(self.max_ab, 6)
        record["mean_ab"] = round(self.mean_ab, 6)
        record["psnr_db"] = round(self.psnr_db, 2) if math.isfinite(self.psnr_db) else None
        return record


@dataclass(frozen=True)
class CheckReport:
    """Every comparison of one file, the tolerance it was held to and whether it passed."""

    precision: str
    tolerance: Tolerance
    comparisons: tuple[Comparison, ...]

    @property
    def max_ab(self) -> float:
        return max(c.max_ab for c in self.comparisons)

    @property
    def mean_ab(self) -> float:
        return max(c.mean_ab for c in self.comparisons)

    @property
    def min_psnr_db(self) -> float:
        return min(c.psnr_db for c in self.comparisons)

    @property
    def image_max_ab(self) -> float:
        return max((c.max_ab for c in self.comparisons if not c.is_noise), default=0.0)

    @property
    def noise_max_ab(self) -> float:
        return max((c.max_ab for c in self.comparisons if c.is_noise), default=0.0)

    def limit(self, comparison: Comparison) -> float:
        """The max |Δab| that ``comparison``'s input set is held to."""
        return self.tolerance.noise_max_ab if comparison.is_noise else self.tolerance.max_ab

    def mean_limit(self, comparison: Comparison) -> float:
        """The mean |Δab| that ``comparison``'s input set is held to."""
        noise_mean = self.tolerance.noise_mean_ab
        return noise_mean if comparison.is_noise and noise_mean is not None else self.tolerance.mean_ab

    def misses(self) -> list[Comparison]:
        return [c for c in self.comparisons
                if not (c.max_ab <= self.limit(c) and c.mean_ab <= self.mean_limit(c))]

    @property
    def passed(self) -> bool:
        return not self.misses()

    def summary(self) -> str:
        """One line: 'max |Δab| 0.04 (noise 3.4), mean 0.11 CIELAB units, PSNR >= 60.2 dB'."""
        psnr = self.min_psnr_db
        psnr_text = f"{psnr:.1f} dB" if math.isfinite(psnr) else "inf (identical)"
        return (
            f"max |Δab| {self.image_max_ab:.4g} (noise {self.noise_max_ab:.4g}), "
            f"mean {self.mean_ab:.3g} CIELAB units, PSNR >= {psnr_text}"
        )

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "precision": self.precision,
            "tolerance_cielab": asdict(self.tolerance),
            "max_abs_diff_ab_cielab": round(self.max_ab, 6),
            "image_max_abs_diff_ab_cielab": round(self.image_max_ab, 6),
            "noise_max_abs_diff_ab_cielab": round(self.noise_max_ab, 6),
            "mean_abs_diff_ab_cielab": round(self.mean_ab, 6),
            "min_psnr_db": round(self.min_psnr_db, 2) if math.isfinite(self.min_psnr_db) else None,
            "runtime": "onnxruntime CPUExecutionProvider",
            "comparisons": [c.to_json() for c in self.comparisons],
        }


# --------------------------------------------------------------------------- inputs


def random_inputs(size: int, batches: Iterable[int] = CHECK_BATCHES) -> list[tuple[str, torch.Tensor]]:
    """Uniform L/50-1 in [-1, 1], float32 [B,1,size,size] CPU, one tensor per batch size."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    return [
        (f"random-b{b}", torch.rand(b, 1, size, size, generator=generator) * 2 - 1) for b in batches
    ]


def synthetic_portraits(size: int, count: int = 2) -> torch.Tensor:
    """Smooth portrait-like L/50-1, float32 [count,1,size,size] CPU.

    A lit oval face with a shaded cheek, darker hair above it, eyes and a mouth, over a
    background gradient; each image shifts the light, so the batch is not one image repeated.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    images = []
    for i in range(count):
        light = 0.15 * i
        background = 35 + 30 * y + 10 * x * (1 - light)
        face = ((x - 0.5) / 0.28) ** 2 + ((y - 0.55) / 0.36) ** 2
        shading = 78 - 22 * np.clip(np.sqrt(face), 0, 1) ** 2 - 12 * (x - 0.35 - light)
        hair = ((x - 0.5) / 0.34) ** 2 + ((y - 0.3) / 0.26) ** 2
        value = np.where(face < 1, shading, background)
        value = np.where((hair < 1) & (y < 0.34), 22 + 8 * x, value)
        for cx in (0.4, 0.6):  # eyes
            value = value - 30 * np.exp(-(((x - cx) / 0.035) ** 2 + ((y - 0.5) / 0.02) ** 2))
        value = value - 18 * np.exp(-(((x - 0.5) / 0.08) ** 2 + ((y - 0.75) / 0.015) ** 2))
        images.append(np.clip(value, 0, 100))
    lab_l = torch.from_numpy(np.stack(images)[:, None].astype(np.float32))
    return normalize_l(lab_l)


def image_inputs(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """Real images -> L/50-1 float32 [N,1,size,size] CPU: long side resized, reflect-padded square.

    Mirrors the runtime's geometry (DESIGN §2) closely enough for a numeric check; the check
    compares two backends on the same tensor, so exact agreement with the runtime is not needed.
    """
    import cv2

    tensors = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ExportCheckError(f"cannot read check image {path}; give a PNG, JPEG or TIFF file")
        if image.ndim == 3 and image.shape[2] >= 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        lab_l = lightness(image)
        height, width = lab_l.shape
        scale = size / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        lab_l = cv2.resize(lab_l, (new_w, new_h), interpolation=cv2.INTER_AREA)
        pad_h, pad_w = size - new_h, size - new_w
        mode = cv2.BORDER_REFLECT_101 if pad_h < new_h and pad_w < new_w else cv2.BORDER_REPLICATE
        lab_l = cv2.copyMakeBorder(lab_l, 0, pad_h, 0, pad_w, mode)
        tensors.append(torch.from_numpy(np.ascontiguousarray(lab_l, dtype=np.float32)))
    return normalize_l(torch.stack(tensors)[:, None])


def check_inputs(size: int, images: Sequence[str | Path] = ()) -> list[tuple[str, torch.Tensor]]:
    """Every input set a check runs: random b1 and b7, synthetic portraits, real images if any."""
    inputs = random_inputs(size)
    inputs.append(("synthetic-portrait", synthetic_portraits(size)))
    if images:
        inputs.append(("images", image_inputs(images, size)))
    return inputs


# --------------------------------------------------------------------------- comparison


def compare(name: str, reference: np.ndarray, candidate: np.ndarray) -> Comparison:
    """Compare two ab/110 arrays of the same shape; differences reported in CIELAB units."""
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    if reference.shape != candidate.shape:
        raise ExportCheckError(
            f"{name}: ONNX output shape {candidate.shape} differs from PyTorch's {reference.shape}"
        )
    diff = np.abs(reference - candidate)
    if not np.all(np.isfinite(candidate)):
        return Comparison(name, reference.shape[0], math.inf, math.inf, -math.inf)
    mse = float(np.mean(diff**2))
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
    return Comparison(
        name=name,
        batch=int(reference.shape[0]),
        max_ab=float(diff.max()) * AB_SCALE,
        mean_ab=float(diff.mean()) * AB_SCALE,
        psnr_db=psnr,
    )


def onnx_session(path: str | Path):
    """An ONNX Runtime CPU session on ``path`` (the check runs where every machine can)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT warns about unused initializers otherwise
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx(
    path: str | Path,
    generator: nn.Module,
    *,
    precision: str,
    size: int,
    images: Sequence[str | Path] = (),
    input_name: str = "L",
    tolerance: Tolerance | None = None,
) -> CheckReport:
    """Run ``path`` in ONNX Runtime and ``generator`` (fp32, eval, CPU) on the same inputs.

    Returns the report when every input set is within ``tolerance`` (default: the precision's
    entry in ``TOLERANCES``); raises ExportCheckError saying by how much it missed otherwise.
    """
    tolerance = tolerance or TOLERANCES[precision]
    session = onnx_session(path)
    comparisons = []
    for name, l_norm in check_inputs(size, images):
        with torch.no_grad():
            reference = generator(l_norm).float().numpy()
        (candidate,) = session.run(None, {input_name: l_norm.numpy()})
        comparisons.append(compare(name, reference, candidate))
    report = CheckReport(precision, tolerance, tuple(comparisons))
    if not report.passed:
        raise ExportCheckError(_miss_message(report), report)
    return report


def _miss_message(report: CheckReport) -> str:
    lines = [
        f"the {report.precision} ONNX export disagrees with PyTorch beyond the tolerance, "
        f"so it was not written:",
    ]
    for c in report.misses():
        kind = "noise" if c.is_noise else "image-like"
        lines.append(
            f"  {c.name}: max |Δab| {c.max_ab:.4g} CIELAB units (tolerance for {kind} inputs "
            f"{report.limit(c):.4g}, missed by {max(0.0, c.max_ab - report.limit(c)):.4g}), "
            f"mean {c.mean_ab:.4g} (tolerance {report.mean_limit(c):.4g}, "
            f"missed by {max(0.0, c.mean_ab - report.mean_limit(c)):.4g})"
        )
    lines.append("  every input:")
    for c in report.comparisons:
        lines.append(f"  {c.name} (batch {c.batch}): max {c.max_ab:.4g}, mean {c.mean_ab:.4g}")
    if report.precision == "fp16":
        lines.append(
            "The weights or activations may not fit fp16; use the fp32 ONNX, or export with "
            "--no-check to keep the file for inspection."
        )
    else:
        lines.append(
            "This is an exporter problem, not rounding; please report it with the checkpoint's "
            "preset and torch version (--no-check keeps the file for inspection)."
        )
    return "\n".join(lines)
