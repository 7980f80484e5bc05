"""``facecolor-train``: one command per preset (``facecolor-train gpsagd ...``) and ``eval``.

The group resolves its subcommand name against the preset registry, so every registered
preset is a training command with the same options, and ``eval`` prints the study's Table 2.
``facecolor train`` mounts this same group. Library errors become ``click.ClickException``
(``Error: ...``, exit 1); click's own usage errors exit 2; Ctrl-C exits 130 after saying how
to continue.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import click

from facecolor.checkpoint import CheckpointError
from facecolor.files import human_size, sha256_file, write_json
from facecolor.models import PRESETS, EncoderWeightsError, ModelConfigError, Preset
from facecolor.metrics import VIVID_CHROMA, VIVID_LONG_SIDE
from facecolor.models.ncnn_weights import install_squeezenet_weights
from facecolor.train.vivid import measure_folder

EXAMPLE_TRAIN = ("facecolor-train {preset} --data ../shared/data/faces/lfw --data "
                 "../shared/data/faces/utkface --val ../shared/data/faces/ffhq_dev --out runs/{preset}")
DEFAULT_WORKERS = min(8, os.cpu_count() or 1)


class _EchoHandler(logging.Handler):
    """Log records to click's stderr (so they follow CliRunner and never mix with stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _setup_logging(is_main: bool) -> None:
    logger = logging.getLogger("facecolor.train")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
        logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)


def _errors() -> tuple[type[BaseException], ...]:
    """Exceptions that carry a message for the user (turned into ClickException)."""
    from facecolor.metrics import FIDError
    from facecolor.train.errors import TrainError

    return (TrainError, CheckpointError, ModelConfigError, EncoderWeightsError, FileNotFoundError, FIDError)


def _size(path: Path) -> str:
    return human_size(path.stat().st_size if path.is_file() else 0)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


# --------------------------------------------------------------------------- group


