"""The pix2pix pieces: which network each step updates, and the losses each one returns."""

from __future__ import annotations

import pytest
import torch

from facecolor.models import build_discriminator, build_generator
from facecolor.train import steps


def _nets(stage: str) -> steps.Nets:
    torch.manual_seed(0)
    generator = build_generator("pug", render_size=32, width=0.125)
    discriminator = build_discriminator(width=0.125)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999))  # noqa: E731
    return steps.Nets(
        generator, discriminator, torch.device("cpu"), "off",
        opt_g=adam(generator) if stage in ("pretrain_g", "gan") else None,
        opt_d=adam(discriminator) if stage in ("pretrain_d", "gan") else None,
    )


def _batch():
    torch.manual_seed(1)
    return torch.rand(4, 1, 32, 32) * 2 - 1, (torch.rand(4, 2, 32, 32) - 0.5) * 0.6


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize(
    "stage, keys, g_moves, d_moves",
    [
        ("pretrain_g", {"l1"}, True, False),
        ("pretrain_d", {"d", "d_real", "d_fake"}, False, True),
        ("gan", {"d", "d_real", "d_fake", "g", "g_gan", "l1"}, True, True),
    ],
)
def test_each_stage_updates_only_its_networks(stage, keys, g_moves, d_moves):
    nets = _nets(stage)
    g_before, d_before = _snapshot(nets.generator), _snapshot(nets.discriminator)
    losses = steps.STEPS[stage](nets, *_batch(), 100.0)
    assert set(losses) == keys
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in losses.values())
    assert _changed(g_before, nets.generator) == g_moves
    assert _changed(d_before, nets.discriminator) == d_moves


def test_generator_step_freezes_d_and_restores_it():
    nets = _nets("gan")
    l_norm, ab_norm = _batch()
    fake = nets.generator(l_norm)
    seen = {}
    original = nets.discriminator.forward

    def spy(x):
        seen["frozen"] = not any(p.requires_grad for p in nets.discriminator.parameters())
        return original(x)

    nets.discriminator.forward = spy
    losses = steps.generator_step(nets, l_norm, ab_norm, fake, 100.0)
    assert seen["frozen"]
    assert all(p.requires_grad for p in nets.discriminator.parameters())
    assert all(p.grad is None for p in nets.discriminator.parameters())
    assert torch.isclose(losses["g"], losses["g_gan"] + 100.0 * losses["l1"])


def test_discriminator_step_sees_detached_fakes_only():
    nets = _nets("gan")
    l_norm, ab_norm = _batch()
    fake = nets.generator(l_norm)
    steps.discriminator_step(nets, l_norm, ab_norm, fake.detach())
    assert all(p.grad is None for p in nets.generator.parameters())


def test_loss_meter_means_and_one_readback():
    meter = steps.LossMeter()
    meter.add({"l1": torch.tensor(1.0), "d": torch.tensor(3.0)})
    meter.add({"l1": torch.tensor(3.0), "d": torch.tensor(5.0)})
    assert meter.means() == {"d": 4.0, "l1": 2.0}
    doubled = meter.means(all_reduce=lambda t: t * 2)  # sums and step counts both reduce
    assert doubled == {"d": 4.0, "l1": 2.0}
