"""Aggregate per-image metric rows into the set-level numbers DESIGN §6 reports.

DESIGN §6 defines every image metric as "per image, then the mean"; the standard deviation
is kept beside each mean so reports can show the spread. FID is a set-level metric
(``facecolor.metrics.fid``) and is attached to a summary, never averaged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from facecolor.metrics.validate import MetricsError

#: How ``MetricsSummary.describe`` labels the known keys; other keys appear by name.
_LABELS = {
    "psnr": "PSNR {:.2f} dB",
    "hist": "hist {:.4f}",
    "ciede2000": "CIEDE2000 {:.2f}",
    "colorfulness_pred": "colorfulness {:.1f}",
    "colorfulness_true": "colorfulness of truth {:.1f}",
}


def _columns(rows: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Rows -> one float64 column per key; every row must have the same keys."""
    if not rows:
        raise MetricsError("no rows to summarize; score at least one image first")
    keys = list(rows[0])
    for index, row in enumerate(rows):
        if set(row) != set(keys):
            raise MetricsError(
                f"row {index} has keys {sorted(row)}, row 0 has {sorted(keys)}; "
                "summarize rows from the same evaluate_pair call"
            )
    return {key: np.array([float(row[key]) for row in rows], dtype=np.float64) for key in keys}


@dataclasses.dataclass(frozen=True)
class MetricsSummary:
    """Means and (population) standard deviations of per-image metrics over a set of images.

    ``mean`` and ``std`` are keyed like the rows (``facecolor.metrics.METRIC_KEYS`` for rows
    from ``evaluate_pair``); ``fid`` is the set-level FID when it was computed, else None.
    """

    count: int
    mean: dict[str, float]
    std: dict[str, float]
    fid: float | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, float]]) -> MetricsSummary:
        """Summarize rows such as those of ``evaluate_pair`` or ``evaluate_batch``."""
        columns = _columns(rows)
        mean = {key: float(column.mean()) for key, column in columns.items()}
        std = {key: float(column.std()) for key, column in columns.items()}
        return cls(count=len(rows), mean=mean, std=std)

    def with_fid(self, fid: float) -> MetricsSummary:
        """A copy with the set-level FID attached."""
        return dataclasses.replace(self, fid=float(fid))

    def to_dict(self) -> dict[str, float | int | None]:
        """Flat and JSON-ready: ``count``, each mean under its key, std as ``KEY_std``, ``fid``."""
        flat: dict[str, float | int | None] = {"count": self.count}
        for key, value in self.mean.items():
            flat[key] = value
            flat[f"{key}_std"] = self.std[key]
        flat["fid"] = self.fid
        return flat

    def describe(self) -> str:
        """One human-readable line for CLI output, e.g. ``PSNR 24.31 dB | hist 0.9120 | ...``."""
        parts = [_LABELS.get(key, key + " {:.4g}").format(v) for key, v in self.mean.items()]
        if self.fid is not None and math.isfinite(self.fid):
            parts.append(f"FID {self.fid:.2f}")
        return f"{' | '.join(parts)} over {self.count} image{'s' if self.count != 1 else ''}"


def summarize(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over rows, plus ``KEY_std`` (population standard deviation) for each key.

    The set-level values of DESIGN §6 ("per image, then the mean"). Rows must share their
    keys; an empty list raises MetricsError (a mean of nothing is not 0).
    """
    summary = MetricsSummary.from_rows(rows)
    flat: dict[str, float] = {}
    for key, value in summary.mean.items():
        flat[key] = value
        flat[f"{key}_std"] = summary.std[key]
    return flat