class TrainGroup(click.Group):
    """Subcommands are ``eval`` and every preset of ``facecolor.models.PRESETS``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["eval", "groups", "vivid", "import-weights", *PRESETS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "eval":
            return eval_command
        if name == "groups":
            return groups_command
        if name == "vivid":
            return vivid_command
        if name == "import-weights":
            return import_weights_command
        preset = PRESETS.get(name)
        return make_train_command(preset) if preset is not None else None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and self.get_command(ctx, args[0]) is None and not ctx.resilient_parsing:
            raise click.UsageError(
                f"unknown preset {args[0]!r}; choose one of: {', '.join(PRESETS)} (or 'eval', 'groups', 'vivid', 'import-weights')", ctx
            )
        return super().resolve_command(ctx, args)


@click.group(cls=TrainGroup, subcommand_metavar="PRESET|eval [ARGS]...")
def main() -> None:
    """Train a colorization preset (three stages: G pretraining, D pretraining, GAN) or
    evaluate checkpoints.

    Each preset is a subcommand; 'facecolor-train PRESET --help' lists its options.
    A run writes RUN_DIR/PRESET.safetensors, metrics.json, settings.json, loss.png,
    val_psnr.png and contact_sheet.png, and can be resumed by running the same command
    again. Multi-GPU or multi-process: torchrun --nproc_per_node N -m facecolor.train ...

    Example: facecolor-train gpsagd --data faces/lfw --val faces/ffhq_dev --out runs/gpsagd
    """


# --------------------------------------------------------------------------- training


def _train_options(function):
    options = [
        click.option("--data", "data", multiple=True, required=True,
                     type=click.Path(exists=True, file_okay=False),
                     help="Folder of color training images (recursive; repeat for more folders)."),
        click.option("--val", required=True, type=click.Path(exists=True, file_okay=False),
                     help="Folder of color validation images, scored after every epoch."),
        click.option("--out", required=True, type=click.Path(file_okay=False),
                     help="Run folder (RUN_DIR); rerunning with the same folder resumes."),
        click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1),
                     help="Epochs of G pretraining and of GAN training (each)."),
        click.option("--d-epochs", default=1, show_default=True, type=click.IntRange(min=0),
                     help="Epochs of D pretraining (presets ending in 'd'); 0 skips it."),
        click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=2)),
        click.option("--lr", default=2e-4, show_default=True, type=click.FloatRange(min=0, min_open=True),
                     help="Adam learning rate (betas 0.5, 0.999) for G and D."),
        click.option("--l1-weight", default=100.0, show_default=True, type=click.FloatRange(min=0),
                     help="Weight of the L1 term in the GAN stage's generator loss (GAN + w * L1)."),
        click.option("--ema-decay", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
                     help="Validate and save an exponential moving average of G (e.g. 0.999) "
                          "instead of its last step; steadies the GAN stage. Default: off."),
        click.option("--render-size", type=click.IntRange(min=32),
                     help="Training image size in px  [default: 128, or the --init checkpoint's]"),
        click.option("--width", type=click.FloatRange(min=0, min_open=True),
                     help="Decoder/discriminator width multiplier  [default: 1.0, or --init's]"),
        click.option("--limit", type=click.IntRange(min=2),
                     help="Use at most N training images (a seeded, deterministic subset)."),
        click.option("--val-limit", type=click.IntRange(min=1), help="Use at most N validation images."),
        click.option("--init", type=click.Path(exists=True, dir_okay=False),
                     help="Start G from this checkpoint and skip G pretraining (e.g. psag -> gpsagd); "
                          "with psag, continue its L1 training instead."),
        click.option("--encoder-weights", type=click.Path(exists=True, dir_okay=False),
                     help="ImageNet weights (torchvision .pth) for the encoder; default: "
                          "torchvision's cache if present (make weights fills it), else random."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto",
                     show_default=True, help="Mixed precision (auto: bf16 on GPUs and CPUs that support it)."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Keep decoded images here as .npy, so later runs skip decoding."),
        click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=click.IntRange(min=1),
                     help="Decoder threads."),
        click.option("--contact-images", default=8, show_default=True, type=click.IntRange(min=0),
                     help="Validation images on the contact sheet."),
        click.option("--flip/--no-flip", default=True, show_default=True, help="Random horizontal flips."),
        click.option("--mosaic", default=0.0, show_default=True, type=click.FloatRange(0, 1),
                     help="Share of training images replaced by 2x2 mosaics of half-size faces "
                          "(small faces, as in group photos and real portraits)."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Progress bars (only when stderr is a terminal)."),
        click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True),
                     help="Time budget: stop after the first epoch that ends past it and write the "
                          "final outputs (the checkpoint records the epochs trained)."),
        click.option("--restart", is_flag=True, help="Discard RUN_DIR's resume state and train from scratch."),
        click.option("--stop-after-epochs", type=click.IntRange(min=1), hidden=True,
                     help="Stop after N epochs of this call, as an interruption would (tests)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_train_command(preset: Preset) -> click.Command:
    """The training command of one preset (same options for all presets)."""
    stages = " -> ".join(preset.stages)

    @click.command(name=preset.name, short_help=preset.description)
    @_train_options
    def command(**options: Any) -> None:
        _run_training(preset.name, options)

    command.help = (
        f"Train {preset.name}: {preset.description}.\n\nStages: {stages}. --init CHECKPOINT "
        "skips pretrain_g (psag: continues it). Defaults are the study's recipe: 128 px, batch 16, 20 epochs, Adam "
        "2e-4 (0.5, 0.999), GAN + 100 * L1.\n\n"
        "Images (any format, found recursively) are center-cropped to squares, resized to the "
        "render size and decoded once into memory; unreadable files are skipped and named in "
        "the log. Validation after every epoch: PSNR, Hist, CIEDE2000 at the render size.\n\n"
        f"Example: {EXAMPLE_TRAIN.format(preset=preset.name)}"
    )
    return command


def _settings(preset: str, options: dict[str, Any]):
    from facecolor.train.settings import TrainSettings

    width, render_size = options["width"], options["render_size"]
    if options["init"] is not None and (width is None or render_size is None):
        from facecolor.checkpoint import read_checkpoint

        config = read_checkpoint(options["init"]).model_config
        width = config.get("width", 1.0) if width is None else width
        render_size = config.get("render_size", 128) if render_size is None else render_size
    return TrainSettings(
        preset=preset, data=tuple(options["data"]), val=options["val"], out=options["out"],
        epochs=options["epochs"], d_epochs=options["d_epochs"], batch_size=options["batch_size"],
        lr=options["lr"], l1_weight=options["l1_weight"], render_size=render_size or 128, width=1.0 if width is None else width,
        seed=options["seed"], limit=options["limit"], val_limit=options["val_limit"],
        flip=options["flip"], mosaic=options["mosaic"], init=options["init"], encoder_weights=options["encoder_weights"],
        device=options["device"], amp=options["amp"], cache_dir=options["cache_dir"],
        workers=options["workers"], contact_images=options["contact_images"], progress=options["progress"],
        max_minutes=options["max_minutes"], ema_decay=options["ema_decay"],
    )


def _run_training(preset: str, options: dict[str, Any]) -> None:
    from facecolor.train.distributed import detect_world
    from facecolor.train.trainer import train

    try:
        world = detect_world()
        _setup_logging(world.is_main)
        settings = _settings(preset, options)
        result = train(settings, restart=options["restart"],
                       stop_after_epochs=options["stop_after_epochs"], world=world)
    except _errors() as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; finished epochs are saved in {options['out']}/resume.pt: "
                   "rerun the same command to continue", err=True)
        raise SystemExit(130) from None
    if world.is_main:
        _report_training(result, settings)


def _report_training(result, settings) -> None:
    out = result.out
    if result.already_finished:
        click.echo(f"{out} already holds a finished {result.preset} run ({result.checkpoint}); "
                   "nothing to do. Pass --restart to train it again.")
        return
    rates = ", ".join(f"{stage} {rate:.1f} img/s" for stage, rate in result.throughput.items())
    if not result.finished:
        click.echo(f"stopped after {result.epochs_run} epoch(s) ({_duration(result.seconds)}); "
                   f"rerun the same command to continue from {out / 'resume.pt'}")
        return
    where = f"{result.device}, AMP {result.amp}, {result.world_size} process(es)"
    click.echo(f"trained {result.preset}: {result.epochs_run} epoch(s) in {_duration(result.seconds)} ({where})")
    click.echo(f"throughput: {rates}")
    metrics = result.final_metrics
    if metrics:
        click.echo(f"validation: PSNR {metrics['psnr']:.2f} dB, Hist {metrics['hist']:.4f}, "
                   f"CIEDE2000 {metrics['ciede2000']:.2f}")
    click.echo("wrote:")
    for path in result.files:
        click.echo(f"  {path}  ({_size(path)})")
    checkpoint = result.checkpoint
    click.echo(f"next: facecolor-train eval {checkpoint} --data {settings.val}\n"
               f"      facecolor-export {checkpoint} --onnx {checkpoint.with_suffix('.onnx')}")


# --------------------------------------------------------------------------- evaluation


@click.command("eval")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of color ground-truth images (e.g. faces/ffhq_dev).")
@click.option("--limit", type=click.IntRange(min=1), help="Score at most N images (seeded subset).")
@click.option("--size", "render_size", default=128, show_default=True, type=click.IntRange(min=32),
              help="Scoring size in px (the study scores at the 128 px render size).")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write the table as Markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the table as JSON.")
@click.option("--fid-weights", type=click.Path(exists=True, dir_okay=False),
              help="clean-fid's inception-2015-12-05.pt (default: where clean-fid looks).")
@click.option("--require-fid", is_flag=True, help="Fail when FID cannot be computed.")
@click.option("--gray-baseline/--no-gray-baseline", default=True, show_default=True,
              help="Add a row scoring the gray input itself.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Decoded-image cache (.npy).")
@click.option("--sheet", type=click.Path(dir_okay=False),
              help="Also draw a contact sheet (PNG): gray input, each model with its metrics, original.")
@click.option("--sheet-images", default=8, show_default=True, type=click.IntRange(min=1),
              help="Images on the contact sheet, evenly spaced through the scored set.")
def eval_command(checkpoints, data, limit, render_size, markdown, json_path, fid_weights,
                 require_fid, gray_baseline, device, batch_size, seed, cache_dir, sheet, sheet_images) -> None:
    """Print the study's Table 2 (Hist, PSNR, FID, CIEDE2000, colorfulness) for CHECKPOINTS.

    Images are center-cropped and scored at the render size (128 px), like the study. FID
    needs clean-fid's Inception weights; without them the FID column says why it is missing
    (use --require-fid to make that an error).

    Example: facecolor-train eval runs/psag/psag.safetensors runs/gpsagd/gpsagd.safetensors
    --data ../shared/data/faces/ffhq_dev --markdown table2.md
    """
    from facecolor.train.evaluate import EvalSettings, evaluate, format_text, write_outputs, write_sheet

    _setup_logging(True)
    started = time.perf_counter()
    settings = EvalSettings(
        checkpoints=tuple(checkpoints), data=data, limit=limit, seed=seed, render_size=render_size,
        device=device, batch_size=batch_size, fid_weights=fid_weights, gray_baseline=gray_baseline,
        require_fid=require_fid, cache_dir=cache_dir, workers=DEFAULT_WORKERS,
        sheet_images=sheet_images if sheet else 0,
    )
    try:
        table = evaluate(settings)
        written = write_outputs(table, markdown, json_path)
        if sheet:
            written.append(write_sheet(table, sheet))
    except _errors() as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_text(table))
    for path in written:
        click.echo(f"wrote {path} ({_size(path)})")
    models = [row for row in table.rows if row.checkpoint]
    best = max(models, key=lambda row: row.metrics["psnr"])
    click.echo(f"done in {_duration(time.perf_counter() - started)}; best PSNR: {best.name}\n"
               f"next: facecolor-export {best.checkpoint}")


@click.command("groups")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of UTKFace images (labels in the file names), e.g. a held-out split.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write the table as Markdown.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the table as JSON.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def groups_command(checkpoint, data, markdown, json_path, device) -> None:
    """Per-group PSNR, CIEDE2000 and skin chroma (ours vs. truth) on labelled UTKFace images.

    Groups are UTKFace's race and gender labels, read from the file names. A skin-chroma
    ratio below 1 means the group's skin comes out too gray.

    Example: facecolor-train groups models/gpsagd.safetensors --data .faces128/val/utkface
    --markdown groups.md
    """
    from facecolor.train.fairness import evaluate_groups, format_markdown, write_results

    try:
        result = evaluate_groups(checkpoint, data, device=device, workers=DEFAULT_WORKERS)
        written = write_results(result, markdown and Path(markdown), json_path and Path(json_path))
    except _errors() as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_markdown(result))
    for path in written:
        click.echo(f"wrote {path} ({_size(path)})")


@click.command("import-weights")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="Where to write the .pth  [default: torchvision's cache, read by every SqueezeNet preset]")
def import_weights_command(source, out) -> None:
    """Convert SqueezeNet 1.1's ImageNet weights from an ncnn pair into torchvision's format.

    SOURCE holds squeezenet_v1.1.ncnn.param and .bin (shared/data/weights). The result is the
    state dict torchvision's squeezenet1_1 loads, so psg/psag presets then start from ImageNet.

    Example: facecolor-train import-weights ../shared/data/weights
    """
    try:
        path = install_squeezenet_weights(Path(source), Path(out) if out else None)
    except _errors() as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {path} ({_size(path)}, sha256 {sha256_file(path)[:12]}...)\n"
               "next: facecolor-train psag --data ... (SqueezeNet presets now start from ImageNet)")


@click.command("vivid")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--show", default=5, show_default=True, type=click.IntRange(min=0),
              help="Name this many of each folder's most vivid images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write every share as JSON.")
def vivid_command(folders, show, json_path) -> None:
    """Share of vivid pixels (CIELAB chroma > 40 at 256 px) in folders of images: invented color.

    Colorize real black-and-white photos with facecolor-batch, then measure the output folder;
    measure true-color photos the same way for comparison (FFHQ faces: about 6.6 %).

    Example: facecolor-batch ../shared/data/bw_real out/bw && facecolor-train vivid out/bw
    """
    try:
        reports = [measure_folder(folder) for folder in folders]
    except _errors() as error:
        raise click.ClickException(str(error)) from error
    for report in reports:
        click.echo(f"{report.folder}: {100 * report.mean:.1f} % vivid pixels (mean of "
                   f"{len(report.shares)} images; C*ab > {VIVID_CHROMA:g} at {VIVID_LONG_SIDE} px)")
        for name, share in report.shares[:show]:
            click.echo(f"  {100 * share:5.1f} %  {name}")
        if report.unreadable:
            click.echo(f"  unreadable, not counted: {', '.join(report.unreadable)}")
    if json_path:
        path = write_json(json_path, [report.to_dict() for report in reports])
        click.echo(f"wrote {path} ({_size(path)})")
