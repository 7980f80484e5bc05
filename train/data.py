"""Training data: folders of color images decoded once into one uint8 tensor, batched on device.

Why this shape: at 128 px a face is 48 KiB, so the whole study set (8,000 images, 393 MB)
fits in host or GPU memory. Decoding every JPEG once (in a thread pool; OpenCV releases the
GIL) and keeping the result means an epoch never waits on a decoder, and with the tensor on
the GPU the whole data path (gather, flip, sRGB -> CIELAB) runs there with no DataLoader
workers. An optional on-disk cache (``--cache-dir``) keeps the decoded tensor as ``.npy``
between runs, keyed by a hash of the file list (paths, byte sizes, modification times) and
the render size.

Geometry: each image is center-cropped to a square (the long side trimmed equally on both
ends) and resized to the render size with ``INTER_AREA`` (the right filter for shrinking;
images smaller than the render size are enlarged with ``INTER_CUBIC``). The face sets are
square or nearly so, so little is lost; the runtime, which must keep every pixel, pads instead
(DESIGN §2).

Files are found recursively and recognised by content, not by extension: everything that
OpenCV or Pillow can decode is used; everything else is counted, named in the log (the first
few) and skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facecolor.color import split_lab_torch
from facecolor.train.errors import NoImagesError

log = logging.getLogger("facecolor.train")

#: Bump when decoding or geometry changes, so old on-disk caches are not reused.
CACHE_VERSION = 1
#: Extensions of files we expect to be images: a failure on one of these is "broken",
#: on anything else "not an image". Decoding itself never looks at the extension.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
)
#: How many skipped names a log line shows.
SHOW_NAMES = 5


@dataclass(frozen=True)
class DecodeReport:
    """What happened to the files found under the data folders."""

    folders: tuple[str, ...]
    found: int
    used: int
    broken: tuple[str, ...] = ()
    not_images: tuple[str, ...] = ()
    limit: int | None = None

    def summary(self) -> str:
        """One log line: counts and the first few skipped names."""
        text = f"{self.used} images from {', '.join(self.folders)} ({self.found} files"
        if self.limit is not None:
            text += f", limited to {self.limit}"
        text += ")"
        for label, names in (("broken", self.broken), ("not images", self.not_images)):
            if names:
                shown = ", ".join(names[:SHOW_NAMES]) + (", ..." if len(names) > SHOW_NAMES else "")
                text += f"; skipped {len(names)} {label}: {shown}"
        return text


@dataclass(frozen=True)
class ImageSet:
    """Decoded images: ``images`` is uint8 [N, S, S, 3] sRGB on the CPU, one row per path."""

    images: torch.Tensor
    paths: tuple[str, ...]
    report: DecodeReport
    key: str = ""
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> dict[str, Any]:
        """The data summary stored in checkpoints: folders, counts, skipped files, hash."""
        report = self.report
        return {
            "folders": list(report.folders),
            "files_found": report.found,
            "images": len(self),
            "limit": report.limit,
            "broken": len(report.broken),
            "not_images": len(report.not_images),
            "skipped_names": list((report.broken + report.not_images)[:SHOW_NAMES]),
            "render_size": int(self.images.shape[1]),
            "file_list_sha256": self.key,
        }


# --------------------------------------------------------------------------- finding files


def list_files(folders: Sequence[str | Path]) -> list[Path]:
    """Every non-hidden file under ``folders`` (recursive), sorted, duplicates removed."""
    files: set[Path] = set()
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise NoImagesError(f"data folder not found: {root}; pass an existing folder of images")
        for path in root.rglob("*"):
            relative = path.relative_to(root).parts
            if path.is_file() and not any(part.startswith(".") for part in relative):
                files.add(path.resolve())
    return sorted(files)


def choose_subset(paths: list[Path], limit: int | None, seed: int) -> list[Path]:
    """A deterministic subset: ``limit`` of the sorted paths drawn with ``seed``, kept sorted."""
    if limit is None or limit >= len(paths):
        return paths
    return sorted(random.Random(seed).sample(paths, limit))


def file_list_key(paths: Sequence[Path], size: int) -> str:
    """sha256 of the file list (path, byte size, mtime) and render size: the cache key."""
    digest = hashlib.sha256(f"facecolor-train-cache v{CACHE_VERSION} size={size}\n".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- decoding


def decode_rgb(data: bytes) -> np.ndarray | None:
    """File bytes -> uint8 HxWx3 sRGB, or None when neither OpenCV nor Pillow can read them.

    OpenCV first (fast, applies EXIF orientation, reduces 16-bit and gray to 8-bit RGB);
    Pillow for what OpenCV lacks (GIF, some TIFF and WebP variants).
    """
    if not data:
        return None
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is not None and bgr.size:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Center-crop HxWx3 to a square, resize to ``size`` (INTER_AREA down, INTER_CUBIC up)."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def _decode_into(out: np.ndarray, index: int, path: Path, size: int) -> bool:
    """Decode one file into ``out[index]``; False when it is not a readable image."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    rgb = decode_rgb(data)
    if rgb is None or min(rgb.shape[:2]) < 1:
        return False
    out[index] = square_resize(rgb, size)
    return True


