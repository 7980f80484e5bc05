"""Build generators and discriminators by preset name, and rebuild them from their config.

``model_config`` turns (preset, render size, width) into a JSON-serialisable dict holding every
channel number the generator needs; ``build_generator_from_config`` rebuilds exactly from it,
so a checkpoint carries its own model arguments (nanoGPT's lesson, STYLE.md) and never depends
on how today's code would round a width.

Config keys (all presets): preset, arch, attention, render_size, width, in_channels (1),
out_channels (2), encoder_weights ('imagenet' | 'random'). 'unet' adds ngf, depth; encoder
U-Nets add skip_indices, skip_channels, bottleneck_channels, middle_channels,
upsample_channels, decoder_channels, final_channels, attention_block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from facecolor.files import sha256_file
from facecolor.models.dynamic_unet import DynamicUNet
from facecolor.models.encoders import ENCODERS, build_encoder, resolve_encoder_weights
from facecolor.models.patchgan import PatchDiscriminator
from facecolor.models.registry import Preset, get_preset
from facecolor.models.unet import UNetGenerator

MIN_SIZE = 32
_MIN_CHANNELS = 4


class ModelConfigError(ValueError):
    """Model arguments or a stored model config that cannot build a model; says what to change."""


def _scaled(channels: int, width: float) -> int:
    return max(_MIN_CHANNELS, int(round(channels * width)))


def _check_size_and_width(render_size: Any, width: Any) -> tuple[int, float]:
    if isinstance(render_size, bool) or not isinstance(render_size, int) or render_size < MIN_SIZE:
        raise ModelConfigError(f"render_size must be an integer >= {MIN_SIZE}, got {render_size!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 8:
        raise ModelConfigError(f"width must be a number in (0, 8] (1.0 is the study's size), got {width!r}")
    return render_size, float(width)


# --------------------------------------------------------------------------- pix2pix U-Net


def _unet_config(preset: Preset, render_size: int, width: float) -> dict[str, Any]:
    # Bottleneck 1x1 at the render size (pix2pix: 7 levels at 128, 8 at 256), within 5..8.
    depth = min(8, max(5, int(math.log2(render_size))))
    return {"ngf": _scaled(64, width), "depth": depth}


def _build_unet(config: Mapping[str, Any], weights: Path | None) -> nn.Module:
    model = UNetGenerator(
        ngf=config["ngf"],
        depth=config["depth"],
        in_channels=config["in_channels"],
        out_channels=config["out_channels"],
    )
    pix2pix_init_(model)
    return model


# --------------------------------------------------------------------------- encoder U-Nets


def _encoder_unet_config(preset: Preset, render_size: int, width: float) -> dict[str, Any]:
    """fastai DynamicUnet's channel plan at width 1, every decoder width scaled by ``width``."""
    spec = ENCODERS[preset.arch]
    up_in, ups, outs = spec.out_channels, [], []
    skips = list(reversed(spec.skip_channels))
    for i, skip_ch in enumerate(skips):
        up = up_in // 2
        out = up + skip_ch if i == len(skips) - 1 else (up + skip_ch) // 2
        ups.append(up)
        outs.append(out)
        up_in = out
    return {
        "skip_indices": list(spec.skip_indices),
        "skip_channels": list(spec.skip_channels),
        "bottleneck_channels": spec.out_channels,
        "middle_channels": _scaled(spec.out_channels, width),
        "upsample_channels": [_scaled(c, width) for c in ups],
        "decoder_channels": [_scaled(c, width) for c in outs],
        "final_channels": _scaled(up_in, width),
        # fastai: self-attention in the third-last decoder block.
        "attention_block": max(0, len(skips) - 3) if preset.attention else None,
    }


def _build_encoder_unet(config: Mapping[str, Any], weights: Path | None) -> nn.Module:
    return DynamicUNet(
        build_encoder(config["arch"], weights),
        skip_indices=config["skip_indices"],
        skip_channels=config["skip_channels"],
        bottleneck_channels=config["bottleneck_channels"],
        middle_channels=config["middle_channels"],
        upsample_channels=config["upsample_channels"],
        decoder_channels=config["decoder_channels"],
        final_channels=config["final_channels"],
        attention_block=config["attention_block"],
        out_channels=config["out_channels"],
    )


@dataclass(frozen=True)
class _Architecture:
    config: Callable[[Preset, int, float], dict[str, Any]]
    build: Callable[[Mapping[str, Any], Path | None], nn.Module]
    has_encoder: bool


_ARCHITECTURES: dict[str, _Architecture] = {
    "unet": _Architecture(_unet_config, _build_unet, has_encoder=False),
    "resnet18": _Architecture(_encoder_unet_config, _build_encoder_unet, has_encoder=True),
    "squeezenet1_1": _Architecture(_encoder_unet_config, _build_encoder_unet, has_encoder=True),
}


# --------------------------------------------------------------------------- public API


