"""A whole gpsagd run on the tiny set: every stage, every file of RUN_DIR, --init, reruns."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from train_testkit import invoke, train_args

from facecolor.checkpoint import load_generator, read_checkpoint
from facecolor.train.settings import cpu_has_native_bf16


def test_run_writes_every_artifact(gpsagd_run):
    out, result = gpsagd_run
    for name in ("gpsagd.safetensors", "metrics.json", "settings.json", "loss.png", "val_psnr.png",
                 "contact_sheet.png", "resume.pt"):
        assert (out / name).is_file(), name
    for name in ("loss.png", "val_psnr.png", "contact_sheet.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG"
    assert "throughput: pretrain_g" in result.output and "img/s" in result.output
    assert "facecolor-export" in result.output  # the next command
    assert "skipped 1 broken: broken.jpg" in result.output and "notes.txt" in result.output


def test_metrics_json_has_one_entry_per_epoch_of_every_stage(gpsagd_run):
    out, _ = gpsagd_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and [e["stage"] for e in metrics["epochs"]] == ["pretrain_g", "pretrain_d", "gan"]
    for entry in metrics["epochs"]:
        assert entry["epoch"] == 1 and entry["images"] == 12
        assert entry["images_per_s"] > 0 and entry["seconds"] > 0
        assert set(entry["val"]) == {"psnr", "hist", "ciede2000"}
    assert set(metrics["epochs"][0]["losses"]) == {"l1"}
    assert set(metrics["epochs"][1]["losses"]) == {"d", "d_real", "d_fake"}
    assert set(metrics["epochs"][2]["losses"]) == {"d", "d_real", "d_fake", "g", "g_gan", "l1"}
    assert set(metrics["throughput"]) == {"pretrain_g", "pretrain_d", "gan"}
    assert {"psnr", "hist", "ciede2000", "colorfulness_pred"} <= set(metrics["final"])


def test_checkpoint_loads_and_records_recipe_and_data(gpsagd_run):
    out, _ = gpsagd_run
    generator, checkpoint = load_generator(out / "gpsagd.safetensors", "cpu")
    assert generator(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    assert checkpoint.preset == "gpsagd" and checkpoint.render_size == 32
    recipe = checkpoint.recipe
    assert [s["stage"] for s in recipe["stages"]] == ["pretrain_g", "pretrain_d", "gan"]
    assert recipe["settings"]["batch_size"] == 4 and recipe["init"] is None
    assert checkpoint.data["train"]["images"] == 12 and checkpoint.data["train"]["broken"] == 1
    assert checkpoint.data["val"]["images"] == 4
    assert checkpoint.metrics["val"]["psnr"] > 0


def test_settings_json_is_the_resolved_dataclass(gpsagd_run):
    out, _ = gpsagd_run
    settings = json.loads((out / "settings.json").read_text())["settings"]
    expected_amp = "bf16" if cpu_has_native_bf16() else "off"  # --amp auto on this CPU
    assert settings["preset"] == "gpsagd" and settings["device"] == "cpu" and settings["amp"] == expected_amp


def test_rerun_of_a_finished_run_says_so(gpsagd_run, tiny_data):
    out, _ = gpsagd_run
    result = invoke(train_args("gpsagd", tiny_data, out))
    assert result.exit_code == 0 and "already holds a finished gpsagd run" in result.output


def test_rerun_with_other_settings_is_refused(gpsagd_run, tiny_data):
    out, _ = gpsagd_run
    args = train_args("gpsagd", tiny_data, out)
    args[args.index("--batch-size") + 1] = "6"
    result = invoke(args)
    assert result.exit_code == 1 and "batch_size: 4 then, 6 now" in result.output and "--restart" in result.output


def test_init_skips_g_pretraining_starts_from_its_weights_and_is_recorded(
    gpsagd_run, tiny_data, tmp_path, monkeypatch
):
    from facecolor.train import trainer

    out, _ = gpsagd_run
    source = out / "gpsagd.safetensors"
    seen = {}
    real_stage_nets = trainer.Trainer._stage_nets

    def spy(self, stage, saved):  # the generator's weights as the first stage starts
        seen.setdefault("weights", {k: v.clone() for k, v in self.generator.state_dict().items()})
        return real_stage_nets(self, stage, saved)

    monkeypatch.setattr(trainer.Trainer, "_stage_nets", spy)
    args = train_args("gpsag", tiny_data, tmp_path / "gpsag", "--init", source)
    for flag in ("--width", "--render-size"):  # without them: the --init checkpoint's
        position = args.index(flag)
        del args[position : position + 2]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "gpsag" / "metrics.json").read_text())
    assert [e["stage"] for e in metrics["epochs"]] == ["gan"]
    checkpoint = read_checkpoint(tmp_path / "gpsag" / "gpsag.safetensors")
    assert checkpoint.recipe["init"]["checkpoint"] == str(source)
    assert checkpoint.recipe["init"]["preset"] == "gpsagd"
    assert checkpoint.recipe["skipped_stages"] == ["pretrain_g"]
    assert checkpoint.render_size == 32 and checkpoint.model_config["width"] == 0.125
    initial = read_checkpoint(source).state_dict
    assert all(np.allclose(seen["weights"][k].numpy(), v.numpy()) for k, v in initial.items())


def test_max_minutes_stops_early_and_still_writes_a_complete_run(tiny_data, tmp_path):
    out = tmp_path / "timed"
    args = train_args("pug", tiny_data, out, "--max-minutes", "0.0001")
    args[args.index("--epochs") + 1] = "3"
    result = invoke(args)
    assert result.exit_code == 0, result.output
    recipe = read_checkpoint(out / "pug.safetensors").recipe
    assert recipe["epochs_trained"] == {"pretrain_g": 1}
    assert recipe["time_limited"]["epoch"] == 1 and recipe["time_limited"]["of"] == 3
    assert (out / "contact_sheet.png").is_file()