def decode_all(paths: Sequence[Path], size: int, workers: int) -> tuple[np.ndarray, list[bool]]:
    """Decode ``paths`` in a thread pool into uint8 [N, size, size, 3]; per-path success flags."""
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = list(pool.map(lambda item: _decode_into(out, item[0], item[1], size), enumerate(paths)))
    return out, ok


# --------------------------------------------------------------------------- loading


def load_images(
    folders: Sequence[str | Path],
    size: int,
    *,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 4,
    cache_dir: str | Path | None = None,
) -> ImageSet:
    """Find, decode (or read from the cache), crop and resize the images under ``folders``."""
    names = tuple(str(folder) for folder in folders)
    files = list_files(folders)
    chosen = choose_subset(files, limit, seed)
    key = file_list_key(chosen, size)
    cache = _cache_paths(Path(cache_dir), key, size) if cache_dir is not None else None
    if cache is not None and cache[0].is_file() and cache[1].is_file():
        image_set = _read_cache(cache, names, len(files), limit, key)
    else:
        image_set = _decode_set(chosen, names, len(files), size, limit, workers, key)
        if cache is not None:
            _write_cache(cache, image_set)
    log.info(("cached: " if image_set.cached else "decoded: ") + image_set.report.summary())
    if len(image_set) == 0:
        raise NoImagesError(
            f"no decodable images under {', '.join(names)} ({len(files)} files); "
            "pass folders of color images (JPEG, PNG, WebP, ...)"
        )
    return image_set


def _decode_set(chosen, names, found, size, limit, workers, key) -> ImageSet:
    pixels, ok = decode_all(chosen, size, workers)
    failed = [path for path, good in zip(chosen, ok) if not good]
    broken = tuple(p.name for p in failed if p.suffix.lower() in IMAGE_SUFFIXES)
    not_images = tuple(p.name for p in failed if p.suffix.lower() not in IMAGE_SUFFIXES)
    if failed:
        pixels = pixels[np.asarray(ok, dtype=bool)]
    kept = tuple(str(p) for p, good in zip(chosen, ok) if good)
    report = DecodeReport(names, found, len(kept), broken, not_images, limit)
    return ImageSet(torch.from_numpy(pixels), kept, report, key)


def _cache_paths(cache_dir: Path, key: str, size: int) -> tuple[Path, Path]:
    stem = f"images-{size}px-{key[:16]}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def _write_cache(cache: tuple[Path, Path], image_set: ImageSet) -> None:
    """Write the pixels and their file list atomically (a crash never leaves half a cache)."""
    from facecolor.files import write_atomically

    def save_npy(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, image_set.images.numpy(), allow_pickle=False)

    report = image_set.report
    sidecar = {
        "paths": list(image_set.paths),
        "broken": list(report.broken),
        "not_images": list(report.not_images),
        "key": image_set.key,
    }
    write_atomically(cache[0], save_npy)
    write_atomically(cache[1], lambda tmp: tmp.write_text(json.dumps(sidecar)))


def _read_cache(cache, names, found, limit, key) -> ImageSet:
    pixels = np.load(cache[0], allow_pickle=False)
    sidecar = json.loads(cache[1].read_text())
    report = DecodeReport(
        names, found, len(sidecar["paths"]), tuple(sidecar["broken"]),
        tuple(sidecar["not_images"]), limit,
    )
    return ImageSet(torch.from_numpy(pixels), tuple(sidecar["paths"]), report, key, cached=True)


