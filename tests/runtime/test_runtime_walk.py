"""walk: which files become jobs, where their outputs go, what is skipped and why."""

from __future__ import annotations

import os

import pytest

from facecolor.runtime.storage import Storage
from facecolor.runtime.walk import FAILED, OUTPUT_EXISTS, SKIPPED, list_jobs, sniff_format

from runtime_helpers import encode_cv2, portrait


def walk(in_dir, out_dir, out_format="keep", **kw):
    return list_jobs(Storage(in_dir), Storage(out_dir), out_format, **kw)


def jobs_by_path(in_dir, out_dir, **kw):
    return {str(job.relative): job for job in walk(in_dir, out_dir, **kw)}


def test_odd_tree_jobs(odd_tree, tmp_path):
    root, expect = odd_tree
    jobs = jobs_by_path(root, tmp_path / "out")
    assert "notes.txt" not in jobs  # not an image by name or content: ignored
    assert set(jobs) == {name for name, outcome in expect.items() if outcome != "ignored"}
    assert jobs["link-outside.jpg"].status == SKIPPED
    assert "outside" in jobs["link-outside.jpg"].reason
    assert jobs["animated.gif"].status == SKIPPED and jobs["animated.gif"].reason.startswith("GIF is not read")
    assert jobs["sub dir/link-inside.jpg"].status is None
    assert jobs["no-extension"].out_format == "jpeg"  # by content
    assert jobs["png-named.jpg"].out_format == "jpeg"  # by name: the output matches its name
    assert jobs["sub dir/deeper/日本 写真.png"].target == tmp_path / "out" / "sub dir" / "deeper" / "日本 写真.png"


def test_order_is_deterministic_files_first(tmp_path):
    (tmp_path / "in" / "a").mkdir(parents=True)
    for name in ["b.jpg", "a/c.jpg", "a.jpg"]:
        (tmp_path / "in" / name).write_bytes(encode_cv2(portrait(8, 8), ".jpg"))
    order = [str(job.relative) for job in walk(tmp_path / "in", tmp_path / "out")]
    assert order == ["a.jpg", "b.jpg", "a/c.jpg"]


def test_out_inside_in_is_never_read(tmp_path):
    root = tmp_path / "in"
    (root / "out" / "x").mkdir(parents=True)
    (root / "a.jpg").write_bytes(encode_cv2(portrait(8, 8), ".jpg"))
    (root / "out" / "x" / "old.jpg").write_bytes(encode_cv2(portrait(8, 8), ".jpg"))
    assert [str(j.relative) for j in walk(root, root / "out")] == ["a.jpg"]


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir(), out.mkdir()
    (root / "a.jpg").write_bytes(encode_cv2(portrait(8, 8), ".jpg"))
    (out / "a.jpg").write_bytes(b"done before")
    (job,) = walk(root, out)
    assert (job.status, job.reason) == (SKIPPED, OUTPUT_EXISTS)
    (job,) = walk(root, out, overwrite=True)
    assert job.status is None


def test_format_changes_suffix_and_detects_collisions(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ["a.png", "a.tif", "b.png"]:
        (root / name).write_bytes(encode_cv2(portrait(8, 8), ".png"))
    jobs = list(walk(root, tmp_path / "out", "jpg"))
    assert [(str(j.relative), j.target.name, j.out_format, j.status) for j in jobs] == [
        ("a.png", "a.jpg", "jpeg", None),
        ("a.tif", "a.jpg", "jpeg", FAILED),
        ("b.png", "b.jpg", "jpeg", None),
    ]
    assert "a.png" in jobs[1].reason


def test_folder_symlinks_are_not_followed(tmp_path):
    root = tmp_path / "in"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(encode_cv2(portrait(8, 8), ".jpg"))
    os.symlink(root, root / "loop")  # would recurse forever if followed
    jobs = jobs_by_path(root, tmp_path / "out")
    assert set(jobs) == {"loop", "real/a.jpg"}
    assert jobs["loop"].status == SKIPPED


@pytest.mark.parametrize(
    "head, fmt",
    [
        (b"\xff\xd8\xff\xe0rest", "jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"II*\x00rest", "tiff"),
        (b"MM\x00*rest", "tiff"),
        (b"BMrest", "bmp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_sniff(head, fmt):
    assert sniff_format(head) == fmt
