"""Checkpoint -> ONNX (fp32, or fp16 for TensorRT's strong typing), checked before it is kept.

``export_onnx(checkpoint, out)`` is one step, path in -> path out:

1. rebuild the generator from the checkpoint (``facecolor.checkpoint.load_generator``; a
   corrupted or mismatched file raises CheckpointError), eval mode, fp32, CPU;
2. ``torch.onnx.export`` with the dynamo exporter: opset 20 (the ``Attention`` op of opset 23
   is parsed by TensorRT only from 10.14, so attention stays MatMul + Softmax), one file
   (no external data), input ``L`` [batch,1,S,S] and output ``ab`` [batch,2,S,S] float32, a
   dynamic batch dimension traced from an example batch of 2 (a batch of 1 would be
   specialised to the constant 1) and static H = W = the checkpoint's render size (SqueezeNet's
   ceil-mode pooling makes skip sizes depend on the input size);
3. for fp16, ``onnxconverter_common.float16`` (see ``convert_to_fp16`` for why this route);
4. ONNX Runtime on the written file against PyTorch (``facecolor.export.check``);
5. only then the sidecar ``OUT.json`` and the rename of the temporary file onto ``OUT``.
   A failed check raises ExportCheckError and leaves nothing behind.

The sidecar holds the full metadata; the ONNX file's own ``metadata_props`` repeat the
essentials as short strings, so a lone ``.onnx`` still says what it is.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

import facecolor
from facecolor.checkpoint import Checkpoint, load_generator
from facecolor.color import COLOR_CONVENTION
from facecolor.export.check import CheckReport, check_onnx
from facecolor.export.errors import ExportCheckError, ExportError
from facecolor.export.files import publish, sha256_file, temporary_sibling, utc_now
from facecolor.machine import version
from facecolor.models.dynamic_unet import DynamicUNet

#: Highest opset we write (DESIGN §4): 20 keeps attention as MatMul + Softmax for TensorRT.
OPSET = 20
INPUT_NAME = "L"
OUTPUT_NAME = "ab"
#: The batch the exporter traces with; >= 2 so the batch dimension stays symbolic.
EXAMPLE_BATCH = 2
SIDECAR_FORMAT = "facecolor-onnx"
SIDECAR_VERSION = 1
#: Ops the fp16 model keeps in fp32, on top of onnxconverter-common's own block list (which
#: already holds Resize, Range, Min, Max, TopK, ...): the self-attention's MatMul (energies
#: summed over C/8 channels) and Softmax (exp and a sum over H*W positions), where fp16 loses
#: the most. A conv U-Net has no other MatMul, so this blocks exactly the attention.
FP16_FP32_OPS = ("MatMul", "Softmax", "Resize")
#: fp16's largest finite value; the converter's default clamp (1e4) would alter larger weights.
FP16_MAX = 65504.0
#: The largest encoder activation an exported graph may carry on uniform-noise input (the worst
#: case: ImageNet SqueezeNet reaches 13,000 there, and the fp16 ONNX of a 64 px psag was off by
#: 66 CIELAB units on noise and 0.8 on the synthetic portraits). Larger encoders are scaled down
#: by a power of two (``DynamicUNet.scale_encoder_``) before tracing. Measured on that psag:
#: limit 512 gave portraits max 0.019 / noise mean 0.24; 64 gave 0.067 / 0.28; 8 broke it
#: (2.7 / 2.6: the rescaled BatchNorm epsilon falls below fp16's range).
ENCODER_PEAK_LIMIT = 512.0


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    max_batch: int = 256,
    check: bool = True,
    check_images: Sequence[str | Path] = (),
    fp32_onnx: str | Path | None = None,
) -> Path:
    """Export ``checkpoint``'s generator to ``out`` (one .onnx file) and its sidecar ``out.json``.

    ``fp16``: weights and activations in fp16 with fp32 inputs/outputs and fp32 attention
    (for a strongly typed TensorRT engine). ``max_batch``: the largest batch the file is meant
    for (recorded; TensorRT's profile uses it). ``check``: compare ONNX Runtime with PyTorch
    first (on random and synthetic inputs, plus ``check_images``) and refuse a file outside
    the tolerance. ``fp32_onnx``: with ``fp16``, convert this fp32 export of the same checkpoint
    (checked against its sidecar) instead of tracing the model again. Returns ``out``.
    Raises CheckpointError, ExportError, ExportCheckError.
    """
    started = time.perf_counter()
    checkpoint, out = Path(checkpoint), Path(out)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < EXAMPLE_BATCH:
        raise ExportError(
            f"max_batch must be an integer >= {EXAMPLE_BATCH} (the exporter traces a batch of "
            f"{EXAMPLE_BATCH} to keep the batch dimension dynamic), got {max_batch!r}"
        )
    if out.suffix != ".onnx":
        raise ExportError(f"the ONNX output must end in .onnx, got {out}")
    if fp32_onnx is not None and not fp16:
        raise ExportError("fp32_onnx is the starting point of an fp16 export; pass fp16=True or drop it")
    generator, ckpt = load_generator(checkpoint, "cpu")
    source_sha256 = sha256_file(checkpoint)
    size = ckpt.render_size
    precision = "fp16" if fp16 else "fp32"
    with temporary_sibling(out, ".onnx") as tmp:
        if fp32_onnx is None:
            traced, encoder_scale = fit_encoder_range(generator, size)
            trace_to_onnx(traced, tmp, size=size, max_batch=max_batch)
        else:
            encoder_scale = copy_fp32_export(Path(fp32_onnx), tmp, source_sha256=source_sha256,
                                             max_batch=max_batch)
        conversion = convert_to_fp16(tmp) if fp16 else None
        if conversion is not None:
            conversion["source"] = str(fp32_onnx) if fp32_onnx is not None else "traced"
        verify_structure(tmp, size=size)
        report = None
        if check:
            try:
                report = check_onnx(tmp, generator, precision=precision, size=size, images=check_images)
            except ExportCheckError as error:
                raise ExportCheckError(f"{out}: {error}", error.report) from None
        document = _sidecar_document(
            checkpoint, source_sha256, ckpt, out, precision=precision, max_batch=max_batch, report=report,
            conversion=conversion, check_images=check_images, encoder_scale=encoder_scale,
        )
        stamp_metadata(tmp, document)
        publish(tmp, out, document, "export_seconds", started)
    return out


def fp16_path(onnx_path: str | Path) -> Path:
    """Where the fp16 twin of an fp32 ONNX goes: ``gpsagd.onnx`` -> ``gpsagd.fp16.onnx``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + ".fp16.onnx")


