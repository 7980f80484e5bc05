"""``facecolor-train eval``: the study's Table 2 for any set of checkpoints.

Like the study, everything is scored at 128 px (``--size``): each ground-truth image is
center-cropped and resized as for training, its L* goes through the generator, and the result
(that L* with the predicted ab) is compared with the resized original. Each model runs at its
own render size, as ``facecolor-batch`` runs it: a 64 px model sees the L* area-averaged to
64 px and its ab is upsampled to 128 px before the join, so the table scores what users get. The gray
baseline row scores the input itself (ab = 0), the floor every model should beat on color.

FID (clean-fid, mode ``clean``) needs Inception weights that cannot be downloaded here. When
they are absent the table says so in a note under the FID column (the message names the file
and ``--fid-weights``) and every other column is still computed; ``require_fid`` turns the
absence into an error instead.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facecolor.checkpoint import load_generator
from facecolor.files import write_json, write_text
from facecolor.metrics import FidScorer
from facecolor.table import format_table
from facecolor.train.data import load_images
from facecolor.train.report import contact_sheet, spread_picks
from facecolor.train.settings import resolve_device
from facecolor.train.validate import colorize, score

log = logging.getLogger("facecolor.train")

GRAY_BASELINE = "gray (input)"
#: (row key, column title, format) in the study's Table 2 order, then our extra columns.
COLUMNS = (
    ("hist", "Hist ↑", "{:.4f}"),
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("fid", "FID ↓", "{:.2f}"),
    ("ciede2000", "CIEDE2000 ↓", "{:.2f}"),
    ("colorfulness_pred", "Colorfulness", "{:.1f}"),
    ("colorfulness_true", "Colorfulness (truth)", "{:.1f}"),
)


@dataclass(frozen=True)
class EvalSettings:
    """One evaluation: which checkpoints, on which images, at which size, with or without FID."""

    checkpoints: tuple[str, ...]
    data: str
    limit: int | None = None
    seed: int = 0
    render_size: int = 128
    device: str = "auto"
    batch_size: int = 64
    fid_weights: str | None = None
    gray_baseline: bool = True
    require_fid: bool = False
    workers: int = 4
    cache_dir: str | None = None
    sheet_images: int = 0  # images kept, evenly spaced, for a contact sheet (write_sheet)


@dataclass
class EvalRow:
    """One table row: a model (or the gray baseline) and its mean metrics (fid may be None)."""

    name: str
    checkpoint: str | None
    preset: str
    metrics: dict[str, float | None]


@dataclass
class EvalTable:
    """The evaluation's result: rows plus what is needed to read them honestly."""

    settings: EvalSettings
    images: int
    data: dict[str, Any]
    rows: list[EvalRow] = field(default_factory=list)
    fid_note: str | None = None
    #: For the contact sheet (not in the JSON): 'gray', 'truth' uint8 [K,H,W,3] and 'results'
    #: [(row name, uint8 [K,H,W,3], per-image metric rows)] for the K kept images.
    samples: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "images": self.images,
            "render_size": self.settings.render_size,
            "data": self.data,
            "fid_note": self.fid_note,
            "rows": [asdict(row) for row in self.rows],
        }


