"""The training run: the preset's stages in order, an epoch at a time, resumable, DDP-aware.

``train(settings)`` is the whole of ``facecolor-train PRESET``: resolve the device, join the
process group under torchrun, open (or resume) RUN_DIR, decode the data once, then for each
stage of the plan run its epochs. After every epoch rank 0 validates, appends one entry to
``metrics.json`` and rewrites ``resume.pt``; at the end it writes the checkpoint, the two plots
and the contact sheet. Nothing here prints: progress goes to the ``facecolor.train`` logger
and tqdm (stderr), and the result comes back as a ``RunResult`` for the CLI to report.

Each stage starts with fresh Adam optimizers (as the study trains each stage as a new fit);
an interrupted stage continues with the optimizer state saved at its last finished epoch.
On CUDA, losses stay on the device and are read once per epoch (and every ``POSTFIX_EVERY``
steps when a progress bar is showing), so steps queue without host syncs.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facecolor.checkpoint import read_checkpoint, save_checkpoint
from facecolor.files import write_json
from facecolor.models import Preset, build_discriminator, build_generator, get_preset
from facecolor.train import distributed, report
from facecolor.train.data import ImageSet, count_batches, load_images, train_batches
from facecolor.train.distributed import World, detect_world
from facecolor.train.ema import WeightAverage
from facecolor.train.errors import InitCheckpointError, NoImagesError, ResumeMismatchError
from facecolor.train.resume import RESUME_NAME, ResumeState, rng_state, set_rng_state
from facecolor.train.settings import TrainSettings, resolve_device, resolved
from facecolor.train.steps import STEPS, LossMeter, Nets
from facecolor.train.validate import colorize, score, validate

log = logging.getLogger("facecolor.train")

#: Steps between progress-bar loss updates (each one reads losses back from the device).
POSTFIX_EVERY = 25
#: Stages that need the discriminator.
D_STAGES = frozenset({"pretrain_d", "gan"})


@dataclass(frozen=True)
class StagePlan:
    """One stage of a run and how many epochs it trains."""

    name: str
    epochs: int


@dataclass
class RunResult:
    """What a ``train`` call did, for the CLI's closing report (files only on rank 0)."""

    out: Path
    preset: str
    finished: bool
    already_finished: bool = False
    epochs_run: int = 0
    seconds: float = 0.0
    checkpoint: Path | None = None
    files: list[Path] = field(default_factory=list)
    throughput: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    device: str = ""
    amp: str = "off"
    world_size: int = 1


def plan_stages(preset: Preset, settings: TrainSettings) -> list[StagePlan]:
    """The preset's stages with their epochs; ``--d-epochs 0`` drops pretrain_d.

    ``--init`` hands over a pretrained G, so pretrain_g is dropped when a later stage trains
    it further; for an L1-only preset (psag) pretrain_g is all there is, and ``--init`` then
    continues it (for example at a lower learning rate with a moving average of G).
    """
    continues_g = tuple(preset.stages) == ("pretrain_g",)
    plan = []
    for stage in preset.stages:
        if stage == "pretrain_g" and settings.init is not None and not continues_g:
            continue
        epochs = settings.d_epochs if stage == "pretrain_d" else settings.epochs
        if epochs > 0:
            plan.append(StagePlan(stage, epochs))
    return plan


def skipped_stages(preset: Preset, plan: list[StagePlan]) -> list[str]:
    """Stages of the preset that this run leaves out (and why is in the recipe's settings)."""
    kept = {stage.name for stage in plan}
    return [stage for stage in preset.stages if stage not in kept]


def train(
    settings: TrainSettings,
    *,
    restart: bool = False,
    stop_after_epochs: int | None = None,
    world: World | None = None,
) -> RunResult:
    """Run (or continue) the training run ``settings`` describes. See the module docstring.

    ``restart`` discards a resume state in RUN_DIR; ``stop_after_epochs`` ends this call
    after that many epochs as an interruption would (for tests and time-boxed jobs).
    """
    world = world or detect_world()
    device = resolve_device(settings.device, world.local_rank)
    settings = resolved(settings, device)
    preset = get_preset(settings.preset)
    plan = plan_stages(preset, settings)
    distributed.start(world, device)
    try:
        return Trainer(settings, preset, plan, world, device).run(restart, stop_after_epochs)
    finally:
        distributed.stop()


