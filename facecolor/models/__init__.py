"""facecolor's models: the eleven presets of the study, their generators and the PatchGAN.

    from facecolor.models import build_generator, build_discriminator, model_config
    g = build_generator("gpsagd")            # L/50-1 [N,1,H,W] -> ab/110 [N,2,H,W]
    d = build_discriminator()                # cat(L, ab) [N,3,H,W] -> logits [N,1,h,w]
    g2 = build_generator_from_config(g.config)   # what checkpoint.load_generator does

Modules: ``registry`` (presets), ``unet`` (pix2pix U-Net), ``encoders`` (torchvision encoders
and their offline weights), ``dynamic_unet`` (encoder U-Nets), ``attention`` (SAGAN block),
``patchgan`` (discriminator), ``build`` (configs and builders).
"""

from facecolor.models.build import (
    ModelConfigError,
    build_discriminator,
    build_generator,
    build_generator_from_config,
    model_config,
)
from facecolor.models.encoders import (
    ENCODER_WEIGHT_FILES,
    EncoderWeightsError,
    EncoderWeightsNotFoundError,
    cached_weights_path,
)
from facecolor.models.registry import PRESETS, Preset, UnknownPresetError, get_preset, register

__all__ = [
    "ENCODER_WEIGHT_FILES",
    "PRESETS",
    "EncoderWeightsError",
    "EncoderWeightsNotFoundError",
    "ModelConfigError",
    "Preset",
    "UnknownPresetError",
    "build_discriminator",
    "build_generator",
    "build_generator_from_config",
    "cached_weights_path",
    "get_preset",
    "model_config",
    "register",
]