def evaluate(settings: EvalSettings) -> EvalTable:
    """Score every checkpoint (and the gray baseline) on ``settings.data``; see module docstring."""
    device = resolve_device(settings.device)
    image_set = load_images([settings.data], settings.render_size, limit=settings.limit,
                            seed=settings.seed, workers=settings.workers, cache_dir=settings.cache_dir)
    truths = image_set.images.numpy()
    table = EvalTable(settings, len(truths), image_set.describe())
    picks = spread_picks(len(truths), settings.sheet_images)
    if len(picks):
        table.samples = {"truth": truths[picks], "results": [],
                         "gray": colorize(None, image_set.images[picks], device)}
    with tempfile.TemporaryDirectory(prefix="facecolor-eval-") as scratch:
        fid = FidScorer(truths, scratch, weights=settings.fid_weights, device=device, strict=settings.require_fid)
        names = _row_names(settings.checkpoints)
        jobs: list[tuple[str, str | None]] = [(GRAY_BASELINE, None)] if settings.gray_baseline else []
        jobs += list(zip(names, settings.checkpoints))
        for name, path in jobs:
            generator, preset = None, "-"
            if path is not None:
                generator, checkpoint = load_generator(path, device)
                preset = checkpoint.preset
            predictions = colorize(generator, image_set.images, device, batch_size=settings.batch_size)
            per_image, means = score(predictions, truths, settings.workers)
            if len(picks) and path is not None:
                table.samples["results"].append((name, predictions[picks], [per_image[i] for i in picks]))
            metrics: dict[str, float | None] = {key: means[key] for key, _, _ in COLUMNS if key != "fid"}
            metrics["fid"] = fid.score("pred", predictions)
            table.rows.append(EvalRow(name, path, preset, metrics))
            log.info(f"{name}: PSNR {metrics['psnr']:.2f} Hist {metrics['hist']:.4f}")
    table.fid_note = f"FID not computed: {fid.note}" if fid.note else None  # shown once, under the table
    return table


def _row_names(paths: tuple[str, ...]) -> list[str]:
    """File stems, or parent/stem where two stems collide (runs/a/gpsagd vs runs/b/gpsagd)."""
    stems = [Path(p).stem for p in paths]
    return [f"{Path(p).parent.name}/{s}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)]


# --------------------------------------------------------------------------- formatting


def _cells(row: EvalRow) -> list[str]:
    cells = [row.name]
    for key, _, fmt in COLUMNS:
        value = row.metrics.get(key)
        cells.append("n/a*" if value is None or (isinstance(value, float) and math.isnan(value))
                     else fmt.format(value))
    return cells


def _header() -> list[str]:
    return ["model"] + [title for _, title, _ in COLUMNS]


def _caption(table: EvalTable) -> str:
    return (f"{table.images} images from {table.settings.data}, scored at "
            f"{table.settings.render_size}x{table.settings.render_size} (center crop, as the study)")


def format_text(table: EvalTable) -> str:
    """The table as aligned plain text, with its caption and FID note."""
    grid = format_table(_header(), [_cells(row) for row in table.rows], [False] + [True] * len(COLUMNS))
    footer = [_caption(table)] + ([f"* {table.fid_note}"] if table.fid_note else [])
    return "\n".join([grid, ""] + footer)


def format_markdown(table: EvalTable) -> str:
    """The table as GitHub Markdown, caption first, FID note under it."""
    header = _header()
    lines = [f"Table: {_caption(table)}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in table.rows]
    if table.fid_note:
        lines += ["", f"\\* {table.fid_note}"]
    return "\n".join(lines) + "\n"


def write_sheet(table: EvalTable, path: str | Path) -> Path:
    """The kept images as a contact sheet: gray input, each model with its metrics, original."""
    if not table.samples:
        raise ValueError("no images were kept for a contact sheet (EvalSettings.sheet_images is 0)")
    models = ", ".join(name for name, _, _ in table.samples["results"])
    return contact_sheet(table.samples["gray"], table.samples["results"], table.samples["truth"], Path(path),
                         title=f"{models} on {Path(table.settings.data).name} "
                               f"({table.settings.render_size} px): gray input / results / original")


def write_outputs(table: EvalTable, markdown: str | Path | None, json_path: str | Path | None) -> list[Path]:
    """Write the Markdown and/or JSON forms atomically; returns the paths written."""
    return write_forms(lambda: format_markdown(table), table.to_dict, markdown, json_path)


def write_forms(
    markdown_text: Callable[[], str],
    json_document: Callable[[], Any],
    markdown: str | Path | None,
    json_path: str | Path | None,
) -> list[Path]:
    """The tables' two forms, each written atomically only when its path is given."""
    written = []
    if markdown is not None:
        written.append(write_text(markdown, markdown_text()))
    if json_path is not None:
        written.append(write_json(json_path, json_document()))
    return written
