"""The run folder's figures: loss curves, validation PSNR, and the study-style contact sheet.

Figures are drawn with matplotlib's Agg backend (no display needed) and written atomically,
so an interrupted run never leaves a truncated PNG behind.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facecolor.files import write_atomically


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    plt = _pyplot()
    write_atomically(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return Path(path)


def _stages(history: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(entry["stage"] for entry in history))


def _integer_ticks(axis, epochs: Sequence[int]) -> None:
    """Epoch numbers as ticks (each one while few; a single epoch centered, not 0.95-1.05)."""
    from matplotlib.ticker import MaxNLocator

    epochs = sorted(set(epochs))
    if 0 < len(epochs) <= 12:
        axis.set_xticks(epochs)
        axis.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_losses(history: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """One panel per stage, every loss of that stage against its epoch."""
    plt = _pyplot()

    stages = _stages(history) or ["(no epochs)"]
    figure, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.4), squeeze=False)
    for axis, stage in zip(axes[0], stages):
        entries = [e for e in history if e["stage"] == stage]
        for name in sorted({n for e in entries for n in e["losses"]}):
            points = [(e["epoch"], e["losses"][name]) for e in entries if name in e["losses"]]
            axis.plot(*zip(*points), "o-", label=name, markersize=4)
        values = [v for e in entries for v in e["losses"].values()]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            axis.set_yscale("log")  # the GAN's total G loss (with 100 * L1) dwarfs the others
        axis.set_title(stage)
        axis.set_xlabel("epoch")
        _integer_ticks(axis, [e["epoch"] for e in entries])
        axis.grid(alpha=0.3)
        if entries:
            axis.legend(fontsize=8)
    axes[0][0].set_ylabel("loss (epoch mean)")
    figure.suptitle(textwrap.fill(title or "training losses", 60 * len(stages)), fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def plot_val_psnr(history: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Validation PSNR after every epoch of every stage, stages in sequence."""
    plt = _pyplot()

    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    offset = 0
    for stage in _stages(history):
        entries = [e for e in history if e["stage"] == stage and e.get("val")]
        xs = [offset + e["epoch"] for e in entries]
        axis.plot(xs, [e["val"]["psnr"] for e in entries], "o-", label=stage, markersize=4)
        offset += max((e["epoch"] for e in history if e["stage"] == stage), default=0)
    _integer_ticks(axis, list(range(1, offset + 1)))
    axis.set_xlabel("epoch (all stages in sequence)")
    axis.set_ylabel("validation PSNR (dB)")
    axis.grid(alpha=0.3)
    if history:
        axis.legend(fontsize=8)
    axis.set_title(textwrap.fill(title or "validation PSNR", 70), fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def spread_picks(total: int, count: int) -> np.ndarray:
    """Indices of up to ``count`` of ``total`` images, evenly spread from first to last."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))


def contact_sheet(
    gray: np.ndarray,
    results: Sequence[tuple[str, np.ndarray, Sequence[dict[str, float]]]],
    originals: np.ndarray,
    path: Path,
    *,
    title: str = "",
) -> Path:
    """One column per image: the gray input, each result with its metrics under it, the original.

    ``gray``, ``originals`` and each result's images are uint8 [N,H,W,3]; ``results`` holds
    (label, images, per-image metric rows), one row of the sheet each.
    """
    plt = _pyplot()
    count = len(originals)
    if count == 0:
        raise ValueError("a contact sheet needs at least one image")
    lines = [("gray input", gray, None)] + list(results) + [("original", originals, None)]
    figure, axes = plt.subplots(len(lines), count, figsize=(1.9 * count + 0.6, 2.3 * len(lines)), squeeze=False)
    for row, (label, images, metrics) in enumerate(lines):
        for column in range(count):
            axis = axes[row][column]
            axis.imshow(images[column])
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label, fontsize=9)
            if metrics is not None:
                m = metrics[column]
                axis.set_xlabel(f"PSNR {m['psnr']:.2f} dB\nHist {m['hist']:.3f}\n"
                                f"CIEDE2000 {m['ciede2000']:.2f}", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
