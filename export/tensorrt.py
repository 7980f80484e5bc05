"""ONNX -> TensorRT plan (``NAME.plan`` + ``NAME.plan.json``), and the check that a plan fits.

Written for TensorRT 10.x and 11.x (notes/tensorrt-onnx.md):

- The precision lives in the ONNX file (the fp16 export, with fp32 attention and fp32 I/O),
  and the network is strongly typed: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on 10.x,
  where it is required for that; 11.x networks are always strongly typed and the flag is
  deprecated there, so it is not passed. ``BuilderFlag.FP16`` is never set (deprecated in
  10.12, removed in 11, and not allowed together with strong typing).
- One optimization profile over the batch of input ``L``: min 1, opt, max.
- A timing cache beside the plan (``NAME.plan.timing-cache``) makes rebuilds fast; one from
  another TensorRT version or GPU is ignored and replaced, it is only a speed-up.
- A plan runs only on the TensorRT version and GPU (compute capability) it was built for, so
  both are recorded in the sidecar and ``check_plan`` refuses a plan that does not match this
  machine, saying how to rebuild it. Metadata never goes inside the plan's bytes.

``tensorrt`` is imported lazily: without it, Unavailable says what to install.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import facecolor
from facecolor.color import COLOR_CONVENTION
from facecolor.export.errors import (
    INSTALL_TENSORRT,
    EngineBuildError,
    ExportError,
    PlanError,
    PlanMismatchError,
    Unavailable,
)
from facecolor.export.files import (
    publish,
    read_sidecar,
    sha256_file,
    sidecar_path,
    temporary_sibling,
    utc_now,
    write_atomically,
)

PLAN_FORMAT = "facecolor-plan"
PLAN_FORMAT_VERSION = 1
INPUT_NAME = "L"
#: Largest batch TensorRT tunes its kernels for when no opt batch is given: the runtime's
#: batches are usually this size or full (max_batch), and tuning for 256 slows small batches.
DEFAULT_OPT_BATCH = 64
DEFAULT_WORKSPACE_GIB = 4.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MachineFacts:
    """What a plan must match: the TensorRT version and the GPU it runs on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0" for an H100

    @property
    def slug(self) -> str:
        """A file-name-safe key: 'trt10.16.1.11-nvidia-h100-80gb-hbm3-sm90'."""
        gpu = "".join(c if c.isalnum() else "-" for c in self.gpu_name.lower()).strip("-")
        while "--" in gpu:
            gpu = gpu.replace("--", "-")
        return f"trt{self.tensorrt_version}-{gpu}-sm{self.compute_capability.replace('.', '')}"


def import_tensorrt():
    """The ``tensorrt`` module, or Unavailable saying how to install it."""
    try:
        import tensorrt
    except ImportError as error:
        raise Unavailable(
            "TensorRT is not installed (the Python package 'tensorrt' cannot be imported), so no "
            f"engine can be built or used here. Install it with: {INSTALL_TENSORRT} "
            "(needs an NVIDIA GPU and driver); the ONNX files work without it"
        ) from error
    return tensorrt


def current_machine() -> MachineFacts:
    """This machine's TensorRT version and current CUDA GPU (name, compute capability).

    The one place these facts come from, so tests can stand in for another machine.
    """
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise Unavailable(
            f"TensorRT {trt.__version__} is installed but PyTorch sees no CUDA GPU; TensorRT "
            "engines are built and run on the GPU they are for (check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES), or use the ONNX file with ONNX Runtime instead"
        )
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return MachineFacts(
        tensorrt_version=str(trt.__version__),
        gpu_name=torch.cuda.get_device_properties(index).name,
        compute_capability=f"{major}.{minor}",
    )


_LOGGER = None


def trt_logger():
    """One TensorRT logger for the process, its builds and the runtime's engines (TensorRT 8
    required a single logger per process; later versions allow several): it forwards to Python
    logging and keeps the latest errors (cleared at each build or load) for our exceptions."""
    global _LOGGER
    if _LOGGER is None:
        trt = import_tensorrt()

        class CollectingLogger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: deque[str] = deque(maxlen=32)  # TensorRT logs from any thread

            def log(self, severity, msg) -> None:
                if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                    self.errors.append(str(msg))
                    log.error("TensorRT: %s", msg)
                elif severity == trt.ILogger.WARNING:
                    log.warning("TensorRT: %s", msg)
                else:
                    log.debug("TensorRT: %s", msg)

            def last_errors(self) -> str:
                return "; ".join(self.errors) if self.errors else "no message from TensorRT"

        _LOGGER = CollectingLogger()
    return _LOGGER


