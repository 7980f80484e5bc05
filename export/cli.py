"""``facecolor-export``: a checkpoint -> ONNX fp32, ONNX fp16 and (with TensorRT) an engine.

Mounted as ``facecolor export`` too. Library errors become ``click.ClickException`` (exit 1);
bad flags are click's usage errors (exit 2). Heavy imports happen inside the command so that
``--help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from facecolor.errors import FacecolorError


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


def _report(path: Path, seconds: float, detail: str) -> None:
    from facecolor.export.files import human_size

    click.echo(f"saved {path} ({human_size(path.stat().st_size)}, {seconds:.1f} s){detail}")


def _check_detail(path: Path) -> str:
    from facecolor.export.files import read_sidecar

    check = (read_sidecar(path) or {}).get("check") or {}
    if check.get("passed") is None:
        return ": NOT checked (--no-check)"
    psnr = check.get("min_psnr_db")
    psnr_text = f"{psnr} dB" if psnr is not None else "inf"
    worst = f"{check['max_abs_diff_ab_cielab']:.4g}"
    if "noise_max_abs_diff_ab_cielab" in check:  # sidecars since the split image/noise gate
        worst = (f"{check['image_max_abs_diff_ab_cielab']:.4g} on images "
                 f"({check['noise_max_abs_diff_ab_cielab']:.4g} on noise)")
    return (
        f": ONNX Runtime vs PyTorch max |Δab| {worst}, "
        f"mean {check['mean_abs_diff_ab_cielab']:.3g} CIELAB units, PSNR >= {psnr_text}"
    )


@click.command(
    name="export",
    epilog="\b\nExample:\n  facecolor-export runs/gpsagd/gpsagd.safetensors --onnx models/gpsagd.onnx --engine models/gpsagd.plan",
)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--onnx", "onnx_out", type=click.Path(dir_okay=False, path_type=Path),
              help="fp32 ONNX to write [default: next to the checkpoint, NAME.onnx].")
@click.option("--fp16-onnx", "fp16_out", type=click.Path(dir_okay=False, path_type=Path),
              help="fp16 ONNX (TensorRT's input) to write [default: the --onnx path as NAME.fp16.onnx].")
@click.option("--engine", "engine_out", type=click.Path(dir_okay=False, path_type=Path),
              help="also build a TensorRT engine NAME.plan (+ NAME.plan.json) for this machine's GPU.")
@click.option("--max-batch", type=click.IntRange(min=2), default=256, show_default=True,
              help="largest batch the files are built for (the engine's profile maximum).")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help="batch TensorRT tunes for [default: min(max-batch, 64)].")
@click.option("--workspace-gib", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="TensorRT builder scratch memory limit.")
@click.option("--check-image", "check_images", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a real image to add to the ONNX Runtime vs PyTorch check (repeatable).")
@click.option("--no-check", is_flag=True, help="keep the ONNX files without comparing them with PyTorch.")
def main(checkpoint: Path, onnx_out, fp16_out, engine_out, max_batch, opt_batch, workspace_gib,
         check_images, no_check) -> None:
    """Export CHECKPOINT (.safetensors) to ONNX fp32 and fp16, and a TensorRT engine.

    Every ONNX file is run with ONNX Runtime against PyTorch before it is kept; a file that
    disagrees beyond the tolerance is not written. The engine is built from the fp16 ONNX,
    strongly typed, for this machine's TensorRT and GPU; without TensorRT the ONNX files are
    still written and the engine step stops with exit code 1.
    """
    from facecolor.checkpoint import CheckpointError
    from facecolor.export.onnx import export_onnx, fp16_path

    onnx_out = onnx_out or checkpoint.with_suffix(".onnx")
    fp16_out = fp16_out or fp16_path(onnx_out)
    if opt_batch is not None and opt_batch > max_batch:
        raise click.BadParameter(f"{opt_batch} is larger than --max-batch {max_batch}", param_hint="--opt-batch")
    if opt_batch is not None and engine_out is None:
        raise click.BadParameter("only applies with --engine", param_hint="--opt-batch")
    outputs = [path.resolve() for path in (onnx_out, fp16_out, engine_out) if path is not None]
    if len(set(outputs)) != len(outputs):
        raise click.BadParameter("--onnx, --fp16-onnx and --engine must be different files")
    if engine_out is not None and engine_out.suffix != ".plan":
        raise click.BadParameter(f"{engine_out} must end in .plan", param_hint="--engine")
    for option, path in (("--onnx", onnx_out), ("--fp16-onnx", fp16_out)):
        if path.suffix != ".onnx":
            raise click.BadParameter(f"{path} must end in .onnx", param_hint=option)

    try:
        started = time.perf_counter()
        export_onnx(checkpoint, onnx_out, max_batch=max_batch, check=not no_check, check_images=check_images)
        _report(onnx_out, time.perf_counter() - started, _check_detail(onnx_out))
        started = time.perf_counter()
        export_onnx(checkpoint, fp16_out, fp16=True, max_batch=max_batch, check=not no_check,
                    check_images=check_images, fp32_onnx=onnx_out)
        _report(fp16_out, time.perf_counter() - started, _check_detail(fp16_out))
    except (CheckpointError, FacecolorError) as error:
        raise _fail(error) from error

    if engine_out is not None:
        _build(fp16_out, engine_out, max_batch=max_batch, opt_batch=opt_batch, workspace_gib=workspace_gib)
        click.echo(f"Next: facecolor-batch IN_DIR OUT_DIR --model {engine_out}")
        click.echo(f"      bench --engine {engine_out} --reference {checkpoint}")
    else:
        click.echo(f"Next: facecolor-batch IN_DIR OUT_DIR --model {onnx_out}")
        click.echo(f"      facecolor-export {checkpoint} --engine {onnx_out.with_suffix('.plan')}  (on a TensorRT machine)")


def _build(fp16_onnx: Path, engine_out: Path, *, max_batch: int, opt_batch, workspace_gib: float) -> None:
    from facecolor.export.tensorrt import build_engine

    started = time.perf_counter()
    try:
        build_engine(fp16_onnx, engine_out, max_batch=max_batch, opt_batch=opt_batch, workspace_gib=workspace_gib)
    except FacecolorError as error:
        raise click.ClickException(
            f"{error}\nThe ONNX files above were written; only the engine {engine_out} is missing."
        ) from error
    from facecolor.export.files import read_sidecar

    plan = read_sidecar(engine_out) or {}
    profile = plan.get("batch_profile", {})
    _report(
        engine_out,
        time.perf_counter() - started,
        f": TensorRT {plan.get('tensorrt_version')} on {plan.get('gpu_name')} "
        f"(sm {plan.get('compute_capability')}), {plan.get('precision')} strongly typed, "
        f"batch {profile.get('min')}..{profile.get('opt')}..{profile.get('max')}",
    )


if __name__ == "__main__":  # pragma: no cover
    main()
