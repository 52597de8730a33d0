"""Data-parallel training under torchrun with torch.distributed (DDP).

`torchrun --nproc_per_node N -m pseudovad train ...` starts N processes; each trains on its share of
every global batch (`train.batch_size` is the global batch, split evenly), DDP averages the gradients,
and only rank 0 writes checkpoints, logs and samples. On CUDA each process takes the GPU of its
LOCAL_RANK and talks over NCCL; on CPU the processes talk over gloo. Without torchrun nothing here
does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pseudovad.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """This process's place in the world torchrun describes in its environment (one process without it)."""
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0")))


def is_main_process() -> bool:
    """True outside torchrun and in its rank-0 process: the one that prints and evaluates."""
    return current_world().is_main


def join_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun set up (if any); returns the world and this process's device."""
    world = current_world()
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def wait_for_all(world: World) -> None:
    """Hold each process until every one has finished its work. Rank 0 writes the last checkpoint
    after the others are done; a process that tears the group down meanwhile can abort in gloo."""
    if world.distributed:
        dist.barrier()


def leave_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_split(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size {batch_size} does not split evenly over {world.size} processes")


def local_share(batch: Tensor, world: World) -> Tensor:
    """This process's part of a global batch (see check_batch_split): every `size`-th clip from its rank."""
    return batch[world.rank :: world.size]


def data_parallel(network: nn.Module, device: torch.device) -> nn.Module:
    """Wrap a trainable network in DDP (gradients averaged over processes during backward).

    On CUDA, batch norm layers become SyncBatchNorm, so their statistics cover the global batch as in
    one process; PyTorch has no SyncBatchNorm on CPU, so there each process normalises its own share."""
    if device.type != "cuda":
        return DistributedDataParallel(network)
    return DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(network), device_ids=[device.index])


def unwrap(network: nn.Module) -> nn.Module:
    """The network itself, whether or not it is wrapped in DDP."""
    return network.module if isinstance(network, DistributedDataParallel) else network