class Trainer:
    """One run's state: settings, data, networks, history. Built and driven by ``train``."""

    def __init__(
        self, settings: TrainSettings, preset: Preset, plan: list[StagePlan], world: World, device: torch.device
    ) -> None:
        self.settings = settings
        self.preset = preset
        self.plan = plan
        self.world = world
        self.device = device
        self.out = Path(settings.out)
        self.channels_last = device.type == "cuda"
        self.history: list[dict[str, Any]] = []
        self.ema: WeightAverage | None = None
        self.init_info: dict[str, Any] | None = None
        self.time_limited: dict[str, Any] | None = None

    # ----------------------------------------------------------------------- the run

    def run(self, restart: bool, stop_after_epochs: int | None) -> RunResult:
        started = time.perf_counter()
        state = self._open_run_dir(restart)
        if state.finished:
            return self._already_finished(state)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
        torch.manual_seed(self.settings.seed)
        self.train_set, self.val_set = self._load_data()
        self._build_models(state)
        self.history = list(state.history)
        epochs_run = 0
        deadline = started + 60 * self.settings.max_minutes if self.settings.max_minutes else None
        for index, stage in enumerate(self.plan):
            first = state.epoch if index == state.stage_index else 0
            if index < state.stage_index or first >= stage.epochs:
                continue
            nets = self._stage_nets(stage, state.tensors if first > 0 and index == state.stage_index else None)
            for epoch in range(first + 1, stage.epochs + 1):
                self._run_epoch(index, stage, epoch, nets)
                epochs_run += 1
                last = index == len(self.plan) - 1 and epoch == stage.epochs
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs and not last:
                    log.info(f"stopped after {epochs_run} epoch(s) as asked; rerun to continue")
                    return self._result(False, epochs_run, started)
                if not last and self._past_deadline(deadline):
                    self.time_limited = {"stage": stage.name, "epoch": epoch, "of": stage.epochs,
                                         "max_minutes": self.settings.max_minutes}
                    log.info(f"--max-minutes {self.settings.max_minutes:g} reached after "
                             f"{stage.name} epoch {epoch}/{stage.epochs}; writing the final outputs")
                    break
            if self.time_limited:
                break
        files = self._finish(started)
        return self._result(True, epochs_run, started, files)

    def _past_deadline(self, deadline: float | None) -> bool:
        """Whether the time budget is spent, agreed by all ranks (rank 0's clock decides)."""
        if deadline is None:
            return False
        flag = torch.tensor([float(self.world.is_main and time.perf_counter() > deadline)])
        if self.world.distributed:
            flag = distributed.all_reduce_sum(flag.to(self.device)).cpu()
        return bool(flag.item() > 0)

    def _open_run_dir(self, restart: bool) -> ResumeState:
        """A fresh state, or the saved one when its recipe matches (else ResumeMismatchError)."""
        path = self.out / RESUME_NAME
        if self.world.is_main:
            if restart:
                path.unlink(missing_ok=True)
            self.out.mkdir(parents=True, exist_ok=True)
        distributed.barrier()
        if not path.is_file():
            if self.world.is_main:
                self.settings.write_json(self.out / "settings.json", world_size=self.world.size)
            return ResumeState(self.settings.to_dict())
        state = ResumeState.load(path)
        differences = self.settings.recipe_differences(state.settings)
        if differences:
            listed = "; ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in differences.items())
            raise ResumeMismatchError(
                f"{self.out} holds a run with other settings ({listed}); rerun with the same "
                "settings to continue it, pass --restart to discard it, or choose another --out"
            )
        if not state.finished:
            done = self.plan[state.stage_index].name if state.stage_index < len(self.plan) else "?"
            log.info(f"resuming {self.out}: {state.epoch} epoch(s) of {done} already done")
        return state

    def _already_finished(self, state: ResumeState) -> RunResult:
        checkpoint = self.out / f"{self.preset.name}.safetensors"
        if not checkpoint.is_file():
            raise ResumeMismatchError(
                f"{self.out} records a finished run but {checkpoint.name} is missing; pass "
                "--restart to train again"
            )
        metrics = state.history[-1].get("val", {}) if state.history else {}
        return RunResult(self.out, self.preset.name, True, already_finished=True,
                         checkpoint=checkpoint, files=[checkpoint], final_metrics=metrics)

    def _result(self, finished: bool, epochs_run: int, started: float, files=None) -> RunResult:
        checkpoint = self.out / f"{self.preset.name}.safetensors" if finished else None
        return RunResult(
            self.out, self.preset.name, finished, epochs_run=epochs_run,
            seconds=time.perf_counter() - started,
            checkpoint=checkpoint if self.world.is_main else None,
            files=list(files or []), throughput=self._throughput(),
            final_metrics=getattr(self, "final_metrics", {}),
            device=str(self.device), amp=self.settings.amp, world_size=self.world.size,
        )

    # ----------------------------------------------------------------------- set-up

    def _load_data(self) -> tuple[ImageSet, ImageSet | None]:
        """Rank 0 first (it fills the on-disk cache); the other ranks then read the cache."""
        s = self.settings

        def load_train() -> ImageSet:
            return load_images(s.data, s.render_size, limit=s.limit, seed=s.seed,
                               workers=s.workers, cache_dir=s.cache_dir)

        early = self.world.is_main or s.cache_dir is None
        train_set = load_train() if early else None
        val_set = None
        if self.world.is_main:
            val_set = load_images([s.val], s.render_size, limit=s.val_limit, seed=s.seed,
                                  workers=s.workers, cache_dir=s.cache_dir)
        distributed.barrier()
        train_set = train_set or load_train()
        if count_batches(len(train_set), s.batch_size, self.world.size) == 0:
            raise NoImagesError(
                f"{len(train_set)} training images make no batch of at least 2 per process "
                f"({self.world.size} process(es)); add images or raise --limit"
            )
        return train_set, val_set

    def _build_models(self, state: ResumeState) -> None:
        """Generator (fresh or from --init), discriminator if a stage needs one, DDP wrappers."""
        generator = self._initial_generator()
        needs_d = any(stage.name in D_STAGES for stage in self.plan)
        discriminator = build_discriminator(width=self.settings.width) if needs_d else None
        if state.tensors:
            generator.load_state_dict(state.tensors["generator"])
            if discriminator is not None and state.tensors.get("discriminator"):
                discriminator.load_state_dict(state.tensors["discriminator"])
            set_rng_state(state.tensors.get("rng", {}))
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator = generator.to(self.device, memory_format=memory_format)
        self.discriminator = None
        if discriminator is not None:
            self.discriminator = discriminator.to(self.device, memory_format=memory_format)
        if self.settings.ema_decay is not None:
            self.ema = WeightAverage(self.generator, self.settings.ema_decay)
            if state.tensors.get("ema"):
                self.ema.load_state_dict(state.tensors["ema"])
        self.g_train = distributed.wrap(self.generator, self.world, self.device)
        self.d_train = (distributed.wrap(self.discriminator, self.world, self.device)
                        if self.discriminator is not None else None)
        self.images = self.train_set.images.to(self.device)

    def _initial_generator(self) -> nn.Module:
        s = self.settings
        if s.init is None:
            return build_generator(s.preset, render_size=s.render_size, width=s.width,
                                   encoder_weights=s.encoder_weights)
        checkpoint = read_checkpoint(s.init)
        generator = build_generator(s.preset, render_size=s.render_size, width=s.width)
        state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()}
        try:
            generator.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise InitCheckpointError(
                f"--init {s.init} holds a {checkpoint.preset!r} generator (width "
                f"{checkpoint.model_config.get('width')}) that does not fit {s.preset!r} at width "
                f"{s.width}: {str(error).splitlines()[0]}; use a checkpoint of the same generator "
                "(psag, gpsag and gpsagd share one) and the same --width"
            ) from error
        inherited = {key: checkpoint.model_config[key]
                     for key in ("encoder_weights", "encoder_weights_file") if key in checkpoint.model_config}
        generator.config = {**generator.config, "encoder_weights": "random", **inherited}
        self.init_info = {"checkpoint": str(s.init), "preset": checkpoint.preset,
                          "metrics": checkpoint.metrics}
        return generator

    def _stage_nets(self, stage: StagePlan, saved: dict[str, Any] | None) -> Nets:
        """Fresh Adam optimizers for the networks this stage trains (or their saved state)."""
        s = self.settings

        def adam(module: nn.Module) -> torch.optim.Optimizer:
            # fused: one kernel per step on CUDA instead of one per parameter tensor group
            return torch.optim.Adam(module.parameters(), lr=s.lr, betas=(s.beta1, s.beta2),
                                    fused=self.device.type == "cuda")

        trains_g, trains_d = stage.name in ("pretrain_g", "gan"), stage.name in D_STAGES
        nets = Nets(self.g_train, self.d_train, self.device, s.amp,
                    opt_g=adam(self.generator) if trains_g else None,
                    opt_d=adam(self.discriminator) if trains_d else None)
        if saved:
            for name in ("opt_g", "opt_d", "scaler_g", "scaler_d"):
                target = getattr(nets, name)
                if target is not None and saved.get(name):
                    target.load_state_dict(saved[name])
        return nets

    # ----------------------------------------------------------------------- epochs

    def _scored_generator(self) -> nn.Module:
        """The weights that are validated and saved: the average when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    def _run_epoch(self, index: int, stage: StagePlan, epoch: int, nets: Nets) -> None:
        losses, images, seconds = self._train_epoch(index, stage, epoch, nets)
        entry: dict[str, Any] = {
            "stage": stage.name, "epoch": epoch, "epochs": stage.epochs, "losses": losses,
            "images": images, "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 2) if seconds > 0 else None,
        }
        if self.world.is_main:
            started = time.perf_counter()
            def scores(generator: nn.Module) -> dict[str, Any]:
                return validate(generator, self.val_set.images, self.device,
                                batch_size=max(64, self.settings.batch_size), autocast=nets.autocast,
                                workers=self.settings.workers)

            entry["val"] = scores(self._scored_generator())
            if self.ema is not None:  # the last step's weights too, to show what averaging changes
                entry["val_live"] = scores(self.generator)
            entry["val_seconds"] = round(time.perf_counter() - started, 3)
            self.history.append(entry)
            self._save_state(index, epoch, nets)
            self._write_metrics(finished=False)
            log.info(_epoch_line(entry))
        else:
            self.history.append(entry)
        distributed.barrier()

    def _train_epoch(self, index: int, stage: StagePlan, epoch: int, nets: Nets) -> tuple[dict, int, float]:
        """One pass over this rank's shard; losses averaged over all ranks, images counted on all."""
        from tqdm import tqdm

        s = self.settings
        self.generator.train(stage.name != "pretrain_d")  # D pretraining uses G's eval-mode fakes
        if self.discriminator is not None:
            self.discriminator.train()
        step, meter = STEPS[stage.name], LossMeter()
        batches = train_batches(self.images, s.batch_size, seed=s.seed, epoch_key=index * 10_000 + epoch,
                                rank=self.world.rank, world_size=self.world.size, flip=s.flip,
                                channels_last=self.channels_last, mosaic_share=s.mosaic)
        total = count_batches(len(self.images), s.batch_size, self.world.size)
        show = s.progress and self.world.is_main and sys.stderr.isatty()
        bar = tqdm(batches, total=total, desc=f"{stage.name} {epoch}/{stage.epochs}", unit="batch",
                   file=sys.stderr, leave=False, disable=not show)
        started, images = time.perf_counter(), 0
        for number, (l_norm, ab_norm) in enumerate(bar):
            losses = step(nets, l_norm, ab_norm, s.l1_weight)
            if self.ema is not None and nets.opt_g is not None:
                self.ema.update()
            meter.add(losses)
            images += l_norm.shape[0]
            if show and number % POSTFIX_EVERY == 0:
                bar.set_postfix({k: f"{v.item():.3f}" for k, v in losses.items()})
        bar.close()
        means = meter.means(distributed.all_reduce_sum if self.world.distributed else None)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return means, images * self.world.size, time.perf_counter() - started

    def _save_state(self, index: int, epoch: int, nets: Nets) -> None:
        tensors = {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else {},
            "rng": rng_state(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
        }
        for name in ("opt_g", "opt_d", "scaler_g", "scaler_d"):
            target = getattr(nets, name)
            tensors[name] = target.state_dict() if target is not None else {}
        ResumeState(self.settings.to_dict(), index, epoch, False, self.history, tensors).save(
            self.out / RESUME_NAME
        )

    # ----------------------------------------------------------------------- outputs

    def _throughput(self) -> dict[str, float]:
        """Mean images/s of each stage over its epochs (of this and earlier invocations)."""
        rates: dict[str, list[float]] = {}
        for entry in self.history:
            if entry.get("images_per_s"):
                rates.setdefault(entry["stage"], []).append(entry["images_per_s"])
        return {stage: round(sum(v) / len(v), 2) for stage, v in rates.items()}

    def _epochs_trained(self) -> dict[str, int]:
        """Epochs each stage really trained (fewer than planned when --max-minutes cut in)."""
        trained: dict[str, int] = {}
        for entry in self.history:
            trained[entry["stage"]] = max(trained.get(entry["stage"], 0), entry["epoch"])
        return trained

    def _write_metrics(self, finished: bool) -> Path:
        document = {
            "preset": self.preset.name, "device": self.settings.device, "amp": self.settings.amp,
            "world_size": self.world.size, "finished": finished, "throughput": self._throughput(),
            "final": getattr(self, "final_metrics", {}), "time_limited": self.time_limited,
            "epochs": self.history,
        }
        return write_json(self.out / "metrics.json", document)

    def _finish(self, started: float) -> list[Path]:
        """Rank 0: final validation, checkpoint, metrics, figures; then a slim 'finished' state."""
        files: list[Path] = []
        if self.world.is_main:
            truths = self.val_set.images.numpy()
            predictions = colorize(self._scored_generator(), self.val_set.images, self.device,
                                   batch_size=max(64, self.settings.batch_size))
            rows, means = score(predictions, truths, self.settings.workers)
            self.final_metrics = {k: round(v, 5) for k, v in means.items() if not k.endswith("_std")}
            files.append(self._write_checkpoint(started))
            files.append(self._write_metrics(finished=True))
            files += self._write_figures(predictions, truths, rows)
            ResumeState(self.settings.to_dict(), len(self.plan) - 1, self.plan[-1].epochs,
                        True, self.history).save(self.out / RESUME_NAME)
            files.append(self.out / "settings.json")
        distributed.barrier()
        return files

    def _write_checkpoint(self, started: float) -> Path:
        recipe = {
            "settings": self.settings.to_dict(),
            "stages": [{"stage": p.name, "epochs": p.epochs} for p in self.plan],
            "epochs_trained": self._epochs_trained(),
            "time_limited": self.time_limited,
            "skipped_stages": skipped_stages(self.preset, self.plan),
            "init": self.init_info,
            "optimizer": f"Adam lr={self.settings.lr} betas=({self.settings.beta1}, {self.settings.beta2})",
            "loss": f"G: BCE-with-logits GAN + {self.settings.l1_weight:g} * L1; D: BCE-with-logits",
            "world_size": self.world.size, "torch": torch.__version__,
            "train_seconds": round(sum(e["seconds"] for e in self.history), 1),
            "wall_seconds_this_call": round(time.perf_counter() - started, 1),
        }
        data = {
            "train": self.train_set.describe(), "val": self.val_set.describe(),
            "split": "training images from --data, validation images from --val (separate folders)",
        }
        metrics = {"val": self.final_metrics, "val_images": len(self.val_set),
                   "render_size": self.settings.render_size, "throughput": self._throughput()}
        generator = self._scored_generator()
        return save_checkpoint(self.out / f"{self.preset.name}.safetensors", generator,
                               generator.config, recipe=recipe, data=data, metrics=metrics)

    def _write_figures(self, predictions: np.ndarray, truths: np.ndarray, rows: list[dict]) -> list[Path]:
        title = f"{self.preset.name}: {self.preset.description}"
        files = [report.plot_losses(self.history, self.out / "loss.png", title),
                 report.plot_val_psnr(self.history, self.out / "val_psnr.png", title)]
        count = min(self.settings.contact_images, len(truths))
        if count:
            picks = report.spread_picks(len(truths), count)
            gray = colorize(None, self.val_set.images[picks], self.device)
            files.append(report.contact_sheet(
                gray, [(self.preset.name, predictions[picks], [rows[i] for i in picks])], truths[picks],
                self.out / "contact_sheet.png",
                title=f"{self.preset.name} on {Path(self.settings.val).name} "
                      f"({self.settings.render_size} px): gray input / result / original"))
        return files


def _epoch_line(entry: dict[str, Any]) -> str:
    """One log line per epoch: losses, validation metrics, throughput."""
    losses = " ".join(f"{k} {v:.4f}" for k, v in entry["losses"].items())
    val = entry.get("val") or {}
    text = f"{entry['stage']} epoch {entry['epoch']}/{entry['epochs']}: {losses}"
    if val:
        text += f" | val PSNR {val['psnr']:.2f} Hist {val['hist']:.4f} CIEDE2000 {val['ciede2000']:.2f}"
    if entry.get("val_live"):
        text += f" (last step's weights: PSNR {entry['val_live']['psnr']:.2f})"
    rate = entry.get("images_per_s")
    return text + f" | {rate or 0:.1f} img/s, {entry['seconds']:.1f} s"
