"""The one frozen dataclass of training settings, resolved once and saved as ``settings.json``.

Everything a run does follows from a ``TrainSettings`` value: the CLI builds it from flags,
``resolve_device`` and ``resolve_amp`` turn ``auto`` into what this machine will really use,
and the trainer never reads a global or an environment variable for a setting. The resume
logic compares the *recipe* fields of a saved run with the new ones, so continuing a run with
different data or hyper-parameters is an error rather than a silent mix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from facecolor import machine
from facecolor.files import write_json
from facecolor.train.errors import DeviceUnavailableError, TrainError

#: Fields that may change between an interrupted run and its continuation: they say *where*
#: and *how fast* to train, not *what*. Everything else must match to resume.
RUNTIME_FIELDS = frozenset(
    {"out", "device", "amp", "cache_dir", "workers", "contact_images", "progress", "max_minutes"}
)

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainSettings:
    """Everything one ``facecolor-train PRESET`` run needs (defaults: the study's recipe).

    ``epochs`` counts G pretraining and GAN epochs each; ``d_epochs`` counts D pretraining
    epochs (the study pretrains D briefly, so 1 by default: D only has to stop being random
    before the GAN starts, and a longer pretraining lets D overpower G at the GAN's start).
    """

    preset: str
    data: tuple[str, ...]
    val: str
    out: str
    epochs: int = 20
    d_epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    l1_weight: float = 100.0
    render_size: int = 128
    width: float = 1.0
    seed: int = 0
    limit: int | None = None
    val_limit: int | None = None
    flip: bool = True
    #: Share of each batch replaced by 2x2 mosaics of four faces at half size: small faces with
    #: other faces around them, as in group photos and real portraits (the face sets are tight
    #: crops). 0: off (the study's recipe).
    mosaic: float = 0.0
    init: str | None = None
    encoder_weights: str | None = None
    device: str = "auto"
    amp: str = "auto"
    cache_dir: str | None = None
    workers: int = 4
    contact_images: int = 8
    progress: bool = True
    #: Exponential moving average of G's weights (and BatchNorm statistics), e.g. 0.999:
    #: validated, saved and shipped instead of the last step's weights, which swing from
    #: epoch to epoch in the GAN stage. None: off (the study's recipe).
    ema_decay: float | None = None
    #: Wall-clock budget of one call: after the first epoch that ends past it, training stops
    #: and the final outputs are written; the recipe records the epochs actually trained.
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "d_epochs": self.d_epochs >= 0,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "render_size": self.render_size >= 16,
            "width": self.width > 0,
            "workers": self.workers >= 1,
            "limit": self.limit is None or self.limit >= 2,
            "val_limit": self.val_limit is None or self.val_limit >= 1,
            "contact_images": self.contact_images >= 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "ema_decay": self.ema_decay is None or 0 < self.ema_decay < 1,
            "mosaic": 0 <= self.mosaic <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise TrainError(
                f"invalid training settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)} "
                "(epochs >= 1, d_epochs >= 0, batch_size >= 2 for BatchNorm, lr > 0, "
                "render_size >= 16, width > 0, limit >= 2, 0 < ema_decay < 1, 0 <= mosaic <= 1)"
            )
        if self.init is not None and self.encoder_weights is not None:
            raise TrainError(
                "--init and --encoder-weights conflict: with --init the whole generator, encoder "
                "included, starts from the checkpoint; drop one of them"
            )
        if self.amp not in AMP_CHOICES:
            raise TrainError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {self.amp!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def recipe_differences(self, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Recipe fields whose saved value differs from this one: ``name -> (saved, now)``."""
        now = self.to_dict()
        # A field added after the run was saved counts as its default there, so a newer
        # facecolor can continue an older run that did not use the new option.
        before = {f.name: saved.get(f.name, f.default) for f in fields(self)}
        return {
            f.name: (before[f.name], now[f.name])
            for f in fields(self)
            if f.name not in RUNTIME_FIELDS and before[f.name] != now[f.name]
        }

    def write_json(self, path: Path, **extra: Any) -> Path:
        """Write these settings (plus ``extra`` facts such as the world size) as JSON."""
        return write_json(path, {"settings": self.to_dict(), **extra}, sort_keys=True)


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto|cpu|cuda`` -> the torch device this process trains on.

    ``cuda`` on a machine without CUDA is an error, never a quiet fallback to the CPU.
    """
    if requested not in DEVICE_CHOICES:
        raise TrainError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build)"
        raise DeviceUnavailableError(
            f"--device cuda was asked for, but torch sees no CUDA device (torch {torch.__version__}, "
            f"CUDA build: {built}); use --device cpu or --device auto, or install a CUDA build "
            "of torch on a machine with an NVIDIA driver"
        )
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (``avx512_bf16`` or ``amx_bf16`` flags).

    Only there is CPU autocast a win: on an AMD EPYC with avx512_bf16 a gpsagd G step ran 1.66x
    faster under bf16 than in fp32 (docs/training/speed.md); without those instructions oneDNN
    emulates bf16 and is slower than fp32.
    """
    flags = set()
    for line in (machine.cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_amp(requested: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA GPUs and CPUs that support it, fp16 on older GPUs, else off.

    fp16 on the CPU is an error (no CPU speeds it up and it needs loss scaling); bf16 on a CPU
    without native bf16 is allowed when asked for by name, as an explicit choice.
    """
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "off"
    if requested == "fp16" and device.type != "cuda":
        raise TrainError("--amp fp16 needs a CUDA device; use --amp bf16, off or auto on the CPU")
    return requested


def resolved(settings: TrainSettings, device: torch.device) -> TrainSettings:
    """A copy with ``device`` and ``amp`` replaced by what this machine really uses."""
    return replace(settings, device=device.type, amp=resolve_amp(settings.amp, device))
