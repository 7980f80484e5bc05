"""An exponential moving average of the generator, the weights a GAN run validates and ships.

Why: in the GAN stage the generator's last-step weights swing from epoch to epoch (validation
PSNR moved by 1 dB between consecutive epochs on the held-out faces), because G and D keep
chasing each other. Averaging G's weights over the last few thousand steps (Polyak averaging,
as StyleGAN and timm's ``ModelEmaV2`` do) gives a model that sits in the middle of that swing.
BatchNorm statistics are averaged too, so the averaged weights never meet statistics from one
particular step.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from facecolor.train.steps import plain


class WeightAverage:
    """``decay``-weighted running average of a module's parameters and float buffers."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(plain(module)).eval()  # keeps ``.config`` for the checkpoint
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average a step of ``1 - decay`` towards ``module``'s current state."""
        live = plain(module).state_dict()
        for key, value in self.module.state_dict().items():
            if value.is_floating_point():
                value.lerp_(live[key].to(value.dtype), 1.0 - self.decay)
            else:  # BatchNorm's num_batches_tracked
                value.copy_(live[key])

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
