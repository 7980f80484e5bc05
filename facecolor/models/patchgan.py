"""The pix2pix 70x70 PatchGAN discriminator (``NLayerDiscriminator`` with n_layers=3).

It classifies overlapping 70x70 patches of the (L, ab) image as real or fake, which judges
local color texture and leaves global structure to the L1 term. At 128x128 it gives a 14x14
grid of logits, at 256x256 the familiar 30x30.
"""

from __future__ import annotations

import torch
from torch import nn

#: (kernel, stride) of each conv, input to output: what fixes the receptive field at 70 px.
PATCHGAN_CONVS: tuple[tuple[int, int], ...] = ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))


def receptive_field(convs: tuple[tuple[int, int], ...] = PATCHGAN_CONVS) -> int:
    """Receptive field in input pixels of one output logit: 70 for the default layout."""
    field, jump = 1, 1
    for kernel, stride in convs:
        field += (kernel - 1) * jump
        jump *= stride
    return field


class PatchDiscriminator(nn.Module):
    """cat(L/50-1, ab/110) [N,3,H,W] float32 in [-1,1] -> real/fake logits [N,1,h,w].

    conv 4x4 s2 ndf + LeakyReLU(0.2) (no norm), then 2*ndf and 4*ndf (s2) and 8*ndf (s1)
    with BatchNorm, then a 1-channel conv s1; h = H/8 - 2 for H divisible by 8.
    Outputs are raw logits for BCE-with-logits.
    """

    def __init__(self, *, in_channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        chans = [in_channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        for i, (kernel, stride) in enumerate(PATCHGAN_CONVS[:-1]):
            first = i == 0
            layers.append(nn.Conv2d(chans[i], chans[i + 1], kernel, stride=stride, padding=1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.LeakyReLU(0.2))
        kernel, stride = PATCHGAN_CONVS[-1]
        layers.append(nn.Conv2d(chans[-1], 1, kernel, stride=stride, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, lab_norm: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] (L then ab, both normalised) -> [N,1,h,w] logits."""
        return self.model(lab_norm)
