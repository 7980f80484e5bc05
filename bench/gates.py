"""Pass/fail gates on parity: does the engine give the colors of the PyTorch model it came from?

Three gates, each adjustable from the command line:

- ``|ΔPSNR| <= 0.1 dB`` (``--max-delta-psnr``): the engine's mean PSNR against the truth minus
  the reference's. 0.1 dB is far below the spread between presets of the study (whole dB) and
  well above what rounding moves (fp16 engines land within a few hundredths).
- ``|ΔHist| <= 0.005`` (``--max-delta-hist``): the same for the HSV histogram similarity,
  whose differences between presets are in the second decimal.
- ``max |Δab| <= limit`` (``--max-dab``): the largest distance, over every pixel of every
  image, between the engine's and the reference's a*b* (CIELAB units, before gamut clipping;
  both outputs share the input's L*, so this is their full CIE76 color difference). The
  default depends on the engine's arithmetic (``DEFAULT_MAX_DAB``):

  * **fp16: 3.0.** fp16 keeps 11 significant bits (unit roundoff 2^-11 = 4.9e-4). NVIDIA's
    TensorRT samples accept an fp16 engine whose outputs are within rtol = atol = 5e-3 of
    fp32; the network's output is ab/110, so that is 0.55 units per channel, 0.78 in the a*b*
    plane, for a typical element. The gate takes the maximum over millions of pixels, and
    error tails of deep fp16 networks run 3-4x their typical size, hence 3.0. That is still
    only about 1.3 just-noticeable differences (CIE76 JND ~ 2.3; Sharma 2003) on the single
    worst pixel, while the failures that matter (fp16 overflow to inf/NaN, saturated tanh,
    black images, NVIDIA/TensorRT#1787 and #3921) move colors by tens of units.
  * **fp32: 1.0.** Same arithmetic as the reference, so only the order of summation and
    kernel choice differ: on the CPU the two agree to about 1e-3 units. On GPUs, cuDNN,
    TensorRT and ONNX Runtime's CUDA provider run fp32 convolutions in TF32 by default (10-bit
    mantissa, fp32 accumulation and range), which the limit leaves room for at a third of the
    fp16 one. Everything a broken export does (a changed weight, a BatchNorm left in training
    mode, a mistranslated Resize or PixelShuffle) moves colors by several units and fails.

Non-finite outputs (NaN, inf) make max |Δab| infinite, so they always fail. Without ``--data``
there is no ground truth: the two delta gates are 'n/a' and only agreement is gated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_MAX_DAB = {"fp32": 1.0, "fp16": 3.0}


@dataclass(frozen=True)
class GateSettings:
    """``max_dab=None`` takes ``DEFAULT_MAX_DAB`` by precision."""

    max_delta_psnr: float = 0.1
    max_delta_hist: float = 0.005
    max_dab: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_delta_psnr", "max_delta_hist", "max_dab"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class GateResult:
    """``passed`` is None when the gate does not apply."""

    name: str  # '|ΔPSNR|', '|ΔHist|', 'max |Δab|'
    value: float | None
    limit: float
    unit: str
    passed: bool | None
    note: str = ""

    @property
    def status(self) -> str:
        if self.passed is None:
            return f"n/a: {self.note}"
        return "pass" if self.passed else "FAIL"

    def describe(self) -> str:
        """'max |Δab| = 7.31 > 1.00 CIELAB units (over by 6.31)' and similar."""
        if self.passed is None:
            return f"{self.name} not checked ({self.note})"
        value = "inf" if self.value is None or not math.isfinite(self.value) else f"{self.value:.4g}"
        if self.passed:
            return f"{self.name} = {value} <= {self.limit:.4g} {self.unit}".rstrip()
        over = math.inf if self.value is None else self.value - self.limit
        by = "non-finite outputs" if not math.isfinite(over) else f"over by {over:.4g}"
        extra = f"; {self.note}" if self.note else ""
        return f"{self.name} = {value} > {self.limit:.4g} {self.unit} ({by}{extra})".replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        """An infinite ``value`` stays inf here; the report's JSON writes it as null."""
        return {**asdict(self), "status": self.status, "message": self.describe()}


def _within(value: float | None, limit: float) -> bool:
    """|value| <= limit, with NaN and inf failing (a comparison with NaN is otherwise False
    in both directions and would need care at every call site)."""
    return value is not None and math.isfinite(value) and abs(value) <= limit


def check_gates(parity: dict[str, Any], precision: str, settings: GateSettings) -> list[GateResult]:
    """The gates on one backend's ``parity.parity_record``."""
    results: list[GateResult] = []
    delta = parity.get("delta") or {}
    no_truth = "no --data, so no ground truth; agreement only"
    for key, name, limit, unit in (
        ("psnr", "|ΔPSNR|", settings.max_delta_psnr, "dB"),
        ("hist", "|ΔHist|", settings.max_delta_hist, ""),
    ):
        value = delta.get(key)
        if value is None:
            results.append(GateResult(name, None, limit, unit, None, no_truth))
        else:
            results.append(GateResult(name, abs(value), limit, unit, _within(value, limit)))
    agreement = parity["agreement"]
    nonfinite = int(agreement.get("nonfinite", 0))
    max_dab = math.inf if nonfinite else agreement.get("max_dab")
    note = f"{nonfinite} non-finite output values (NaN/inf)" if nonfinite else ""
    if settings.max_dab is None:
        limit, unit = DEFAULT_MAX_DAB.get(precision, DEFAULT_MAX_DAB["fp16"]), f"CIELAB units ({precision} limit)"
    else:
        limit, unit = settings.max_dab, "CIELAB units"
    results.append(GateResult("max |Δab|", max_dab, limit, unit, _within(max_dab, limit), note))
    return results