def timing_cache_path(plan_path: str | Path) -> Path:
    """``models/gpsagd.plan`` -> ``models/gpsagd.plan.timing-cache``."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.name + ".timing-cache")


# --------------------------------------------------------------------------- build


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    max_batch: int,
    opt_batch: int | None = None,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
) -> Path:
    """Build a strongly typed TensorRT plan for this machine from ``onnx_path``.

    Writes ``plan_path`` and ``plan_path.json`` atomically (sidecar first, plan last) and keeps
    the timing cache at ``plan_path.timing-cache``. The batch profile is min 1, opt
    ``opt_batch`` (default min(max_batch, 64)), max ``max_batch``; ``workspace_gib`` caps
    TensorRT's scratch memory. Returns ``plan_path``. Raises Unavailable,
    Unavailable, EngineBuildError, ExportError.
    """
    started = time.perf_counter()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    opt_batch = min(max_batch, DEFAULT_OPT_BATCH) if opt_batch is None else opt_batch
    _check_build_arguments(onnx_path, plan_path, max_batch, opt_batch, workspace_gib)
    source = describe_onnx(onnx_path)
    trt = import_tensorrt()
    machine = current_machine()
    logger = trt_logger()
    logger.errors.clear()

    builder = trt.Builder(logger)
    network, strongly_typed = _create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"TensorRT {trt.__version__} could not parse {onnx_path}:\n"
            + "\n".join(f"  {line}" for line in errors or ["(no parser error recorded)"])
        )
    inputs, outputs = _network_io(trt, network)
    if [t["name"] for t in inputs] != [INPUT_NAME]:
        raise EngineBuildError(f"{onnx_path} has inputs {[t['name'] for t in inputs]}; a facecolor model has one, 'L'")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    size = source["render_size"]
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, 1, size, size), (opt_batch, 1, size, size), (max_batch, 1, size, size))
    config.add_optimization_profile(profile)
    cache_file = timing_cache_path(plan_path)
    _attach_timing_cache(config, cache_file)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = logger.errors or ["(TensorRT logged no error; rerun with logging at DEBUG)"]
        raise EngineBuildError(
            f"TensorRT {trt.__version__} could not build an engine from {onnx_path} on "
            f"{machine.gpu_name}:\n" + "\n".join(f"  {line}" for line in errors)
        )
    _save_timing_cache(config, cache_file)

    document = {
        "format": PLAN_FORMAT,
        "format_version": PLAN_FORMAT_VERSION,
        "file": plan_path.name,
        **asdict(machine),
        "precision": source["precision"],
        "strongly_typed": strongly_typed,
        "batch_profile": {"min": 1, "opt": opt_batch, "max": max_batch},
        "render_size": size,
        "inputs": inputs,
        "outputs": outputs,
        "color_convention": COLOR_CONVENTION,
        "source_onnx": {
            "path": str(onnx_path),
            "sha256": source["sha256"],
            "precision": source["precision"],
            "source_checkpoint_sha256": source.get("source_checkpoint_sha256"),
            "model_config": source.get("model_config"),
        },
        "workspace_gib": workspace_gib,
        "timing_cache": cache_file.name,
        "facecolor_version": facecolor.__version__,
        "cuda_version": _torch_cuda_version(),
        "created": utc_now(),
    }
    with temporary_sibling(plan_path, ".plan") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(serialized)
        publish(tmp, plan_path, document, "build_seconds", started)
    return plan_path


def describe_onnx(onnx_path: Path) -> dict[str, Any]:
    """Render size, precision and hashes of an ONNX file, from its sidecar where there is one."""
    import onnx

    if not onnx_path.is_file():
        raise ExportError(f"no ONNX file at {onnx_path}; export one with facecolor-export CHECKPOINT")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError, onnx its own types
        raise ExportError(f"{onnx_path} is not a readable ONNX file ({error}); export it again") from error
    inputs = {v.name: v for v in model.graph.input}
    if INPUT_NAME not in inputs:
        raise ExportError(f"{onnx_path} has no input 'L' (inputs: {sorted(inputs)}); it is not a facecolor export")
    dims = [d.dim_value for d in inputs[INPUT_NAME].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[2] <= 0 or dims[2] != dims[3]:
        raise ExportError(f"{onnx_path}: input L has shape {dims}; expected [batch, 1, S, S] with a static S")
    fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    sidecar = read_sidecar(onnx_path) or {}
    return {
        "render_size": dims[2],
        "precision": "fp16" if fp16 else "fp32",
        "sha256": sha256_file(onnx_path),
        "source_checkpoint_sha256": sidecar.get("source_checkpoint", {}).get("sha256"),
        "model_config": sidecar.get("model_config"),
    }


def _check_build_arguments(onnx_path: Path, plan_path: Path, max_batch, opt_batch, workspace_gib) -> None:
    if plan_path.suffix != ".plan":
        raise ExportError(f"the engine file must end in .plan, got {plan_path}")
    for name, value in (("max_batch", max_batch), ("opt_batch", opt_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExportError(f"{name} must be a positive integer, got {value!r}")
    if opt_batch > max_batch:
        raise ExportError(f"opt_batch {opt_batch} is larger than max_batch {max_batch}")
    if not workspace_gib > 0:
        raise ExportError(f"workspace_gib must be positive, got {workspace_gib!r}")


def _create_network(trt, builder) -> tuple[Any, bool]:
    """A strongly typed network definition, however this TensorRT spells that."""
    major = int(str(trt.__version__).split(".")[0])
    if major >= 11:  # always strongly typed; the flag is deprecated and ignored
        return builder.create_network(0), True
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} has no strongly typed networks; facecolor's fp16 engine "
            f"needs TensorRT >= 10.8: {INSTALL_TENSORRT}"
        )
    return builder.create_network(1 << int(flag)), True


def _network_io(trt, network) -> tuple[list[dict], list[dict]]:
    def describe(tensor) -> dict[str, Any]:
        try:
            import numpy as np

            dtype = np.dtype(trt.nptype(tensor.dtype)).name
        except (TypeError, ValueError, AttributeError):
            dtype = str(tensor.dtype)
        return {"name": tensor.name, "dtype": dtype, "shape": [int(d) for d in tensor.shape]}

    inputs = [describe(network.get_input(i)) for i in range(network.num_inputs)]
    outputs = [describe(network.get_output(i)) for i in range(network.num_outputs)]
    return inputs, outputs


def _attach_timing_cache(config, path: Path) -> None:
    """Start from the saved timing cache if this TensorRT and GPU accept it, else a fresh one."""
    blob = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
        accepted = cache is not None and config.set_timing_cache(cache, False) is not False
    except (RuntimeError, TypeError, ValueError):
        accepted = False
    if not accepted:
        if blob:
            log.warning("ignoring timing cache %s: made by another TensorRT or GPU", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config, path: Path) -> None:
    cache = config.get_timing_cache()
    if cache is None:
        return
    data = bytes(memoryview(cache.serialize()))
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


def _torch_cuda_version() -> str | None:
    try:
        import torch

        return torch.version.cuda
    except ImportError:  # pragma: no cover - torch is a dependency
        return None


# --------------------------------------------------------------------------- check


def check_plan(plan_path: str | Path, *, verify_hash: bool = True) -> dict[str, Any]:
    """The plan's sidecar, once it is shown to fit this machine; else PlanError/PlanMismatchError.

    Checks that the plan and its sidecar exist and agree (size, and SHA-256 when
    ``verify_hash``), then that the TensorRT version, GPU name and compute capability recorded
    at build time are this machine's (``current_machine()``).
    """
    plan_path = Path(plan_path)
    rebuild = f"rebuild it on this machine with: facecolor-export CHECKPOINT --engine {plan_path}"
    if not plan_path.is_file():
        raise PlanError(f"no TensorRT plan at {plan_path}; {rebuild}")
    document = read_sidecar(plan_path)
    if document is None or document.get("format") != PLAN_FORMAT:
        raise PlanError(
            f"{plan_path} has no readable sidecar {sidecar_path(plan_path).name}, so nothing says which "
            f"TensorRT and GPU it was built for; {rebuild}"
        )
    if document.get("size_bytes") != plan_path.stat().st_size or (
        verify_hash and document.get("sha256") != sha256_file(plan_path)
    ):
        raise PlanError(f"{plan_path} does not match its sidecar (one was replaced without the other); {rebuild}")
    machine = current_machine()
    built = MachineFacts(
        tensorrt_version=str(document.get("tensorrt_version")),
        gpu_name=str(document.get("gpu_name")),
        compute_capability=str(document.get("compute_capability")),
    )
    differences = [
        f"{label} {getattr(built, field)!s} (this machine: {getattr(machine, field)!s})"
        for field, label in (
            ("tensorrt_version", "TensorRT"),
            ("compute_capability", "compute capability"),
            ("gpu_name", "GPU"),
        )
        if getattr(built, field) != getattr(machine, field)
    ]
    if differences:
        raise PlanMismatchError(
            f"{plan_path} was built for another machine: {'; '.join(differences)}. A TensorRT plan "
            f"runs only on the TensorRT version and GPU it was built for; {rebuild} "
            f"(or delete it: the runtime then builds one in its cache, {_cache_hint()})"
        )
    return document


def _cache_hint() -> str:
    from facecolor.export.cache import cache_root

    return f"{cache_root()}"
