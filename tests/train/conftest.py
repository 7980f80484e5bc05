"""Shared fixtures for the training tests: a tiny synthetic data set and one finished run.

Everything is tiny on purpose (32 px images, width-0.125 networks, batch 4, one epoch per
stage) so the whole folder runs in well under two minutes on two CPU cores.

torch runs single-threaded here: for networks this small a second thread buys nothing, and on
a shared machine OpenMP's spinning threads made each step 10-20x slower (measured: 0.1 s vs
1.2-2.5 s per GAN step at load 14 on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_testkit import invoke, synthetic_faces, train_args

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """12 training images plus a broken JPEG and a text file; 4 validation images."""
    root = tmp_path_factory.mktemp("faces")
    synthetic_faces(root / "train", 12, seed=1)
    (root / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "train" / "notes.txt").write_text("not an image\n")
    synthetic_faces(root / "val", 4, seed=2)
    return {"train": root / "train", "val": root / "val", "root": root}


@pytest.fixture(scope="session")
def gpsagd_run(tmp_path_factory, tiny_data):
    """One finished gpsagd run (all three stages) shared by the output tests."""
    out = tmp_path_factory.mktemp("runs") / "gpsagd"
    result = invoke(train_args("gpsagd", tiny_data, out))
    assert result.exit_code == 0, result.output
    return out, result
