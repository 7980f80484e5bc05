"""``facecolor-train vivid``: how much color a model invents, on photos with no ground truth.

Why a command of its own: on real black-and-white photographs (``shared/data/bw_real``) there
is nothing to compare against, so PSNR and CIEDE2000 cannot see rainbow patches on hair, clothes
and backgrounds. The share of vivid pixels (``facecolor.metrics.vivid_share``) can: colorize the
folder with ``facecolor-batch``, then measure the outputs here, and measure true-color photos
the same way for the reference (FFHQ faces: about 6.6 %). Each image counts once, whatever its
size: the figure is the mean of the per-image shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecolor.metrics import VIVID_CHROMA, VIVID_LONG_SIDE, vivid_share
from facecolor.train.data import IMAGE_SUFFIXES, decode_rgb, list_files
from facecolor.train.errors import NoImagesError


@dataclass(frozen=True)
class VividReport:
    """Per-image vivid shares of one folder, worst first, and what could not be read."""

    folder: str
    shares: list[tuple[str, float]]
    unreadable: list[str]

    @property
    def mean(self) -> float:
        return sum(share for _, share in self.shares) / len(self.shares)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "images": len(self.shares), "mean": self.mean,
                "chroma": VIVID_CHROMA, "long_side": VIVID_LONG_SIDE,
                "per_image": dict(self.shares), "unreadable": self.unreadable}


def measure_folder(folder: str | Path) -> VividReport:
    """The vivid share of every image under ``folder`` (recursive; files recognised by content)."""
    root = Path(folder)
    shares, unreadable = [], []
    for path in list_files([root]):
        rgb = decode_rgb(path.read_bytes())
        name = str(path.relative_to(root.resolve()))
        if rgb is None:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                unreadable.append(name)
            continue
        shares.append((name, vivid_share(rgb)))
    if not shares:
        raise NoImagesError(f"no readable images under {root}")
    shares.sort(key=lambda item: -item[1])
    return VividReport(str(root), shares, unreadable)
