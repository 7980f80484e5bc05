"""Training speed on this machine: images/s of each stage's step x render size x precision.

Why: whether bf16 autocast, a smaller render or another thread count pays off depends on the
CPU (oneDNN has native bf16 kernels only where the CPU has avx512_bf16/AMX), so each lever is
measured here before it is kept. The steps timed are the trainer's own (``facecolor.train.
steps``) on the shipped generator and the PatchGAN, with random faces-sized inputs; rounds
interleave the configurations, so slow drift of a shared machine hits all of them alike, and
the median of the rounds is reported.

    taskset -c 0 python scripts/train_speed.py --threads 1 --json docs/training/speed.json \
        --markdown docs/training/speed.md
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import torch

from facecolor.files import write_json, write_text
from facecolor.machine import cpu_name
from facecolor.models import build_discriminator, build_generator
from facecolor.train.steps import STEPS, Nets

STAGES = {"G": "pretrain_g", "D": "pretrain_d", "GAN": "gan"}


def make_nets(stage: str, preset: str, size: int, width: float, amp: str) -> Nets:
    """G in eval mode while D pretrains, as the trainer has it; an Adam for each network, since a
    stage steps only its own and Adam allocates nothing before a step."""
    generator = build_generator(preset, render_size=size, width=width).train(stage != "pretrain_d")
    discriminator = build_discriminator(width=width).train()

    def adam(module):
        return torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999))

    return Nets(generator, discriminator, torch.device("cpu"), amp, opt_g=adam(generator), opt_d=adam(discriminator))


def time_steps(nets: Nets, stage: str, batch: int, size: int, steps: int) -> float:
    """Images per second of ``steps`` steps after one warm-up step."""
    l_norm = torch.rand(batch, 1, size, size) * 2 - 1
    ab_norm = (torch.rand(batch, 2, size, size) * 2 - 1) * 0.3
    STEPS[stage](nets, l_norm, ab_norm, 100.0)
    started = time.perf_counter()
    for _ in range(steps):
        STEPS[stage](nets, l_norm, ab_norm, 100.0)
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpsagd")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--precisions", default="off,bf16")
    parser.add_argument("--stages", default="G,D,GAN")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="Rough time per measurement.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = list(itertools.product(args.stages.split(","), map(int, args.sizes.split(",")),
                                     args.precisions.split(",")))
    nets = {config: make_nets(STAGES[config[0]], args.preset, config[1], args.width, config[2])
            for config in configs}
    steps = {}
    for config in configs:  # calibrate steps to about --seconds each
        rate = time_steps(nets[config], STAGES[config[0]], args.batch, config[1], 2)
        steps[config] = max(3, round(args.seconds * rate / args.batch))
    rates: dict[tuple, list[float]] = {config: [] for config in configs}
    for _ in range(args.rounds):
        for config in configs:
            rates[config].append(time_steps(nets[config], STAGES[config[0]], args.batch, config[1], steps[config]))
    rows = [{"stage": stage, "size": size, "precision": "fp32" if amp == "off" else amp,
             "images_per_s": round(statistics.median(rates[(stage, size, amp)]), 2),
             "rounds": [round(r, 2) for r in rates[(stage, size, amp)]]}
            for stage, size, amp in configs]
    machine = {"cpu": cpu_name(), "threads": args.threads,
               "torch": torch.__version__, "preset": args.preset, "width": args.width, "batch": args.batch}
    lines = [f"Training steps on {machine['cpu']}, {args.threads} thread(s), torch {torch.__version__}: "
             f"{args.preset} width {args.width}, batch {args.batch}, median of {args.rounds} rounds (images/s).", "",
             "| stage | size | fp32 | bf16 | bf16 / fp32 |", "| --- | ---: | ---: | ---: | ---: |"]
    for stage, size in itertools.product(args.stages.split(","), map(int, args.sizes.split(","))):
        by = {row["precision"]: row["images_per_s"] for row in rows if row["stage"] == stage and row["size"] == size}
        ratio = f"{by['bf16'] / by['fp32']:.2f}x" if {"bf16", "fp32"} <= set(by) else ""
        lines.append(f"| {stage} | {size} | {by.get('fp32', '')} | {by.get('bf16', '')} | {ratio} |")
    print("\n".join(lines))
    if args.json:
        write_json(args.json, {"machine": machine, "rows": rows})
    if args.markdown:
        write_text(args.markdown, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
