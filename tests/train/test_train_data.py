"""Data loading: discovery by content, skipping and reporting bad files, geometry, cache, batches."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from facecolor.train import data
from facecolor.train.errors import NoImagesError


def test_load_images_skips_and_reports_bad_files(tiny_data, caplog):
    with caplog.at_level(logging.INFO, logger="facecolor.train"):
        image_set = data.load_images([tiny_data["train"]], 32, workers=2)
    assert image_set.images.shape == (12, 32, 32, 3)
    assert image_set.images.dtype == torch.uint8
    assert image_set.report.broken == ("broken.jpg",)
    assert image_set.report.not_images == ("notes.txt",)
    assert "skipped 1 broken: broken.jpg" in caplog.text and "notes.txt" in caplog.text
    summary = image_set.describe()
    assert summary["files_found"] == 14 and summary["images"] == 12 and summary["broken"] == 1
    assert len(summary["file_list_sha256"]) == 64


def test_decoding_is_by_content_not_extension(tmp_path):
    import cv2

    image = np.full((10, 20, 3), (10, 200, 30), np.uint8)  # BGR
    (tmp_path / "photo.dat").write_bytes(cv2.imencode(".png", image)[1].tobytes())
    image_set = data.load_images([tmp_path], 16, workers=1)
    assert len(image_set) == 1
    assert tuple(image_set.images[0, 8, 8].tolist()) == (30, 200, 10)  # RGB


def test_square_resize_center_crops_then_resizes():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255  # the centered 40x40 square is all white; the sides black
    out = data.square_resize(image, 20)
    assert out.shape == (20, 20, 3) and out.min() == 255
    assert data.square_resize(np.zeros((8, 8, 3), np.uint8), 16).shape == (16, 16, 3)


def test_limit_is_a_deterministic_seeded_subset(tiny_data):
    first = data.load_images([tiny_data["train"]], 32, limit=5, seed=3, workers=1)
    again = data.load_images([tiny_data["train"]], 32, limit=5, seed=3, workers=1)
    other = data.load_images([tiny_data["train"]], 32, limit=5, seed=4, workers=1)
    assert first.paths == again.paths and list(first.paths) == sorted(first.paths)
    assert len(first) <= 5 and first.paths != other.paths


def test_disk_cache_is_reused_and_keyed_by_size(tiny_data, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = data.load_images([tiny_data["train"]], 32, workers=2, cache_dir=cache)
    assert not fresh.cached and len(list(cache.glob("*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data, "decode_all", no_decoding)
    cached = data.load_images([tiny_data["train"]], 32, workers=2, cache_dir=cache)
    assert cached.cached and torch.equal(cached.images, fresh.images)
    assert cached.paths == fresh.paths and cached.report.broken == ("broken.jpg",)
    monkeypatch.undo()
    data.load_images([tiny_data["train"]], 48, workers=2, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 2


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(NoImagesError, match="no decodable images"):
        data.load_images([tmp_path], 32)
    with pytest.raises(NoImagesError, match="not found"):
        data.load_images([tmp_path / "missing"], 32)


def test_epoch_order_shards_equally_and_is_reproducible():
    shards = [data.epoch_order(11, seed=0, epoch_key=5, rank=r, world_size=2)[0] for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    again, _ = data.epoch_order(11, seed=0, epoch_key=5, rank=0, world_size=2)
    assert torch.equal(again, shards[0])
    other, _ = data.epoch_order(11, seed=0, epoch_key=6, rank=0, world_size=2)
    assert not torch.equal(other, shards[0])


def test_batches_drop_a_last_batch_of_one():
    assert [s.stop - s.start for s in data.batch_slices(9, 4)] == [4, 4]
    assert [s.stop - s.start for s in data.batch_slices(10, 4)] == [4, 4, 2]
    assert data.count_batches(10, 4, world_size=2) == 1  # 5 per rank: 4, then 1 dropped
    assert data.count_batches(12, 4, world_size=2) == 2


def test_train_batches_are_lab_and_flip_horizontally():
    pixels = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    pixels[:, :, :4] = torch.tensor([200, 30, 30], dtype=torch.uint8)  # red left half
    l_norm, ab_norm = data.to_lab_batch(pixels, torch.tensor([False, True]))
    assert l_norm.shape == (2, 1, 8, 8) and ab_norm.shape == (2, 2, 8, 8)
    assert -1 <= l_norm.min() and l_norm.max() <= 1
    assert ab_norm[0, 0, 0, 0] > 0.3 and abs(ab_norm[0, 0, 0, 7]) < 1e-3  # a* of red, of black
    assert torch.allclose(ab_norm[1], ab_norm[0].flip(-1))
    batches = list(data.train_batches(pixels.repeat(3, 1, 1, 1), 4, seed=0, epoch_key=1))
    assert [b[0].shape[0] for b in batches] == [4, 2]


def test_mosaic_tiles_four_batch_neighbours_at_half_size():
    pixels = torch.stack([torch.full((8, 8, 3), 40 * i, dtype=torch.uint8) for i in range(5)])
    pixels[0, :, :4] = 200  # image 0: left half bright, so its half-size copy is too
    chosen = torch.tensor([True, False, False, False, True])
    out = data.mosaic(pixels, chosen)
    assert torch.equal(out[1:4], pixels[1:4])  # not chosen: untouched
    first = out[0, :, :, 0]
    assert first[:4, :2].eq(200).all() and first[:4, 2:4].eq(0).all()  # image 0, shrunk
    assert first[:4, 4:].eq(40).all() and first[4:, :4].eq(80).all() and first[4:, 4:].eq(120).all()
    last = out[4, :, :, 0]  # wraps around: 4, 0, 1, 2
    assert last[:4, :4].eq(160).all() and last[4:, :4].eq(40).all() and last[4:, 4:].eq(80).all()


def test_mosaic_share_is_seeded_and_zero_means_the_study_recipe():
    images = torch.randint(0, 255, (32, 16, 16, 3), dtype=torch.uint8)
    plain = list(data.train_batches(images, 8, seed=0, epoch_key=1))
    again = list(data.train_batches(images, 8, seed=0, epoch_key=1, mosaic_share=0.5))
    twice = list(data.train_batches(images, 8, seed=0, epoch_key=1, mosaic_share=0.5))
    changed = sum(int((a[0] != b[0]).flatten(1).any(1).sum()) for a, b in zip(plain, again))
    assert 8 <= changed <= 24  # about half of the 32 images
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, twice))