def model_config(preset: str, *, render_size: int = 128, width: float = 1.0) -> dict[str, Any]:
    """The JSON-serialisable config that ``build_generator_from_config`` rebuilds exactly.

    ``encoder_weights`` is 'random' here; ``build_generator`` sets it to 'imagenet' in the
    generator's own ``.config`` when it loads ImageNet weights, so save ``generator.config``.
    """
    spec = get_preset(preset)
    render_size, width = _check_size_and_width(render_size, width)
    return {
        "preset": spec.name,
        "arch": spec.arch,
        "attention": spec.attention,
        "render_size": render_size,
        "width": width,
        "in_channels": 1,
        "out_channels": 2,
        "encoder_weights": "random",
        **_ARCHITECTURES[spec.arch].config(spec, render_size, width),
    }


def build_generator(
    preset: str, *, render_size: int = 128, width: float = 1.0, encoder_weights: str | Path | None = None
) -> nn.Module:
    """A fresh generator for ``preset``: L/50-1 [N,1,H,W] -> ab/110 [N,2,H,W], any H, W >= 32.

    Encoder U-Nets load ImageNet weights from ``encoder_weights`` (a torchvision state-dict
    file; missing -> EncoderWeightsNotFoundError) or, when it is None, from torchvision's cache
    if the file is there; otherwise the encoder starts random. Never downloads. The returned
    module has ``.config`` (``model_config`` plus the weights actually used).
    """
    config = model_config(preset, render_size=render_size, width=width)
    architecture = _ARCHITECTURES[config["arch"]]
    weights = None
    if architecture.has_encoder:
        weights = resolve_encoder_weights(config["arch"], encoder_weights)
    elif encoder_weights is not None:
        raise ModelConfigError(
            f"preset {preset!r} is a plain U-Net with no pretrained encoder; drop the encoder weights "
            f"or choose an encoder preset (prg, psg, psag families)"
        )
    config["encoder_weights"] = "imagenet" if weights is not None else "random"
    if weights is not None:  # which file, so a checkpoint says exactly what it started from
        config["encoder_weights_file"] = {"name": weights.name, "sha256": sha256_file(weights)}
    generator = architecture.build(config, weights)
    generator.config = config
    return generator


def build_generator_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild the generator ``config`` (from ``model_config`` or a checkpoint) describes.

    Channel numbers are taken from the config, not recomputed; keys it lacks fall back to
    ``model_config`` for its preset, render size and width; unknown keys (color_convention,
    ...) are ignored. Weights are random: load the checkpoint's state dict next.
    """
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"a model config is a dict, got {type(config).__name__}")
    if "preset" not in config:
        raise ModelConfigError(
            f"model config has no 'preset' key (keys: {sorted(config)}); it is not a facecolor config"
        )
    defaults = model_config(
        config["preset"], render_size=config.get("render_size", 128), width=config.get("width", 1.0)
    )
    merged = {key: config.get(key, value) for key, value in defaults.items()}
    _check_consistent(merged, defaults)
    try:
        generator = _ARCHITECTURES[merged["arch"]].build(merged, None)
    except (TypeError, ValueError, RuntimeError) as error:  # e.g. mismatched channel lists
        raise ModelConfigError(
            f"model config for preset {merged['preset']!r} cannot build a generator ({error}); "
            f"rebuild it with facecolor.models.model_config"
        ) from error
    generator.config = merged
    return generator


def _check_consistent(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Refuse configs whose fixed parts (architecture, encoder layout) contradict the preset."""
    fixed = ["arch", "attention", "in_channels", "out_channels"]
    if _ARCHITECTURES[defaults["arch"]].has_encoder:
        fixed += ["skip_indices", "skip_channels", "bottleneck_channels"]
    for key in fixed:
        if _as_list(config[key]) != _as_list(defaults[key]):
            raise ModelConfigError(
                f"model config says {key}={config[key]!r} but preset {config['preset']!r} has "
                f"{defaults[key]!r}; the config was edited or comes from another facecolor version"
            )
    if config["encoder_weights"] not in ("imagenet", "random"):
        raise ModelConfigError(
            f"encoder_weights must be 'imagenet' or 'random', got {config['encoder_weights']!r}"
        )


def _as_list(value: Any) -> Any:
    """JSON turns tuples into lists; compare sequences as lists."""
    return list(value) if isinstance(value, (list, tuple)) else value


def build_discriminator(*, width: float = 1.0) -> nn.Module:
    """The 70x70 PatchGAN: cat(L/50-1, ab/110) [N,3,H,W] -> logits [N,1,H/8-2,W/8-2].

    ``width`` scales ndf (64 at 1.0). Weights start as in pix2pix (normal, std 0.02).
    """
    _, width = _check_size_and_width(MIN_SIZE, width)
    discriminator = PatchDiscriminator(ndf=_scaled(64, width))
    pix2pix_init_(discriminator)
    return discriminator


def pix2pix_init_(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix's 'normal' init: conv weights N(0, std), BatchNorm weights N(1, std), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)
