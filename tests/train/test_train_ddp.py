"""DDP: two CPU processes under torchrun (gloo) train on a tiny set; rank 0 writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from train_testkit import TINY

from facecolor.checkpoint import load_generator
from facecolor.train.distributed import World, detect_world


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_detect_world_reads_torchrun_variables():
    assert detect_world({}) == World(1, 0, 0)
    world = detect_world({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert world == World(4, 3, 1) and world.distributed and not world.is_main


def test_two_processes_under_torchrun(tiny_data, tmp_path):
    out = tmp_path / "gu"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "facecolor.train", "gu", "--data", str(tiny_data["train"]), "--val", str(tiny_data["val"]),
        "--out", str(out), "--device", "cpu", *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("trained gu") == 1  # only rank 0 reports
    assert "2 process(es)" in done.stdout
    generator, checkpoint = load_generator(out / "gu.safetensors", "cpu")
    assert checkpoint.recipe["world_size"] == 2
    assert not any(key.startswith("module.") for key in checkpoint.state_dict)  # the plain module
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["epochs"]] == ["pretrain_g", "gan"]
    assert all(e["images"] == 12 for e in metrics["epochs"])  # 6 per rank, both counted
