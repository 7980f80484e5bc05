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
    """``decay``-weighted running average of ``module``'s parameters and float buffers.

    The (average, live) tensor pairs are listed once: the optimizer and BatchNorm update the
    live tensors in place, so each step is one fused lerp and one copy, with no state-dict
    rebuilt on the training loop's hot path.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        live = plain(module)
        self.module = copy.deepcopy(live).eval()  # keeps ``.config`` for the checkpoint
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        pairs = list(zip(self.module.state_dict().values(), live.state_dict().values()))
        self._floats = [pair for pair in pairs if pair[0].is_floating_point()]
        self._counters = [pair for pair in pairs if not pair[0].is_floating_point()]  # num_batches_tracked

    @torch.no_grad()
    def update(self) -> None:
        """Move the average a step of ``1 - decay`` towards the live module's current state."""
        averages, lives = zip(*self._floats)
        torch._foreach_lerp_(averages, lives, 1.0 - self.decay)
        for average, live in self._counters:
            average.copy_(live)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