# --------------------------------------------------------------------------- steps


@torch.no_grad()
def fit_encoder_range(generator: torch.nn.Module, size: int) -> tuple[torch.nn.Module, float]:
    """The generator to trace, its encoder scaled into fp16's comfortable range, and the scale.

    The same output in fp32 (the scale is a power of two, so the rescaling is exact); the
    checks still compare the file with the untouched ``generator``. Models whose encoder stays
    under ``ENCODER_PEAK_LIMIT`` (or that have none) are traced as they are, scale 1.
    """
    if not isinstance(generator, DynamicUNet):
        return generator, 1.0
    noise = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x, peak = generator.eval().stem(noise), 0.0
    for layer in generator.encoder:
        x = layer(x)
        peak = max(peak, float(x.abs().max()))
    if peak <= ENCODER_PEAK_LIMIT:
        return generator, 1.0
    scale = float(2 ** math.ceil(math.log2(peak / ENCODER_PEAK_LIMIT)))
    scaled = copy.deepcopy(generator)
    scaled.scale_encoder_(scale)
    return scaled, scale


def trace_to_onnx(generator: torch.nn.Module, path: Path, *, size: int, max_batch: int) -> None:
    """torch.onnx.export (dynamo) of an fp32 eval-mode generator to ``path``: one file, opset 20."""
    example = torch.zeros(EXAMPLE_BATCH, 1, size, size)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter; failures raise
            torch.onnx.export(
                generator.eval(),
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    except Exception as error:  # torch raises several unrelated types here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(
            f"torch.onnx could not export this generator ({type(error).__name__}: {first}); "
            f"check that torch >= 2.9 and onnxscript are installed"
        ) from error
    stray = path.with_name(path.name + ".data")
    if stray.exists():  # never leave an external-data file next to a single-file export
        stray.unlink()
        raise ExportError(f"torch.onnx wrote external data for {path.name}; the model is too big for one file")


