"""A before/after sheet of a colorized folder, for the README: pairs IN/x and OUT/x side by side.

    python scripts/before_after.py examples out docs/examples.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageOps

TILE = 220  # px, the height of each picture on the sheet


def _tile(path: Path) -> Image.Image:
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return image.resize((max(1, round(image.width * TILE / image.height)), TILE), Image.LANCZOS)


def before_after(inputs: Path, outputs: Path, target: Path, columns: int = 4) -> Path:
    pairs = [(p, outputs / p.relative_to(inputs)) for p in sorted(inputs.rglob("*"))
             if (outputs / p.relative_to(inputs)).is_file() and p.suffix.lower() != ".md"]
    cells = []
    for before, after in pairs:
        left, right = _tile(before), _tile(after)
        cell = Image.new("RGB", (left.width + right.width + 4, TILE), "white")
        cell.paste(left, (0, 0))
        cell.paste(right, (left.width + 4, 0))
        cells.append(cell)
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    width = max(sum(c.width + 12 for c in row) for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (TILE + 12)), "white")
    for r, row in enumerate(rows):
        x = 0
        for cell in row:
            sheet.paste(cell, (x, r * (TILE + 12)))
            x += cell.width + 12
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, quality=88)
    return target


if __name__ == "__main__":
    print(before_after(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
