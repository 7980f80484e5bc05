"""torchvision encoders for the "dynamic" U-Nets, and their ImageNet weights, offline.

Each encoder is a plain ``nn.Sequential`` whose layers are run one by one, so skip features are
picked by index (static, trace- and ONNX-friendly) instead of by forward hooks. ``EncoderSpec``
says, like timm's feature info, which layer indices end a resolution (the skips), their
channels and the bottleneck's channels; ``probe_encoder`` recomputes them by a dummy forward
(the tests check the two agree).

Weights: torchvision's own state-dict files, found at an explicit path or in torchvision's cache
(``torch.hub.get_dir()/checkpoints``). Nothing is ever downloaded: the development and training
machines may have no internet, and a silent download would make runs irreproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from facecolor.errors import FacecolorError

#: torchvision's file names for the ImageNet weights of each encoder.
ENCODER_WEIGHT_FILES: dict[str, str] = {
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
    "resnet18": "resnet18-f37072fd.pth",
}
_DOWNLOAD_ROOT = "https://download.pytorch.org/models/"

# ImageNet statistics the torchvision weights were trained with (RGB, [0, 1] input).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderWeightsNotFoundError(FacecolorError, FileNotFoundError):
    """An explicit encoder-weights path that does not exist; the message says where to put it."""


class EncoderWeightsError(FacecolorError, ValueError):
    """An encoder-weights file that is not the state dict of the expected torchvision model."""


@dataclass(frozen=True)
class EncoderSpec:
    """What the decoder needs to know about an encoder.

    ``skip_indices``: indices into the encoder Sequential whose outputs are the last at their
    resolution (shallowest first); ``skip_channels`` their channels; ``out_channels`` the
    channels of the last layer (the bottleneck).
    """

    arch: str
    skip_indices: tuple[int, ...]
    skip_channels: tuple[int, ...]
    out_channels: int
    torchvision_model: Callable[[], nn.Module]
    features: Callable[[nn.Module], nn.Sequential]


def _resnet18_features(model: nn.Module) -> nn.Sequential:
    # Everything but the global pool and the classifier (fastai's cut at -2).
    return nn.Sequential(
        model.conv1, model.bn1, model.relu, model.maxpool,
        model.layer1, model.layer2, model.layer3, model.layer4,
    )


ENCODERS: dict[str, EncoderSpec] = {
    # conv1+bn1+relu /2 (64), maxpool+layer1 /4 (64), layer2 /8 (128), layer3 /16 (256), layer4 /32 (512)
    "resnet18": EncoderSpec(
        "resnet18", (2, 4, 5, 6), (64, 64, 128, 256), 512,
        lambda: torchvision.models.resnet18(weights=None), _resnet18_features,
    ),
    # conv s2 + relu (64), maxpool + fire x2 (128), maxpool + fire x2 (256), maxpool + fire x4 (512);
    # its pools use ceil mode, so at 128 px the sizes are 63, 31, 15, 7 (odd: see DynamicUNet).
    "squeezenet1_1": EncoderSpec(
        "squeezenet1_1", (1, 4, 7), (64, 128, 256), 512,
        lambda: torchvision.models.squeezenet1_1(weights=None), lambda model: model.features,
    ),
}


class GrayToImageNet(nn.Module):
    """L/50-1 [N,1,H,W] in [-1,1] -> [N,3,H,W] normalised like an ImageNet RGB image.

    The L channel becomes a gray image g = (x+1)/2 in [0, 1], replicated to R, G and B, then
    normalised with the ImageNet mean and std per channel. Replicating (rather than folding the
    first conv's weights to one input channel) keeps the encoder's state dict identical to
    torchvision's, so its weight files load unchanged; the constants are folded by the exporter.
    """

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        # out = ((x + 1)/2 - mean)/std = x * scale + shift
        self.register_buffer("scale", 0.5 / std, persistent=False)
        self.register_buffer("shift", (0.5 - mean) / std, persistent=False)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return l_norm * self.scale + self.shift


def build_encoder(arch: str, weights: Path | None) -> nn.Sequential:
    """The torchvision ``arch``'s feature extractor, with ``weights`` loaded if given."""
    spec = ENCODERS[arch]
    model = spec.torchvision_model()
    if weights is not None:
        load_torchvision_weights(model, weights, arch)
    return spec.features(model)


def load_torchvision_weights(model: nn.Module, path: Path, arch: str) -> None:
    """Load a torchvision state-dict file (never unpickling arbitrary objects) into ``model``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a bad file
        raise EncoderWeightsError(
            f"{path} is not a loadable torchvision state dict ({error}); expected "
            f"{ENCODER_WEIGHT_FILES[arch]} from {_DOWNLOAD_ROOT}"
        ) from error
    if not isinstance(state, dict):
        raise EncoderWeightsError(f"{path} holds a {type(state).__name__}, not a state dict for {arch}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).splitlines()[:2])
        raise EncoderWeightsError(
            f"{path} does not match torchvision's {arch} ({first}); use {ENCODER_WEIGHT_FILES[arch]}"
        ) from error


def cached_weights_path(arch: str) -> Path:
    """Where torchvision keeps ``arch``'s ImageNet weights: $TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ENCODER_WEIGHT_FILES[arch]


def resolve_encoder_weights(arch: str, encoder_weights: str | Path | None) -> Path | None:
    """The weights file to load for ``arch``: the explicit path, else the cache, else None.

    An explicit path that does not exist raises EncoderWeightsNotFoundError (a typo must not
    silently train from random init); a missing cache file just means random init.
    """
    if encoder_weights is not None:
        path = Path(encoder_weights).expanduser()
        if not path.is_file():
            raise EncoderWeightsNotFoundError(
                f"encoder weights not found: {path}. Download {_DOWNLOAD_ROOT}{ENCODER_WEIGHT_FILES[arch]} "
                f"on a machine with internet and pass its path, or copy it to {cached_weights_path(arch)} "
                f"to have it used by default; omit the path to start the encoder from random init."
            )
        return path
    cached = cached_weights_path(arch)
    return cached if cached.is_file() else None


def probe_encoder(encoder: nn.Sequential, size: int = 64) -> tuple[list[int], list[int], int]:
    """Skip indices, skip channels and output channels of ``encoder`` found by a dummy forward.

    A skip is a layer whose output resolution differs from the next layer's (fastai's
    ``_get_sz_change_idxs``). Used by the tests to check ``ENCODERS`` against torchvision.
    """
    x = torch.zeros(1, 3, size, size)
    shapes = []
    with torch.no_grad():
        was_training = encoder.training
        encoder.eval()
        for layer in encoder:
            x = layer(x)
            shapes.append(tuple(x.shape))
        encoder.train(was_training)
    indices = [i for i in range(len(shapes) - 1) if shapes[i][-2:] != shapes[i + 1][-2:]]
    return indices, [shapes[i][1] for i in indices], shapes[-1][1]
