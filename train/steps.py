"""One optimisation step of each training stage, as explicit pieces in the manner of pix2pix.

- ``pretrain_g_step``: G alone, L1 between predicted and true ab.
- ``pretrain_d_step``: D alone, BCE-with-logits on real (L, ab) vs. fakes from the frozen,
  pretrained G.
- ``gan_step``: one G forward, then ``discriminator_step`` on the *detached* fakes, then
  ``generator_step`` with D frozen (``requires_grad(False)``), loss ``BCE + l1_weight * L1``.

Every step returns its losses as 0-dim tensors still on the device: the caller sums them
there (``LossMeter``) and reads them back once per epoch, so a CUDA step never waits on the
host. Mixed precision is the ``Nets`` object's business: its ``autocast()`` and its two
gradient scalers (real scalers for fp16, pass-through ones otherwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

Losses = dict[str, torch.Tensor]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def plain(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE-with-logits of PatchGAN logits against an all-real or all-fake target (fp32)."""
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def pair(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """The discriminator's input: cat(L_norm, ab_norm) -> [B, 3, H, W]."""
    return torch.cat([l_norm, ab_norm.to(l_norm.dtype)], dim=1)


@dataclass
class Nets:
    """The two networks of a run, their optimizers and mixed-precision state.

    ``generator`` and ``discriminator`` may be DDP-wrapped; ``discriminator`` is None for
    presets without a GAN stage. ``amp`` is ``off``, ``bf16`` or ``fp16`` (scalers only do
    something for fp16, where small gradients would otherwise underflow).
    """

    generator: nn.Module
    discriminator: nn.Module | None
    device: torch.device
    amp: str = "off"
    opt_g: torch.optim.Optimizer | None = None
    opt_d: torch.optim.Optimizer | None = None
    scaler_g: torch.amp.GradScaler = field(init=False)
    scaler_d: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        fp16 = self.amp == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the run's AMP dtype on CUDA; a no-op when AMP is off."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])


def _apply(loss: torch.Tensor, optimizer, scaler: torch.amp.GradScaler) -> None:
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def pretrain_g_step(nets: Nets, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> Losses:
    """G pretraining: minimise L1(G(L), ab). Returns ``{'l1'}``."""
    nets.opt_g.zero_grad(set_to_none=True)
    with nets.autocast():
        fake = nets.generator(l_norm)
    l1 = F.l1_loss(fake.float(), ab_norm)
    _apply(l1, nets.opt_g, nets.scaler_g)
    return {"l1": l1.detach()}


def discriminator_step(
    nets: Nets, l_norm: torch.Tensor, ab_norm: torch.Tensor, fake_ab: torch.Tensor
) -> Losses:
    """One D update on real pairs vs. ``fake_ab`` (already detached). Returns d, d_real, d_fake.

    Real and fake go through D in two passes, as in pix2pix, so BatchNorm never mixes them;
    under DDP the first backward skips the gradient all-reduce (``no_sync``) and the second
    reduces the sum once.
    """
    disc = nets.discriminator
    nets.opt_d.zero_grad(set_to_none=True)
    no_sync = getattr(disc, "no_sync", contextlib.nullcontext)
    with no_sync():
        with nets.autocast():
            logits_real = disc(pair(l_norm, ab_norm))
        loss_real = 0.5 * bce(logits_real, real=True)
        nets.scaler_d.scale(loss_real).backward()
    with nets.autocast():
        logits_fake = disc(pair(l_norm, fake_ab))
    loss_fake = 0.5 * bce(logits_fake, real=False)
    _apply(loss_fake, nets.opt_d, nets.scaler_d)
    return {
        "d": (loss_real + loss_fake).detach(),
        "d_real": loss_real.detach(),
        "d_fake": loss_fake.detach(),
    }


def generator_step(
    nets: Nets, l_norm: torch.Tensor, ab_norm: torch.Tensor, fake_ab: torch.Tensor, l1_weight: float
) -> Losses:
    """One G update with D frozen: ``BCE(D(L, G(L)), real) + l1_weight * L1``. Returns g, g_gan, l1.

    D runs unwrapped (no DDP) here: it gets no gradients, so there is nothing to reduce.
    """
    disc = plain(nets.discriminator)
    set_requires_grad(disc, False)
    try:
        nets.opt_g.zero_grad(set_to_none=True)
        with nets.autocast():
            logits = disc(pair(l_norm, fake_ab))
        gan = bce(logits, real=True)
        l1 = F.l1_loss(fake_ab.float(), ab_norm)
        loss = gan + l1_weight * l1
        _apply(loss, nets.opt_g, nets.scaler_g)
    finally:
        set_requires_grad(disc, True)
    return {"g": loss.detach(), "g_gan": gan.detach(), "l1": l1.detach()}


def gan_step(nets: Nets, l_norm: torch.Tensor, ab_norm: torch.Tensor, l1_weight: float) -> Losses:
    """One pix2pix iteration: G forward, D step on detached fakes, G step with D frozen."""
    with nets.autocast():
        fake = nets.generator(l_norm)
    losses = discriminator_step(nets, l_norm, ab_norm, fake.detach())
    losses.update(generator_step(nets, l_norm, ab_norm, fake, l1_weight))
    return losses


def pretrain_d_step(nets: Nets, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> Losses:
    """D pretraining: a D step on fakes from the pretrained G (no gradients into G)."""
    with torch.no_grad(), nets.autocast():
        fake = plain(nets.generator)(l_norm)
    return discriminator_step(nets, l_norm, ab_norm, fake)


#: stage name -> its step. The trainer looks a stage up here; nothing branches on strings.
STEPS: dict[str, Callable[..., Losses]] = {
    "pretrain_g": lambda nets, l, ab, l1_weight: pretrain_g_step(nets, l, ab),
    "pretrain_d": lambda nets, l, ab, l1_weight: pretrain_d_step(nets, l, ab),
    "gan": gan_step,
}


class LossMeter:
    """Sums step losses on the device; ``means()`` reads them back in one transfer."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, losses: Losses) -> None:
        for name, value in losses.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.steps += 1

    def means(self, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """Mean of every loss over the steps so far (over all ranks when given ``all_reduce``)."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        steps = self.sums[names[0]].new_tensor(float(self.steps))  # reduced with the sums under DDP
        stacked = torch.stack([self.sums[name] for name in names] + [steps])
        if all_reduce is not None:
            stacked = all_reduce(stacked)
        values = stacked.tolist()
        steps = max(values[-1], 1.0)
        return {name: value / steps for name, value in zip(names, values[:-1])}
