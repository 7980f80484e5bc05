"""The pix2pix U-Net generator (Isola et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix).

Written flat (a list of down blocks and a list of up blocks) instead of pix2pix's recursive
``UnetSkipConnectionBlock`` so the whole network reads top to bottom. Layer for layer it is the
reference: conv 4x4 stride 2 down with BatchNorm and LeakyReLU(0.2), transposed conv 4x4
stride 2 up with BatchNorm and ReLU, dropout 0.5 in the innermost up blocks at 8*ngf, no norm
on the outermost down or the innermost down, skip concatenation, tanh out.

The reference only works on sizes divisible by 2**depth; this one pads the input (reflect) up
to the next multiple and crops the output back, so any H, W >= 32 works (96x160, 100x75, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _down(in_ch: int, out_ch: int, *, norm: bool, act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.LeakyReLU(0.2)] if act else []
    layers.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=not norm))
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def _up(in_ch: int, out_ch: int, *, dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReLU(),
        nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers)


def unet_channels(ngf: int, depth: int) -> list[int]:
    """Channels after each down block, e.g. ngf=64, depth=7: [64, 128, 256, 512, 512, 512, 512]."""
    return [ngf * min(2**i, 8) for i in range(depth)]


class UNetGenerator(nn.Module):
    """pix2pix U-Net: L/50-1 [N,1,H,W] float32 in [-1,1] -> ab/110 [N,2,H,W] in (-1,1).

    ``depth`` down blocks halve the size each; at depth 7 a 128x128 input reaches a 1x1
    bottleneck, as in pix2pix's ``unet_128``. Inputs whose sides are not multiples of
    ``2**depth`` are padded (reflect where the side allows it, else replicate) and cropped back.
    """

    def __init__(self, *, ngf: int = 64, depth: int = 7, in_channels: int = 1, out_channels: int = 2) -> None:
        super().__init__()
        if depth < 5:
            raise ValueError(f"U-Net depth must be at least 5 (pix2pix's layout), got {depth}")
        self.depth = depth
        chans = unet_channels(ngf, depth)
        downs = [nn.Sequential(nn.Conv2d(in_channels, chans[0], 4, stride=2, padding=1))]
        for i in range(1, depth):
            innermost = i == depth - 1
            downs.append(_down(chans[i - 1], chans[i], norm=not innermost, act=True))
        self.downs = nn.ModuleList(downs)
        # ups[j] undoes downs[depth-1-j]; all but the innermost take the skip concatenation.
        ups = []
        for i in range(depth - 1, 0, -1):
            innermost = i == depth - 1
            in_ch = chans[i] if innermost else 2 * chans[i]
            # pix2pix: dropout in the (depth - 5) 8*ngf blocks just outside the innermost.
            dropout = not innermost and i >= 4
            ups.append(_up(in_ch, chans[i - 1], dropout=dropout))
        self.ups = nn.ModuleList(ups)
        self.out = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(2 * chans[0], out_channels, 4, stride=2, padding=1), nn.Tanh()
        )

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        """[N,1,H,W] float32 in [-1,1] -> [N,2,H,W] float32 in (-1,1), same H and W."""
        height, width = l_norm.shape[-2:]
        x = _pad_to_multiple(l_norm, 2**self.depth)
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds the innermost up block directly
        for up in self.ups:
            x = up(x)
            x = torch.cat([skips.pop(), x], dim=1)
        return self.out(x)[..., :height, :width]


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad [N,C,H,W] on the bottom/right up to multiples of ``multiple`` (shape-only logic)."""
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflect mirrors real content into the margin (better statistics than zeros); it needs the
    # pad to be smaller than the side, so tiny inputs fall back to replicate.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
