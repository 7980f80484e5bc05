"""The preset registry: the eleven model variants of the originating study (DESIGN §3).

A preset names a generator architecture and the training stages that produced it. Presets are
plain frozen dataclasses kept in one dict, ``PRESETS``, filled by ``register`` at import time,
so a new variant is one decorated line and an unknown name fails with the list of valid ones
(the timm pattern; see STYLE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: Generator architectures a preset may name; the builders live in facecolor.models.build.
ARCHITECTURES: tuple[str, ...] = ("unet", "resnet18", "squeezenet1_1")
#: Training stages, in the order a preset runs them.
STAGES: tuple[str, ...] = ("pretrain_g", "pretrain_d", "gan")


class UnknownPresetError(ValueError):
    """A preset name that is not registered; the message lists the valid names."""


@dataclass(frozen=True)
class Preset:
    """One model variant: which generator, whether it has self-attention, how it is trained.

    ``stages`` is an ordered subset of ``STAGES``: 'pretrain_g' (L1 pretraining of G),
    'pretrain_d' (BCE pretraining of D on real vs. fakes from the pretrained G), 'gan'
    (adversarial training, GAN + 100 * L1).
    """

    name: str
    arch: str
    attention: bool
    stages: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"preset {self.name!r}: arch {self.arch!r} is not one of {ARCHITECTURES}")
        order = [STAGES.index(s) for s in self.stages if s in STAGES]
        if len(order) != len(self.stages) or order != sorted(set(order)):
            raise ValueError(
                f"preset {self.name!r}: stages {self.stages} must be an ordered subset of {STAGES}"
            )
        if self.attention and self.arch == "unet":
            raise ValueError(f"preset {self.name!r}: self-attention is only built into encoder U-Nets")


PRESETS: dict[str, Preset] = {}


def register(factory: Callable[[], Preset]) -> Callable[[], Preset]:
    """Decorator: call ``factory`` once and add the Preset it returns to ``PRESETS``.

    A duplicate name is a programming error and raises at import time rather than silently
    replacing a variant that checkpoints already refer to.
    """
    preset = factory()
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is registered twice")
    PRESETS[preset.name] = preset
    return factory


def get_preset(name: str) -> Preset:
    """The registered Preset called ``name``; raises UnknownPresetError listing the valid names."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        valid = ", ".join(PRESETS)
        raise UnknownPresetError(f"unknown preset {name!r}; choose one of: {valid}") from None


# --------------------------------------------------------------------------- the study's eleven

_PIX2PIX = "pix2pix U-Net generator, random init"
_ENCODER_NAMES = {"resnet18": "ResNet18", "squeezenet1_1": "SqueezeNet1.1"}
_STAGE_WORDS = {
    ("pretrain_g",): "G pretrained with L1 only",
    ("pretrain_g", "gan"): "G pretrained with L1, then GAN",
    ("pretrain_g", "pretrain_d", "gan"): "G pretrained with L1, D pretrained, then GAN",
}


@register
def _pug() -> Preset:
    return Preset("pug", "unet", False, ("pretrain_g",), f"{_PIX2PIX}; {_STAGE_WORDS[('pretrain_g',)]}")


@register
def _gu() -> Preset:
    stages = ("pretrain_g", "gan")
    return Preset("gu", "unet", False, stages, f"{_PIX2PIX}; {_STAGE_WORDS[stages]}")


def _encoder_family(prefix: str, arch: str, attention: bool) -> None:
    """Register the three presets of one encoder U-Net: p<x>, gp<x>, gp<x>d."""
    body = f"U-Net over {_ENCODER_NAMES[arch]}" + (" with self-attention" if attention else "")
    for name, stages in (
        (f"p{prefix}", ("pretrain_g",)),
        (f"gp{prefix}", ("pretrain_g", "gan")),
        (f"gp{prefix}d", ("pretrain_g", "pretrain_d", "gan")),
    ):
        preset = Preset(name, arch, attention, stages, f"{body}; {_STAGE_WORDS[stages]}")
        register(lambda preset=preset: preset)


_encoder_family("rg", "resnet18", attention=False)
_encoder_family("sg", "squeezenet1_1", attention=False)
_encoder_family("sag", "squeezenet1_1", attention=True)