def copy_fp32_export(source: Path, dest: Path, *, source_sha256: str, max_batch: int) -> float:
    """Copy an fp32 export of the same checkpoint to ``dest`` as the start of an fp16 export.

    Refused unless its sidecar says it is an fp32 export of exactly this checkpoint
    (same SHA-256) with the same batch bound, and its bytes are the ones the sidecar recorded.
    Returns the encoder scale that file was traced with (its sidecar's word, 1 for files made
    before the scaling existed), so the fp16 sidecar describes the graph it really holds.
    """
    from facecolor.export.files import read_sidecar

    document = read_sidecar(source)
    problems = []
    if document is None or document.get("format") != SIDECAR_FORMAT:
        problems.append("it has no facecolor sidecar")
    else:
        if document.get("precision") != "fp32":
            problems.append(f"it is {document.get('precision')}, not fp32")
        if document.get("source_checkpoint", {}).get("sha256") != source_sha256:
            problems.append("it was exported from another checkpoint")
        if document.get("batch", {}).get("max") != max_batch:
            problems.append(f"its max batch is {document.get('batch', {}).get('max')}, not {max_batch}")
        if not source.is_file() or document.get("sha256") != sha256_file(source):
            problems.append("its bytes differ from those its sidecar recorded")
    if problems:
        raise ExportError(
            f"cannot derive the fp16 ONNX from {source}: {'; '.join(problems)}. "
            f"Export the fp32 file again from this checkpoint, or export fp16 directly"
        )
    shutil.copyfile(source, dest)
    return float(document.get("encoder_activations_divided_by", 1.0))


def convert_to_fp16(path: Path) -> dict[str, Any]:
    """Rewrite the fp32 ONNX at ``path`` as fp16 with fp32 I/O and fp32 attention; say how.

    Why onnxconverter-common rather than ``model.half()`` before export: the converter keeps
    the inputs and outputs fp32 (``keep_io_types``), so every backend binds the same float32
    tensors and the engine casts once on the GPU; and it keeps chosen ops in fp32 (the
    attention's MatMul/Softmax, Resize) with explicit Cast nodes, which a strongly typed
    TensorRT network honours exactly. ``model.half()`` would make the I/O fp16 and run the
    attention's softmax over H*W positions in fp16.
    """
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as error:
        raise ExportError(
            "an fp16 ONNX needs onnxconverter-common: pip install onnxconverter-common "
            "(no fp32 file is written in its place)"
        ) from error
    model = onnx.load(str(path))
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP16_FP32_OPS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=blocked, max_finite_val=FP16_MAX
        )
    onnx.save(converted, str(path))
    clamped = [str(w.message) for w in caught if "truncated" in str(w.message)]
    fp32_nodes = sorted({n.op_type for n in model.graph.node} & set(FP16_FP32_OPS))
    return {
        "method": "onnxconverter_common.float16.convert_float_to_float16",
        "onnxconverter_common_version": version("onnxconverter_common"),
        "keep_io_types": True,
        "ops_kept_fp32": fp32_nodes,
        "weights_clamped_to_fp16_range": len(clamped),
    }


