"""``facecolor-train groups``: quality and skin color per demographic group (UTKFace labels).

Uneven skin color is the first thing users of colorizers complain about, so the model card
reports, for each group a UTKFace file name encodes (``AGE_GENDER_RACE_TIMESTAMP...``, gender
0 male / 1 female, race 0-4 White, Black, Asian, Indian, Other): PSNR, CIEDE2000, and the
mean skin chroma C*ab = sqrt(a*^2 + b*^2) predicted vs. true. Skin is measured on a fixed
central box of the aligned crop (cheeks, nose, mouth: rows 40-75 %, columns 30-70 %), which
on UTKFace's aligned faces is almost all skin. A ratio below 1 means the model paints that
group's skin too gray; comparing ratios across groups shows whether it treats them alike.
Scoring happens at the render size, like ``facecolor-train eval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facecolor.checkpoint import load_generator
from facecolor.color import rgb_to_lab
from facecolor.train.data import load_images
from facecolor.train.errors import TrainError
from facecolor.train.evaluate import write_forms
from facecolor.train.settings import resolve_device
from facecolor.train.validate import colorize, score

RACES = ("White", "Black", "Asian", "Indian", "Other")
GENDERS = ("male", "female")
UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_")
SKIN_ROWS = (0.40, 0.75)
SKIN_COLUMNS = (0.30, 0.70)


class NoLabelledImagesError(TrainError):
    """No file name in the folder carries UTKFace's AGE_GENDER_RACE labels."""


@dataclass(frozen=True)
class GroupRow:
    """One group's numbers (means over its images)."""

    group: str
    images: int
    psnr: float
    ciede2000: float
    skin_chroma_pred: float
    skin_chroma_true: float

    @property
    def chroma_ratio(self) -> float:
        return self.skin_chroma_pred / self.skin_chroma_true if self.skin_chroma_true else float("nan")


def labels_of(path: str) -> tuple[str, str] | None:
    """(race, gender) from a UTKFace file name, or None when the name carries no labels."""
    match = UTKFACE_NAME.match(Path(path).name)
    if match is None:
        return None
    return RACES[int(match.group(3))], GENDERS[int(match.group(2))]


def skin_chroma(images: np.ndarray) -> np.ndarray:
    """uint8 [N,S,S,3] sRGB -> mean C*ab of each image's central skin box, float [N]."""
    size = images.shape[1]
    rows = slice(int(SKIN_ROWS[0] * size), int(SKIN_ROWS[1] * size))
    columns = slice(int(SKIN_COLUMNS[0] * size), int(SKIN_COLUMNS[1] * size))
    lab = rgb_to_lab(images[:, rows, columns].astype(np.float32) / 255.0)
    return np.hypot(lab[..., 1], lab[..., 2]).mean(axis=(1, 2))


def group_rows(
    labels: list[tuple[str, str]], metrics: list[dict[str, float]], chroma_pred: np.ndarray, chroma_true: np.ndarray
) -> list[GroupRow]:
    """Means per race, per gender and overall, in a fixed order; groups without images left out."""
    groups: dict[str, list[int]] = {"all": list(range(len(labels)))}
    for name in (*RACES, *GENDERS):
        groups[name] = [i for i, (race, gender) in enumerate(labels) if name in (race, gender)]
    rows = []
    for name, members in groups.items():
        if not members:
            continue
        rows.append(GroupRow(
            group=name, images=len(members),
            psnr=float(np.mean([metrics[i]["psnr"] for i in members])),
            ciede2000=float(np.mean([metrics[i]["ciede2000"] for i in members])),
            skin_chroma_pred=float(chroma_pred[members].mean()),
            skin_chroma_true=float(chroma_true[members].mean()),
        ))
    return rows


def evaluate_groups(
    checkpoint: str | Path, data: str | Path, *, device: str = "auto", workers: int = 4
) -> dict[str, Any]:
    """Colorize every labelled image under ``data`` with ``checkpoint`` and score each group."""
    torch_device = resolve_device(device)
    generator, meta = load_generator(checkpoint, torch_device)
    image_set = load_images([data], meta.render_size, workers=workers)
    keep = [i for i, path in enumerate(image_set.paths) if labels_of(path) is not None]
    if not keep:
        raise NoLabelledImagesError(
            f"no file under {data} is named like UTKFace (AGE_GENDER_RACE_..., e.g. "
            "25_1_3_20170104.jpg.chip.jpg); point --data at UTKFace images"
        )
    truths = image_set.images[keep]
    predictions = colorize(generator, truths, torch_device)
    metrics, _ = score(predictions, truths.numpy(), workers)
    labels = [labels_of(image_set.paths[i]) for i in keep]
    rows = group_rows(labels, metrics, skin_chroma(predictions), skin_chroma(truths.numpy()))
    return {"checkpoint": str(checkpoint), "preset": meta.preset, "data": str(data),
            "render_size": meta.render_size, "rows": [dict(vars(r), chroma_ratio=r.chroma_ratio) for r in rows]}


def format_markdown(result: dict[str, Any]) -> str:
    """The per-group table for the model card."""
    lines = [
        f"Per-group quality of `{result['preset']}` on {result['data']} "
        f"({result['render_size']} px; skin = central box of the aligned face):",
        "",
        "| group | images | PSNR ↑ | CIEDE2000 ↓ | skin chroma, ours | skin chroma, truth | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['group']} | {row['images']} | {row['psnr']:.2f} | {row['ciede2000']:.2f} | "
            f"{row['skin_chroma_pred']:.1f} | {row['skin_chroma_true']:.1f} | {row['chroma_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], markdown: Path | None, json_path: Path | None) -> list[Path]:
    """The per-group table as Markdown and/or JSON, like ``facecolor-train eval``'s."""
    return write_forms(lambda: format_markdown(result), lambda: result, markdown, json_path)
