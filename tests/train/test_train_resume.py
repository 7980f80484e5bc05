"""Resume after an interruption: finished epochs are kept, never repeated, and the run completes."""

from __future__ import annotations

import json

import pytest
import torch
from train_testkit import invoke, train_args

from facecolor.train.resume import ResumeState


def _stages_and_epochs(out):
    metrics = json.loads((out / "metrics.json").read_text())
    return [(e["stage"], e["epoch"]) for e in metrics["epochs"]], metrics


def test_interrupted_run_continues_where_it_stopped(tiny_data, tmp_path):
    out = tmp_path / "gu"
    args = train_args("gu", tiny_data, out, "--epochs", "2")
    first = invoke([*args, "--stop-after-epochs", "1"])
    assert first.exit_code == 0 and "stopped after 1 epoch" in first.output
    assert not (out / "gu.safetensors").exists()
    state = ResumeState.load(out / "resume.pt")
    assert (state.stage_index, state.epoch, state.finished) == (0, 1, False)
    assert {"generator", "opt_g", "rng"} <= set(state.tensors)
    assert _stages_and_epochs(out)[0] == [("pretrain_g", 1)]

    second = invoke([*args, "--stop-after-epochs", "2"])  # pretrain_g 2, gan 1; then stops
    assert second.exit_code == 0 and "resuming" in second.output
    assert _stages_and_epochs(out)[0] == [("pretrain_g", 1), ("pretrain_g", 2), ("gan", 1)]
    assert ResumeState.load(out / "resume.pt").tensors["opt_d"]  # the GAN stage's D optimizer

    third = invoke(args)
    assert third.exit_code == 0, third.output
    epochs, metrics = _stages_and_epochs(out)
    assert epochs == [("pretrain_g", 1), ("pretrain_g", 2), ("gan", 1), ("gan", 2)]
    assert metrics["finished"] and (out / "gu.safetensors").is_file()
    finished = ResumeState.load(out / "resume.pt")
    assert finished.finished and not finished.tensors  # the finished marker holds no weights
    assert "already holds a finished gu run" in invoke(args).output


def test_restart_discards_the_saved_state(tiny_data, tmp_path):
    out = tmp_path / "pug"
    args = train_args("pug", tiny_data, out, "--epochs", "2")
    assert invoke([*args, "--stop-after-epochs", "1"]).exit_code == 0
    result = invoke([*args, "--restart", "--stop-after-epochs", "1"])
    assert result.exit_code == 0 and "resuming" not in result.output
    assert _stages_and_epochs(out)[0] == [("pretrain_g", 1)]


def test_resume_state_is_loaded_without_unpickling_objects(tmp_path):
    path = tmp_path / "resume.pt"
    torch.save({"format": 1, "evil": object()}, path)
    from facecolor.train.errors import ResumeMismatchError

    with pytest.raises(ResumeMismatchError, match="--restart"):
        ResumeState.load(path)


def test_resumed_run_matches_an_uninterrupted_one(tiny_data, tmp_path):
    from facecolor.checkpoint import read_checkpoint

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert invoke(train_args("pug", tiny_data, straight, "--epochs", "2")).exit_code == 0
    args = train_args("pug", tiny_data, resumed, "--epochs", "2")
    assert invoke([*args, "--stop-after-epochs", "1"]).exit_code == 0
    assert invoke(args).exit_code == 0
    a = read_checkpoint(straight / "pug.safetensors").state_dict
    b = read_checkpoint(resumed / "pug.safetensors").state_dict
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_run_saved_before_an_option_existed_resumes_with_its_default():
    from facecolor.train.settings import TrainSettings

    settings = TrainSettings(preset="psag", data=("a",), val="v", out="o")
    older = {k: v for k, v in settings.to_dict().items() if k not in ("mosaic", "ema_decay")}
    assert settings.recipe_differences(older) == {}
    changed = TrainSettings(preset="psag", data=("a",), val="v", out="o", mosaic=0.25)
    assert changed.recipe_differences(older) == {"mosaic": (0.0, 0.25)}
