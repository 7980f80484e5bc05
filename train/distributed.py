"""DistributedDataParallel under ``torchrun``: detection, set-up, and the few collectives used.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address); a plain
``facecolor-train`` run has none of them and is a world of one, with no process group at all.
The backend follows the device: NCCL for CUDA, gloo for the CPU. Only rank 0 validates and
writes files; every rank draws the same epoch permutation and trains on its own shard.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from facecolor.train.errors import DistributedSetupError


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` processes, GPU ``local_rank``."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def detect_world(environ: Mapping[str, str] | None = None) -> World:
    """Read torchrun's variables; a world of one when they are absent."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return World()
    try:
        size, rank = int(environ["WORLD_SIZE"]), int(environ["RANK"])
        local_rank = int(environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as error:
        raise DistributedSetupError(
            f"WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers ({error}); "
            "start multi-process training with torchrun --nproc_per_node N"
        ) from error
    if not 0 <= rank < size:
        raise DistributedSetupError(f"RANK={rank} is outside WORLD_SIZE={size}")
    return World(size, rank, local_rank)


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU); nothing for a world of one."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend, rank=world.rank, world_size=world.size, timeout=datetime.timedelta(minutes=30)
        )
    except (RuntimeError, ValueError) as error:
        raise DistributedSetupError(
            f"could not start the {backend} process group: {error}; run under torchrun, "
            "which sets MASTER_ADDR and MASTER_PORT"
        ) from error


def stop() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op for a world of one)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (returned unchanged for a world of one)."""
    if dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DDP-wrap ``module`` for a multi-process world; the module itself otherwise."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
