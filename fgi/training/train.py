"""One training loop for every method (docs/design.md §5, §8).

    python -m fgi.training.train ours --params params.yaml

* Device: `cuda` when available (one GPU per process), else `cpu`; bfloat16
  autocast where `train.amp` asks for it (`auto`: where the device computes it
  natively, CPU included), channels_last on CUDA and in bfloat16 (`train.channels_last`).
* Seeded; on the CPU deterministic algorithms, so the same params give the
  same numbers.
* `train.epochs` over the training set, capped at `train.max_steps` (0 = no cap).
* Every `train.checkpoint_every` steps an atomic checkpoint
  (`checkpoints/<model>/last.pt`: networks, optimisers, step, RNG states,
  params, curves). A rerun resumes from it when its fingerprint (model params,
  data, protocol) matches, else starts afresh and says so.
* A NaN or Inf loss stops the run with a message; the last good checkpoint stays.
* Each epoch: PSNR inside the holes on a fixed validation batch, and a sample grid.
* DDP when launched by torchrun (`train.nproc > 1` processes on each of
  `train.nnodes` machines, `torchrun_args`): DistributedSampler, NCCL on CUDA /
  gloo on the CPU. Rank 0 alone logs to MLflow; the first process of every
  machine writes the checkpoints and outputs, so `dvc repro` succeeds on each
  node and an interrupted job resumes on all of them (each rank with its own
  RNG states; nodes whose checkpoints disagree stop with a message). Logged
  losses are the mean over all ranks, so every node writes the same curves; a
  NaN on any rank stops every rank.
* Released weights (`models.<name>.released`): imported instead of trained
  (`fgi.training.released`), into the same outputs.
* A classical method (no objective) has nothing to train: its stage writes the
  same outputs, a `model.pt` that holds its params, its validation PSNR and
  sample grid, so predict, `fgi inpaint` and `fgi serve` load every method alike.

`train()` reads as its steps: `setup` (seeds, networks, data), `resume` (the
last checkpoint when its fingerprint matches), `wrap` (torch.compile, DDP),
`loop` (the steps, logging, validation, checkpoints) and `save_outputs`
(model.pt, curves, samples); `record_classical` for a method with nothing to train.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from fgi import files, methods, progress, tracking
from fgi.config import Params, load_params, method_config, to_dict
from fgi.data.dataset import TrainSet
from fgi.data.weights import load_provenance, provenance_tag, weights_file
from fgi.errors import UserError, exits_cleanly
from fgi.inference import processor, resolve_precision
from fgi.methods.base import Objective, make_objective, parameter_count, unwrap
from fgi.methods.vgg import VGG16Features
from fgi.training.checkpoint import (fingerprint, load_checkpoint, rng_state, save_checkpoint,
                                     set_rng_state)
from fgi.training.distributed import (Distributed, mean_over_ranks, on_any_rank, setup_distributed,
                                      step_range, sync_buffers)
from fgi.training.outputs import save_outputs, validate, validation_batch
from fgi.training.released import import_released


@dataclass(frozen=True)
class Paths:
    prepared: Path = Path("data/prepared")
    foreground: Path = Path("data/foreground")
    holes: Path = Path("data/holes")
    holes_semantic: Path = Path("data/holes_semantic")
    weights: Path = Path("data/weights")
    models: Path = Path("models")
    checkpoints: Path = Path("checkpoints")

    def training_data(self) -> tuple[Path, ...]:
        """The files that say which data a run trains on (its checkpoint's fingerprint)."""
        return (self.prepared / "train.txt", self.holes / "masks.csv", self.foreground / "summary.json",
                self.holes_semantic / "train_masks.csv")


class TrainingDiverged(UserError):
    """A loss became NaN or Inf."""


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new tensor with NaN, to expose reads of
        # uninitialised memory; no op of ours reads any, and the fills cost ~10 % of a CPU step.
        torch.utils.deterministic.fill_uninitialized_memory = False


@dataclass
class Session:
    """Everything one training run holds between its steps."""

    name: str
    params: Params
    paths: Paths
    world: Distributed
    objective: Objective
    loader: DataLoader
    sampler: Any
    total: int
    val_batch: list[torch.Tensor]
    autocast: Callable
    memory_format: torch.memory_format
    key: str
    step: int = 0
    history: dict = field(default_factory=lambda: {"curve": [], "val": []})
    precision: str = "float32"  # what train.amp resolved to on this device

    @property
    def last(self) -> Path:
        return self.paths.checkpoints / self.name / "last.pt"


def setup(params: Params, name: str, cfg: Any, paths: Paths, world: Distributed) -> Session:
    """Seeds, networks on the device, the data loader and the validation batch."""
    on_cuda = world.device.type == "cuda"
    # Ranks draw different masks; DDP copies rank 0's initial weights to every rank. The
    # training seed is its own param, so seeds of one model share the data and test pairs.
    seed_everything(params.train.seed + world.rank, deterministic=not on_cuda)
    layers = getattr(cfg, "vgg_layers", ("pool1",))
    objective = make_objective(methods.get(name), cfg, params.data.size,
                               vgg=lambda: VGG16Features(layers, weights=weights_file(paths.weights, "vgg16"),
                                                         seed=params.seed),
                               pretrained=lambda network: weights_file(paths.weights, network))
    # `train.amp`: auto is bfloat16 autocast where the device computes it natively (CUDA sm80+, a
    # CPU with AMX or AVX512-BF16), float32 elsewhere; model.pt and the run record what it resolved to.
    precision = resolve_precision(params.train.amp, world.device)
    memory, autocast = place(objective, world.device, precision, params.train.channels_last)

    dataset = TrainSet(paths.prepared, paths.foreground, paths.holes, augment=params.train.mask_augment,
                       components=paths.holes_semantic, mix=params.holes.train_mix)
    if len(dataset) < params.train.batch_size * world.world:
        raise UserError(f"train.batch_size: {params.train.batch_size} × {world.world} process(es) exceeds "
                        f"the {len(dataset)} training images; lower it or raise split.train")
    generator = torch.Generator().manual_seed(params.train.seed)
    sampler = (DistributedSampler(dataset, world.world, world.rank, shuffle=True, seed=params.train.seed)
               if world.world > 1 else RandomSampler(dataset, generator=generator))
    loader = DataLoader(dataset, batch_size=params.train.batch_size, sampler=sampler, drop_last=True,
                        num_workers=params.train.num_workers, pin_memory=on_cuda,
                        persistent_workers=params.train.num_workers > 0, generator=generator)
    total = params.train.epochs * len(loader)
    if params.train.max_steps:
        total = min(total, params.train.max_steps)
    return Session(name, params, paths, world, objective, loader, sampler, total,
                   validation_batch(paths, params.train.val_images, world.device), autocast, memory,
                   fingerprint(params, name, paths.training_data()), precision=precision)


def place(objective: Objective, where: torch.device, precision: str, channels_last: bool = True):
    """Put `objective` on `where` to train at `precision`; return its memory format and autocast.

    channels_last on CUDA, and on a CPU in bfloat16, whose oneDNN kernels want it (2.4x for
    PConv's step); float32 CPU convolutions gain nothing from it (reports/bench.md)."""
    memory = (torch.channels_last if channels_last and (where.type == "cuda" or precision == "bfloat16")
              else torch.contiguous_format)
    objective.to(where, memory)
    if precision != "bfloat16":
        return memory, contextlib.nullcontext
    return memory, lambda: torch.autocast(where.type, dtype=torch.bfloat16)


def resume(session: Session) -> None:
    """Continue from the last checkpoint when it is this run's (same fingerprint)."""
    world, last, name = session.world, session.last, session.name
    if last.exists():
        checkpoint = load_checkpoint(last)
        if checkpoint.get("fingerprint") == session.key:
            for k, net in session.objective.networks().items():
                net.load_state_dict(checkpoint["networks"][k])
            for k, opt in session.objective.optimizers.items():
                opt.load_state_dict(checkpoint["optimizers"][k])
            session.step, session.history = checkpoint["step"], checkpoint["history"]
            by_rank = checkpoint.get("rng_by_rank")
            set_rng_state(by_rank[world.rank] if world.world > 1 and by_rank else checkpoint["rng"])
            print(f"train@{name}: resumed from {last} at step {session.step}", flush=True)
        elif world.writer:
            print(f"train@{name}: {last} is from other params or data; training from scratch", flush=True)
    if world.world > 1:
        # Each node resumes from its own copy: all of them must stand at the same step, or the
        # processes would run different loops and wait on each other forever.
        lowest, highest = step_range(session.step, world.device)
        if lowest != highest:
            raise UserError(f"train@{name}: the processes would resume at different steps ({lowest} to {highest}): "
                            f"{last} differs between the nodes; copy one node's checkpoints/{name}/ to every "
                            "node, or delete it on every node to train from scratch")


def wrap(session: Session) -> None:
    """torch.compile (CUDA only) and DDP around the networks, which then train."""
    objective, world = session.objective, session.world
    if session.params.train.compile and world.device.type == "cuda":
        # CUDA only: on the CPU, inductor's C++ compile costs more than a demo run saves.
        objective.generator = torch.compile(objective.generator)
    if world.world > 1:
        objective.generator = DistributedDataParallel(objective.generator)
        if objective.discriminator is not None:
            objective.discriminator = DistributedDataParallel(objective.discriminator)
    for net in objective.networks().values():
        net.train()


def check_finite(session: Session, terms: dict[str, float]) -> None:
    """Stop every process when a loss is NaN or Inf on any of them; the last good checkpoint stays."""
    bad = [k for k, v in terms.items() if not np.isfinite(v)]
    world = session.world
    if bad if world.world == 1 else on_any_rank(bool(bad), world.device):
        kept = f"the last good checkpoint ({session.last}) is kept" if session.last.exists() else "no checkpoint yet"
        what = f"loss {bad[0]} became {terms[bad[0]]}" if bad else "a loss became non-finite in another process"
        raise TrainingDiverged(f"train@{session.name}: {what} at step {session.step}; "
                               f"{kept}; lower models.{session.name}.lr_g or check the data")


def checkpoint(session: Session, epoch: int) -> None:
    """Every process checks the weights (the same on all, so all stop together); writers save."""
    objective, world = session.objective, session.world
    if not all(torch.isfinite(p).all() for net in objective.networks().values() for p in net.parameters()):
        raise TrainingDiverged(f"train@{session.name}: weights became non-finite at step {session.step}; the "
                               f"last good checkpoint is kept; lower models.{session.name}.lr_g")
    rng_by_rank = None
    if world.world > 1:
        rng_by_rank = [None] * world.world
        dist.all_gather_object(rng_by_rank, rng_state())
    if world.writer:
        save_checkpoint(session.last, objective, session.step, epoch, session.params, session.key,
                        session.history, rng_by_rank)
        # In the log, so that one reading it knows where a rerun resumes after a crash or a kill.
        print(f"train@{session.name}: checkpoint at step {session.step} in {session.last}", flush=True)


def loop(session: Session, run: tracking.Run) -> int:
    """The steps from `session.step` to `session.total`: log, validate each epoch, checkpoint.
    Returns the epoch after the last one run."""
    params, world, objective = session.params, session.world, session.objective
    steps_per_epoch = len(session.loader)
    bar = progress.bar(total=session.total, initial=session.step, desc=f"train@{session.name}", unit="step",
                       disable=not (world.writer and progress.enabled()))
    epoch = session.step // steps_per_epoch
    while session.step < session.total:
        if isinstance(session.sampler, DistributedSampler):
            session.sampler.set_epoch(epoch)
        skip = session.step - epoch * steps_per_epoch  # batches of this epoch done before a resume
        for index, (image, hole, fg_mask) in enumerate(session.loader):
            if index < skip:
                continue
            if session.step >= session.total:
                break
            batch = [t.to(world.device, non_blocking=True) for t in (image, hole, fg_mask)]
            if session.memory_format is torch.channels_last:
                batch = [t.contiguous(memory_format=session.memory_format) for t in batch]
            objective.schedule(session.step, session.total)
            terms = {k: float(v.detach()) for k, v in objective.step(*batch, autocast=session.autocast).items()}
            session.step += 1
            bar.update()
            check_finite(session, terms)
            step = session.step
            logging_step = step % params.train.log_every == 0 or step == session.total
            if world.world > 1 and logging_step:
                terms = mean_over_ranks(terms, world.device)
            if world.writer and logging_step:
                session.history["curve"].append({"step": step, "epoch": epoch, **terms})
                run.log_metrics(terms, step=step)
                bar.set_postfix(loss=f"{terms['g/total']:.4f}")
            end_of_epoch = index == steps_per_epoch - 1 or step == session.total
            if world.world > 1 and end_of_epoch:
                sync_buffers(objective)
            if world.writer and end_of_epoch:
                psnr_hole, grid = validate(objective.generator, session.val_batch, session.autocast)
                session.history["val"].append({"step": step, "epoch": epoch, "psnr_hole": psnr_hole})
                run.log_metrics({"val/psnr_hole": psnr_hole}, step=step)
                run.log_image(grid, f"samples/step_{step:07d}.png")
            if step % params.train.checkpoint_every == 0 or step == session.total:
                checkpoint(session, epoch)
        epoch += 1
    bar.close()
    return epoch


def record_classical(params: Params, name: str, cfg: Any, paths: Paths, run: tracking.Run) -> None:
    """A method with nothing to train: its params in model.pt, its validation PSNR and samples."""
    solver = methods.get(name).generator(cfg, params.data.size)
    psnr_hole, grid = validate(solver, validation_batch(paths, params.train.val_images, torch.device("cpu")),
                               contextlib.nullcontext)
    history = {"curve": [], "val": [{"step": 0, "epoch": 0, "psnr_hole": psnr_hole}]}
    run.log_metrics({"val/psnr_hole": psnr_hole}, step=0)
    save_outputs(params, name, cfg, paths, solver, 0, history, grid, run)
    # No loss to log: the curve has its columns and no row, so every method has the same outputs.
    files.write_text_atomic(paths.models / name / "curve.csv", "step,epoch\n")


def train(params: Params, name: str, paths: Paths = Paths(), run: tracking.Run | None = None) -> Objective | None:
    """Train method `name`; write `models/<name>/` and return the trained objective (None: classical, or
    released weights imported instead, `models.<name>.released`)."""
    cfg = method_config(params, name)
    load_provenance(paths.weights)  # fail early, with the fix, when the weights stage has not run
    world = setup_distributed()
    run = run if run is not None and world.main else tracking.Run("", enabled=False)
    if not methods.get(name).learned:
        if world.writer:
            record_classical(params, name, cfg, paths, run)
        return None
    if getattr(cfg, "released", None) is not None and cfg.released.given:
        if world.writer:
            import_released(params, name, cfg, paths, run)
        return None
    session = setup(params, name, cfg, paths, world)
    resume(session)
    wrap(session)
    objective = session.objective
    run.set_tags({"device": world.device.type, "world_size": world.world, "precision": session.precision,
                  "processor": processor(world.device),
                  "generator_params": parameter_count(unwrap(objective.generator)),
                  "discriminator_params": parameter_count(objective.discriminator and unwrap(objective.discriminator))})
    epoch = loop(session, run)
    if world.writer:
        history, step = session.history, session.step
        psnr_hole, grid = validate(objective.generator, session.val_batch, session.autocast)
        if not history["val"] or history["val"][-1]["step"] != step:
            history["val"].append({"step": step, "epoch": epoch, "psnr_hole": psnr_hole})
        save_outputs(params, name, cfg, paths, unwrap(objective.generator), step, history, grid, run,
                     session.precision)
    if world.world > 1:
        dist.barrier()
    return objective


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one method of the comparison.")
    parser.add_argument("model", help="a method listed under `methods` in the params file")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    _main(args)


@exits_cleanly
def _main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    method_config(params, args.model)  # a method that is not listed, or a bad section: one clear error
    methods.check_code(args.model, params.methods[args.model])
    main_rank = int(os.environ.get("RANK", "0")) == 0
    everything = to_dict(params)
    with tracking.Run(params.tracking.experiment, enabled=params.tracking.enabled and main_rank,
                      tags=tracking.stage_tags(model=args.model, profile=params.profile,
                                               weights_provenance=_provenance_or_none())) as run:
        run.log_params({"seed": params.seed, "data": everything["data"], "split": everything["split"],
                        "train": everything["train"], f"models.{args.model}":
                        everything["models"].get(args.model, {})})
        train(params, args.model, run=run)


def _provenance_or_none() -> str | None:
    try:
        return provenance_tag(Paths().weights)
    except UserError:
        return None


if __name__ == "__main__":
    main()
