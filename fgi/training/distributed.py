"""Several processes, one job: torchrun's environment and the few collectives the loop needs.

One process per GPU (NCCL), or CPU processes with gloo, on each of
`train.nnodes` machines (`torchrun_args`). Rank 0 alone logs to MLflow; the
first process of every machine writes checkpoints and outputs there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fgi.config import Train
from fgi.methods.base import Objective, unwrap


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The one process that logs to MLflow."""
        return self.rank == 0

    @property
    def writer(self) -> bool:
        """The first process of each machine: it writes checkpoints and outputs there."""
        return self.local_rank == 0


def setup_distributed() -> Distributed:
    """Read torchrun's environment; one process per GPU, gloo between CPU processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Distributed(rank=int(os.environ.get("RANK", "0")), world=world, device=device, local_rank=local)


def torchrun_args(train: Train, model: str) -> list[str]:
    """torchrun's options for `train.nproc` processes on each of `train.nnodes` machines.

    Several machines meet at `train.rdzv_endpoint` (c10d rendezvous): every node runs the
    same command with the same params.yaml, and the rendezvous numbers the nodes."""
    if train.nnodes == 1:
        return ["--standalone", f"--nproc_per_node={train.nproc}"]
    return [f"--nnodes={train.nnodes}", f"--nproc_per_node={train.nproc}", "--rdzv_backend=c10d",
            f"--rdzv_endpoint={train.rdzv_endpoint}", f"--rdzv_id=fgi-train-{model}"]


def sync_buffers(objective: Objective) -> None:
    """Rank 0's BatchNorm statistics on every rank. DDP broadcasts them at each forward, but
    the last forward leaves each rank its own; validation and the written outputs use rank 0's."""
    for net in objective.networks().values():
        for buffer in unwrap(net).buffers():
            dist.broadcast(buffer, src=0)


def step_range(step: int, device: torch.device) -> tuple[int, int]:
    """The lowest and highest `step` over every process of the job."""
    values = torch.tensor([step, -step], dtype=torch.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return int(-values[1]), int(values[0])


def on_any_rank(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on some process: all of them then stop together, none waits."""
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(terms: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each loss term averaged over every process of the job (the same on every rank)."""
    values = torch.tensor(list(terms.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(terms, (values / dist.get_world_size()).tolist()))
