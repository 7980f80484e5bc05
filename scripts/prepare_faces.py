"""Pre-resize the face photos to the render size and fix the train / validation split.

Why: the GPU machine receives at most 64 MiB per call and no ../shared, so the training set
travels as 128x128 JPEGs (q90); and the held-out split must be the same for every preset and
recorded, so it is decided here once (seeded) and written to split.json beside the images.

    python scripts/prepare_faces.py ../shared/data/faces .faces128
"""

from __future__ import annotations

import json
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

from facecolor.train.data import square_resize

SIZE = 128
HOLD_OUT = {"lfw": 200, "utkface": 300}  # validation images per training source
SEED = 2026


def _resize(src: Path, dst: Path) -> None:
    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"unreadable image: {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), square_resize(image, SIZE), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(source: Path, target: Path) -> None:
    jobs, split = [], {}
    for name, held in HOLD_OUT.items():
        files = sorted(p for p in (source / name).rglob("*") if p.suffix.lower() in {".jpg", ".png"})
        val = set(random.Random(SEED).sample(range(len(files)), held))
        split[name] = {"train": len(files) - held, "val": sorted(files[i].name for i in val)}
        for index, path in enumerate(files):
            part = "val" if index in val else "train"
            jobs.append((path, target / part / name / (path.stem + ".jpg")))
    for path in sorted((source / "ffhq_dev").glob("*.jpg")):
        jobs.append((path, target / "eval" / "ffhq_dev" / path.name))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: _resize(*job), jobs))
    (target / "split.json").write_text(json.dumps({"seed": SEED, "size": SIZE, "sources": split}, indent=1))
    print(f"wrote {len(jobs)} images under {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
