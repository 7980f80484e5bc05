"""A U-Net over a torchvision encoder, in the manner of fastai's ``DynamicUnet``.

Layout (fastai's, with conv-BN-ReLU in the decoder as DESIGN §3 asks):

    L [N,1,H,W] -> GrayToImageNet -> encoder (skips kept at each resolution change)
      -> BN, ReLU, middle conv (c -> 2c -> c)
      -> per skip, deepest first: UpBlock = PixelShuffle x2 (ICNR), BN, ReLU, resize to the
         skip's size if needed, concat BN(skip), ReLU, conv-BN-ReLU x2 (+ self-attention in the
         third-last block for the 'psag' family)
      -> PixelShuffle x2 (the encoders' first layer already halves), resize to H x W
      -> concat the raw input L (fastai's "last cross"), residual block, 1x1 conv -> 2 -> tanh

SqueezeNet's ceil-mode pools give odd sizes (63, 31, 15, 7 at 128 px) and any input size
gives odd sizes somewhere, so every upsampled map is resized (bilinear) to its skip's size when
the two differ; the check is on static shapes, so tracing and ONNX export stay clean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facecolor.models.attention import SelfAttention
from facecolor.models.encoders import GrayToImageNet


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    """Conv (no bias, BN follows) -> BatchNorm -> ReLU, same spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()
    )


def icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR init (Aitken et al. 2017): each group of scale**2 sub-pixel kernels starts equal.

    The conv before PixelShuffle then starts as nearest-neighbour upsampling of a normal conv,
    which avoids the checkerboard artefacts of random sub-pixel kernels.
    """
    out_ch, *rest = weight.shape
    base = torch.empty(out_ch // scale**2, *rest)
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale**2, dim=0))


class PixelShuffleUp(nn.Module):
    """[N,in,h,w] -> [N,out,2h,2w]: 1x1 conv to 4*out, PixelShuffle(2), BN, ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 1, bias=False)
        icnr_(self.conv.weight)
        self.shuffle = nn.PixelShuffle(2)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.shuffle(self.conv(x))))


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize [N,C,h,w] to ``size`` (H, W) when it differs; shape-only control flow."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """One decoder stage: upsample ``x`` to the skip's size, join the skip, two conv-BN-ReLU.

    x [N,in_ch,h,w] + skip [N,skip_ch,H',W'] (H' about 2h) -> [N,out_ch,H',W'].
    """

    def __init__(self, in_ch: int, up_ch: int, skip_ch: int, out_ch: int, *, attention: bool) -> None:
        super().__init__()
        self.up = PixelShuffleUp(in_ch, up_ch)
        self.skip_bn = nn.BatchNorm2d(skip_ch)
        self.relu = nn.ReLU()
        self.conv1 = conv_bn_relu(up_ch + skip_ch, out_ch)
        self.conv2 = conv_bn_relu(out_ch, out_ch)
        self.attention = SelfAttention(out_ch) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = resize_to(self.up(x), skip.shape[-2:])
        joined = self.relu(torch.cat([up, self.skip_bn(skip)], dim=1))
        return self.attention(self.conv2(self.conv1(joined)))


class ResBlock(nn.Module):
    """relu(x + BN(conv(relu(BN(conv(x)))))), channels kept: fastai's final ResBlock."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class DynamicUNet(nn.Module):
    """Encoder U-Net: L/50-1 [N,1,H,W] float32 in [-1,1] -> ab/110 [N,2,H,W] in (-1,1).

    Channel numbers come from the model config (``facecolor.models.build``) so a checkpoint
    rebuilds exactly: ``skip_channels`` (encoder, shallowest first), ``middle_channels``,
    ``upsample_channels`` / ``decoder_channels`` (decoder blocks, deepest first) and
    ``attention_block`` (index of the decoder block with self-attention, or None).
    """

    def __init__(
        self,
        encoder: nn.Sequential,
        *,
        skip_indices: Sequence[int],
        skip_channels: Sequence[int],
        bottleneck_channels: int,
        middle_channels: int,
        upsample_channels: Sequence[int],
        decoder_channels: Sequence[int],
        final_channels: int,
        attention_block: int | None,
        out_channels: int = 2,
    ) -> None:
        super().__init__()
        if not (len(skip_indices) == len(skip_channels) == len(upsample_channels) == len(decoder_channels)):
            raise ValueError("skip_indices, skip_channels, upsample_channels and decoder_channels must align")
        self.stem = GrayToImageNet()
        self.encoder = encoder
        self.skip_indices = tuple(int(i) for i in skip_indices)
        self.middle = nn.Sequential(
            nn.BatchNorm2d(bottleneck_channels),
            nn.ReLU(),
            conv_bn_relu(bottleneck_channels, middle_channels * 2),
            conv_bn_relu(middle_channels * 2, middle_channels),
        )
        blocks, in_ch = [], middle_channels
        plan = zip(reversed(skip_channels), upsample_channels, decoder_channels)  # deepest first
        for i, (skip_ch, up_ch, out_ch) in enumerate(plan):
            blocks.append(UpBlock(in_ch, up_ch, skip_ch, out_ch, attention=i == attention_block))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.final_up = PixelShuffleUp(in_ch, final_channels)
        crossed = final_channels + 1  # + the raw L input
        self.head = nn.Sequential(ResBlock(crossed), nn.Conv2d(crossed, out_channels, 1))
        for module in [self.middle, self.blocks, self.head]:
            _kaiming_init(module)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        """[N,1,H,W] float32 in [-1,1] -> [N,2,H,W] float32 in (-1,1), same H and W."""
        x = self.stem(l_norm)  # [N,3,H,W], ImageNet-normalised gray
        skips = []
        for index, layer in enumerate(self.encoder):
            x = layer(x)
            if index in self.skip_indices:
                skips.append(x)
        x = self.middle(x)
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        x = resize_to(self.final_up(x), l_norm.shape[-2:])
        x = torch.cat([x, l_norm], dim=1)  # the last cross: the raw input next to the features
        return torch.tanh(self.head(x))

    @torch.no_grad()
    def scale_encoder_(self, factor: float) -> None:
        """Make every encoder activation ``factor`` times smaller, the output unchanged.

        Why: an ImageNet encoder has no normalisation of its own, and its deep activations
        reach 10^4 on noise and 10^3 on photos; fp16 arithmetic (an fp16 ONNX, a TensorRT
        engine) loses or overflows sums of such values. The encoder is conv + ReLU + max-pool +
        concat, all positively homogeneous, so dividing the first conv's weights and every
        conv's bias by ``factor`` divides every activation by it; each consumer of an encoder
        output is a BatchNorm (``middle[0]``, the blocks' ``skip_bn``), whose running mean,
        running variance and eps are rescaled to match (exact for powers of two).
        """
        convs = [m for m in self.encoder.modules() if isinstance(m, nn.Conv2d)]
        convs[0].weight.div_(factor)
        for conv in convs:
            if conv.bias is not None:
                conv.bias.div_(factor)
        for norm in [self.middle[0], *(block.skip_bn for block in self.blocks)]:
            norm.running_mean.div_(factor)
            norm.running_var.div_(factor**2)
            norm.eps /= factor**2


def _kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal for the decoder's plain convs (fastai's default); ICNR ones are kept."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
