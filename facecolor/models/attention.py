"""SAGAN self-attention (Zhang et al. 2019), as fastai places it in its dynamic U-Net.

Written with plain ``matmul`` + ``softmax`` on purpose: ``F.scaled_dot_product_attention``
exports as the ONNX ``Attention`` op from opset 23, which TensorRT parses only from 10.14;
this form exports as MatMul + Softmax at opset 20 (notes/tensorrt-onnx.md). No 1/sqrt(d)
scaling, as in SAGAN.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """x + gamma * attention(x) over all H*W positions; gamma starts at 0 (identity at init).

    Input and output: float [N, C, H, W]. Memory is O(N * (H*W)**2): at 128 px input the
    attention sits at 15x15 (SqueezeNet) or 16x16 (ResNet18), so it stays small.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1, bias=False)
        self.key = nn.Conv2d(channels, inner, 1, bias=False)
        self.value = nn.Conv2d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).flatten(2)  # [N, C/8, P], P = H*W
        k = self.key(x).flatten(2)  # [N, C/8, P]
        v = self.value(x).flatten(2)  # [N, C, P]
        weights = torch.softmax(torch.matmul(q.transpose(1, 2), k), dim=-1)  # [N, P(query), P(key)]
        attended = torch.matmul(v, weights.transpose(1, 2))  # [N, C, P]
        return x + self.gamma * attended.reshape(x.shape)
