"""--ema-decay: the averaged generator is what a run validates, saves and resumes."""

from __future__ import annotations

import json

import torch
from train_testkit import invoke, train_args

from facecolor.checkpoint import read_checkpoint
from facecolor.models import build_generator
from facecolor.train.ema import WeightAverage
from facecolor.train.resume import ResumeState


def test_average_moves_a_step_towards_the_live_weights_and_keeps_counters():
    torch.manual_seed(0)
    live = build_generator("psag", render_size=32, width=0.125)
    average = WeightAverage(live, decay=0.75)
    before = {k: v.clone() for k, v in average.state_dict().items()}
    with torch.no_grad():
        for parameter in live.parameters():
            parameter.add_(1.0)
    live.train()(torch.zeros(2, 1, 32, 32))  # moves BatchNorm statistics and counters
    average.update()
    key = next(k for k, v in live.state_dict().items() if k.endswith("weight"))
    assert torch.allclose(average.state_dict()[key], before[key] + 0.25, atol=1e-6)
    counter = next(k for k in before if k.endswith("num_batches_tracked"))
    assert average.state_dict()[counter] == live.state_dict()[counter]
    assert not any(p.requires_grad for p in average.module.parameters())
    assert average.module.config == live.config


def test_ema_run_saves_the_average_and_reports_both(tiny_data, tmp_path):
    out = tmp_path / "gpsag"
    args = train_args("gpsag", tiny_data, out, "--ema-decay", "0.5", "--epochs", "2")
    first = invoke([*args, "--stop-after-epochs", "1"])
    assert first.exit_code == 0, first.output
    assert "last step's weights: PSNR" in first.output
    state = ResumeState.load(out / "resume.pt")
    assert state.tensors["ema"] and not all(
        torch.equal(state.tensors["ema"][k], v) for k, v in state.tensors["generator"].items())
    result = invoke(args)  # resumes with the saved average
    assert result.exit_code == 0 and "resuming" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert all("val_live" in epoch for epoch in metrics["epochs"])
    checkpoint = read_checkpoint(out / "gpsag.safetensors")
    assert checkpoint.recipe["settings"]["ema_decay"] == 0.5
    assert checkpoint.metrics["val"]["psnr"] == metrics["final"]["psnr"]