# --------------------------------------------------------------------------- batches


def epoch_order(
    count: int, *, seed: int, epoch_key: int, rank: int = 0, world_size: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shuffled indices for one epoch, and a flip flag per index (CPU tensors).

    Both depend only on (seed, epoch_key), so a resumed run sees the same order, and every
    rank draws the same permutation and takes its own equal-length shard of it (DDP needs
    the same number of steps on every rank, so up to world_size - 1 images are left out).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch_key)
    permutation = torch.randperm(count, generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5
    per_rank = count // world_size
    mine = permutation[: per_rank * world_size][rank::world_size]
    return mine, flips[mine]


def batch_slices(count: int, batch_size: int) -> list[slice]:
    """Batches over ``count`` items; a last batch of one is dropped (BatchNorm needs two)."""
    slices = [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if slices and slices[-1].stop - slices[-1].start < 2:
        slices.pop()
    return slices


def to_lab_batch(
    pixels: torch.Tensor, flips: torch.Tensor | None = None, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, S, S, 3] sRGB on any device -> (L_norm [B,1,S,S], ab_norm [B,2,S,S]) float32.

    ``flips`` (bool [B], same device) mirrors those images horizontally first. Runs where the
    pixels are: on a GPU this is the whole per-batch data path.
    """
    if flips is not None:
        pixels = torch.where(flips[:, None, None, None], pixels.flip(2), pixels)
    rgb = pixels.permute(0, 3, 1, 2).float().div_(255.0)
    l_norm, ab_norm = split_lab_torch(rgb)
    if channels_last:
        return (
            l_norm.contiguous(memory_format=torch.channels_last),
            ab_norm.contiguous(memory_format=torch.channels_last),
        )
    return l_norm.contiguous(), ab_norm.contiguous()


def mosaic(pixels: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Replace the ``chosen`` images (bool [B]) of a uint8 [B,S,S,3] batch by 2x2 mosaics.

    Image i's mosaic holds images i, i+1, i+2 and i+3 of the batch (wrapping around), each
    shrunk to half size by averaging 2x2 pixel blocks. An odd S or a batch under 4 images is
    returned unchanged (no mosaic can be tiled exactly).
    """
    count, size = pixels.shape[0], pixels.shape[1]
    if count < 4 or size % 2 or not bool(chosen.any()):
        return pixels
    half = size // 2
    small = pixels.float().reshape(count, half, 2, half, 2, 3).mean((2, 4)).round().to(pixels.dtype)
    index = torch.arange(count, device=pixels.device)
    top = torch.cat([small, small[(index + 1) % count]], dim=2)
    bottom = torch.cat([small[(index + 2) % count], small[(index + 3) % count]], dim=2)
    return torch.where(chosen[:, None, None, None], torch.cat([top, bottom], dim=1), pixels)


def train_batches(
    images: torch.Tensor,
    batch_size: int,
    *,
    seed: int,
    epoch_key: int,
    rank: int = 0,
    world_size: int = 1,
    flip: bool = True,
    channels_last: bool = False,
    mosaic_share: float = 0.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (L_norm, ab_norm) batches from ``images`` (uint8 [N,S,S,3] on the device).

    ``mosaic_share`` of the images (drawn per epoch from the seed, like the flips) become 2x2
    mosaics of batch neighbours (``mosaic``).
    """
    order, flips = epoch_order(
        len(images), seed=seed, epoch_key=epoch_key, rank=rank, world_size=world_size
    )
    mosaics = None
    if mosaic_share > 0:
        draw = torch.Generator().manual_seed(seed * 1_000_003 + epoch_key + 7_919)
        mosaics = (torch.rand(len(order), generator=draw) < mosaic_share).to(images.device)
    order, flips = order.to(images.device), flips.to(images.device)
    for part in batch_slices(len(order), batch_size):
        pixels = images[order[part]]
        if mosaics is not None:
            pixels = mosaic(pixels, mosaics[part])
        yield to_lab_batch(pixels, flips[part] if flip else None, channels_last)


def count_batches(count: int, batch_size: int, world_size: int = 1) -> int:
    """How many steps ``train_batches`` yields per epoch on each rank."""
    return len(batch_slices(count // world_size, batch_size))