def verify_structure(path: Path, *, size: int) -> None:
    """The written file is valid ONNX, opset <= 20, input L / output ab float32 with a symbolic batch."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the exported ONNX is not valid: {error}") from error
    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset > OPSET:
        raise ExportError(f"the exported ONNX uses opset {opset}; facecolor needs <= {OPSET}")
    expected = {INPUT_NAME: 1, OUTPUT_NAME: 2}
    for value in (*model.graph.input, *model.graph.output):
        tensor = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        if value.name not in expected:
            raise ExportError(f"unexpected graph input/output {value.name!r}; expected L and ab")
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            raise ExportError(f"{value.name} is {onnx.TensorProto.DataType.Name(tensor.elem_type)}, not float32")
        if len(dims) != 4 or not isinstance(dims[0], str) or dims[1] != expected[value.name]:
            raise ExportError(f"{value.name} has shape {dims}; expected [batch, {expected[value.name]}, {size}, {size}]")
    names = sorted(v.name for v in (*model.graph.input, *model.graph.output))
    if names != sorted(expected):
        raise ExportError(f"graph inputs/outputs are {names}; expected L and ab")


def stamp_metadata(path: Path, document: dict[str, Any]) -> None:
    """Copy the essentials of the sidecar into the ONNX file's ``metadata_props`` (short strings)."""
    import onnx

    model = onnx.load(str(path))
    check = document.get("check") or {}
    props = {
        "facecolor.format": f"{SIDECAR_FORMAT}/{SIDECAR_VERSION}",
        "facecolor.version": document["facecolor_version"],
        "facecolor.preset": str(document["model_config"].get("preset", "?")),
        "facecolor.model_config": json.dumps(document["model_config"], sort_keys=True, separators=(",", ":")),
        "facecolor.color_convention": COLOR_CONVENTION,
        "facecolor.precision": document["precision"],
        "facecolor.render_size": str(document["render_size"]),
        "facecolor.input": f"{INPUT_NAME} float32 [batch,1,S,S] = L*/50-1",
        "facecolor.output": f"{OUTPUT_NAME} float32 [batch,2,S,S] = a*b*/110 (tanh)",
        "facecolor.source_sha256": document["source_checkpoint"]["sha256"],
        "facecolor.max_abs_diff_ab_cielab": str(check.get("max_abs_diff_ab_cielab", "unchecked")),
        "facecolor.sidecar": Path(document["file"]).name + ".json",
    }
    onnx.helper.set_model_props(model, props)
    model.doc_string = (
        f"facecolor generator {props['facecolor.preset']} ({document['precision']}); "
        f"full metadata in {props['facecolor.sidecar']}"
    )
    onnx.save(model, str(path))


def _sidecar_document(
    checkpoint: Path,
    source_sha256: str,
    ckpt: Checkpoint,
    out: Path,
    *,
    precision: str,
    max_batch: int,
    report: CheckReport | None,
    conversion: dict[str, Any] | None,
    check_images: Sequence[str | Path],
    encoder_scale: float = 1.0,
) -> dict[str, Any]:
    size = ckpt.render_size
    io_dtype = "float32"  # fp16 files keep fp32 I/O too (keep_io_types)
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "file": out.name,
        "precision": precision,
        "fp16_conversion": conversion,
        "encoder_activations_divided_by": encoder_scale,
        "opset": OPSET,
        "inputs": [
            {"name": INPUT_NAME, "dtype": io_dtype, "shape": ["batch", 1, size, size],
             "meaning": "CIE L* / 50 - 1, in [-1, 1]"},
        ],
        "outputs": [
            {"name": OUTPUT_NAME, "dtype": io_dtype, "shape": ["batch", 2, size, size],
             "meaning": "CIE a*b* / 110 through tanh, in [-1, 1]"},
        ],
        "batch": {"min": 1, "max": max_batch, "traced_with": EXAMPLE_BATCH},
        "render_size": size,
        "color_convention": COLOR_CONVENTION,
        "model_config": ckpt.model_config,
        "source_checkpoint": {
            "path": str(checkpoint),
            "sha256": source_sha256,
            "preset": ckpt.preset,
            "metrics": ckpt.metrics,
        },
        "check": report.to_json() if report else {"passed": None, "skipped": "check disabled (--no-check)"},
        "settings": {
            "fp16": precision == "fp16",
            "max_batch": max_batch,
            "check": report is not None,
            "check_images": [str(p) for p in check_images],
        },
        "facecolor_version": facecolor.__version__,
        "torch_version": torch.__version__,
        "onnx_version": version("onnx"),
        "onnxscript_version": version("onnxscript"),
        "onnxruntime_version": version("onnxruntime"),
        "created": utc_now(),
    }
