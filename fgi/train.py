"""One training loop for every learned model (docs/design.md §5, §8).

    python -m fgi.train ours --params params.yaml

* Device: `cuda` when available (one GPU per process), else `cpu`; bf16
  autocast and channels_last on CUDA (`train.amp`, `train.channels_last`).
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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from fgi import files, metrics, progress, tracking
from fgi.config import Params, Train, load_params, to_dict
from fgi.data.dataset import PairSet, TrainSet, to_uint8
from fgi.errors import UserError, exits_cleanly
from fgi.models import parameter_count
from fgi.models.vgg import VGG16Features
from fgi.objectives import Objective, composite, make_objective, unwrap
from fgi.weights import load_provenance, provenance_tag, weights_file


@dataclass(frozen=True)
class Paths:
    prepared: Path = Path("data/prepared")
    foreground: Path = Path("data/foreground")
    holes: Path = Path("data/holes")
    weights: Path = Path("data/weights")
    models: Path = Path("models")
    checkpoints: Path = Path("checkpoints")


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


class TrainingDiverged(UserError):
    """A loss became NaN or Inf."""


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


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def fingerprint(params: Params, name: str, paths: Paths) -> str:
    """What a checkpoint must share with this run to be resumed: model, protocol and data."""
    train = params.train
    protocol = {"model": name, "cfg": to_dict(getattr(params.models, name)), "size": params.data.size,
                "seed": train.seed, "batch_size": train.batch_size, "mask_augment": train.mask_augment,
                "world": int(os.environ.get("WORLD_SIZE", "1"))}
    digest = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode())
    for path in (paths.prepared / "train.txt", paths.holes / "masks.csv", paths.foreground / "summary.json"):
        digest.update(path.read_bytes() if path.exists() else b"")
    # The training code too: after a fix to a loss, a finished checkpoint must not be reused.
    package = Path(__file__).parent
    for path in sorted([package / "train.py", package / "objectives.py", package / "losses.py",
                        *(package / "models").glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def rng_state() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    # Plain lists, so the checkpoint loads with weights_only=True.
    numpy_state = [kind, keys.tolist(), position, has_gauss, cached]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save through a buffer: a file's archive records carry its (temporary, random)
    name, which would make identical checkpoints differ byte for byte."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    files.write_bytes_atomic(path, buffer.getvalue())


def save_checkpoint(path: Path, objective: Objective, step: int, epoch: int, params: Params,
                    key: str, history: dict, rng_by_rank: list | None = None) -> None:
    """`rng_by_rank`: every process's RNG states (DDP), so each resumes its own draws."""
    checkpoint = {
        "model": objective.name, "step": step, "epoch": epoch, "fingerprint": key,
        "networks": {k: unwrap(net).state_dict() for k, net in objective.networks().items()},
        "optimizers": {k: opt.state_dict() for k, opt in objective.optimizers.items()},
        "rng": rng_state(), "params": to_dict(params), "history": history,
    }
    if rng_by_rank is not None:
        checkpoint["rng_by_rank"] = rng_by_rank
    save_atomic(checkpoint, path)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # data, never code
    except Exception as err:  # noqa: BLE001 - a corrupt file is the user's to delete
        raise UserError(f"{path}: cannot load checkpoint ({type(err).__name__}: {err}); delete it to "
                        "train from scratch") from err


def sample_grid(masked: torch.Tensor, filled: torch.Tensor, image: torch.Tensor) -> np.ndarray:
    """uint8 grid, one row per image: masked input | composited output | ground truth."""
    rows = [np.concatenate(list(to_uint8(batch)), axis=1) for batch in (masked, filled, image)]
    return np.concatenate(rows, axis=0)  # (3H, N*W, 3)


@torch.no_grad()
def validate(objective: Objective, batch: tuple, autocast) -> tuple[float, np.ndarray]:
    """Mean PSNR inside the holes of the composited outputs, and the sample grid."""
    image, hole, _ = batch
    # Only rank 0 validates: the bare module, as DDP's forward would wait for the other ranks.
    generator = unwrap(objective.generator)
    was_training = generator.training
    generator.eval()
    masked = image * (1 - hole)
    with autocast():
        prediction = generator(masked, hole)
    filled = composite(prediction.float(), image, hole)
    generator.train(was_training)
    mse = metrics.region_mse(to_uint8(filled), to_uint8(image), hole[:, 0].cpu().numpy() > 0.5)
    values = metrics.psnr(mse)
    # A perfect hole (PSNR +inf) cannot be averaged; 100 dB stands in for it.
    return float(np.nanmean(np.minimum(values, 100.0))), sample_grid(masked, filled, image)


def write_curves(out: Path, history: dict) -> None:
    for name, rows in history.items():
        if not rows:
            continue
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        files.write_text_atomic(out / f"{name}.csv", text.getvalue())


def build_vgg(params: Params, paths: Paths, layers) -> VGG16Features:
    return VGG16Features(layers, weights=weights_file(paths.weights, "vgg16"), seed=params.seed)


def train(params: Params, name: str, paths: Paths = Paths(), run: tracking.Run | None = None) -> Objective:
    """Train model `name`; write `models/<name>/` and return the trained objective."""
    world = setup_distributed()
    cfg = getattr(params.models, name, None)
    if cfg is None or name == "biharmonic":
        raise UserError(f"train: {name!r} is not a learned model; choose one of ours, ce, pconv, gc")
    on_cuda = world.device.type == "cuda"
    # Ranks draw different masks; DDP copies rank 0's initial weights to every rank. The
    # training seed is its own param, so seeds of one model share the data and test pairs.
    seed_everything(params.train.seed + world.rank, deterministic=not on_cuda)
    load_provenance(paths.weights)  # fail early, with the fix, when the weights stage has not run
    layers = getattr(cfg, "vgg_layers", ("pool1",))
    objective = make_objective(name, cfg, params.data.size, vgg=lambda: build_vgg(params, paths, layers))
    memory = torch.channels_last if on_cuda and params.train.channels_last else torch.contiguous_format
    objective.to(world.device, memory)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if on_cuda and params.train.amp \
        else contextlib.nullcontext

    dataset = TrainSet(paths.prepared, paths.foreground, paths.holes, augment=params.train.mask_augment)
    if len(dataset) < params.train.batch_size * world.world:
        raise UserError(f"train.batch_size: {params.train.batch_size} × {world.world} process(es) exceeds "
                        f"the {len(dataset)} training images; lower it or raise split.train")
    generator = torch.Generator().manual_seed(params.train.seed)
    sampler = (DistributedSampler(dataset, world.world, world.rank, shuffle=True, seed=params.train.seed)
               if world.world > 1 else RandomSampler(dataset, generator=generator))
    loader = DataLoader(dataset, batch_size=params.train.batch_size, sampler=sampler, drop_last=True,
                        num_workers=params.train.num_workers, pin_memory=on_cuda,
                        persistent_workers=params.train.num_workers > 0, generator=generator)
    steps_per_epoch = len(loader)
    total = params.train.epochs * steps_per_epoch
    if params.train.max_steps:
        total = min(total, params.train.max_steps)
    pairs = PairSet(paths.prepared, paths.foreground, paths.holes)
    val_batch = [torch.stack([pairs[i][k] for i in range(min(params.train.val_images, len(pairs)))])
                 .to(world.device) for k in range(3)]

    out, ckpt_dir = paths.models / name, paths.checkpoints / name
    last = ckpt_dir / "last.pt"
    key = fingerprint(params, name, paths)
    step, history = 0, {"curve": [], "val": []}
    if last.exists():
        checkpoint = load_checkpoint(last)
        if checkpoint.get("fingerprint") == key:
            for k, net in objective.networks().items():
                net.load_state_dict(checkpoint["networks"][k])
            for k, opt in objective.optimizers.items():
                opt.load_state_dict(checkpoint["optimizers"][k])
            step, history = checkpoint["step"], checkpoint["history"]
            by_rank = checkpoint.get("rng_by_rank")
            set_rng_state(by_rank[world.rank] if world.world > 1 and by_rank else checkpoint["rng"])
            print(f"train@{name}: resumed from {last} at step {step}", flush=True)
        elif world.writer:
            print(f"train@{name}: {last} is from other params or data; training from scratch", flush=True)
    if world.world > 1:
        # Each node resumes from its own copy: all of them must stand at the same step, or the
        # processes would run different loops and wait on each other forever.
        lowest, highest = step_range(step, world.device)
        if lowest != highest:
            raise UserError(f"train@{name}: the processes would resume at different steps ({lowest} to {highest}): "
                            f"{last} differs between the nodes; copy one node's checkpoints/{name}/ to every "
                            "node, or delete it on every node to train from scratch")

    if params.train.compile and on_cuda:
        # CUDA only: on the CPU, inductor's C++ compile costs more than a demo run saves.
        objective.generator = torch.compile(objective.generator)
    if world.world > 1:
        objective.generator = DistributedDataParallel(objective.generator)
        if objective.discriminator is not None:
            objective.discriminator = DistributedDataParallel(objective.discriminator)
    for net in objective.networks().values():
        net.train()
    run = run if run is not None and world.main else tracking.Run("", enabled=False)
    run.set_tags({"device": world.device.type, "world_size": world.world,
                  "generator_params": parameter_count(unwrap(objective.generator)),
                  "discriminator_params": parameter_count(objective.discriminator and unwrap(objective.discriminator))})

    bar = progress.bar(total=total, initial=step, desc=f"train@{name}", unit="step",
                       disable=not (world.writer and progress.enabled()))
    epoch = step // steps_per_epoch
    while step < total:
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        skip = step - epoch * steps_per_epoch  # batches of this epoch done before a resume
        for index, (image, hole, fg_mask) in enumerate(loader):
            if index < skip:
                continue
            if step >= total:
                break
            batch = [t.to(world.device, non_blocking=True) for t in (image, hole, fg_mask)]
            if memory is torch.channels_last:
                batch = [t.contiguous(memory_format=memory) for t in batch]
            objective.schedule(step, total)
            terms = {k: float(v.detach()) for k, v in objective.step(*batch, autocast=autocast).items()}
            step += 1
            bar.update()
            bad = [k for k, v in terms.items() if not np.isfinite(v)]
            if bad if world.world == 1 else on_any_rank(bool(bad), world.device):
                kept = f"the last good checkpoint ({last}) is kept" if last.exists() else "no checkpoint yet"
                what = f"loss {bad[0]} became {terms[bad[0]]}" if bad else "a loss became non-finite in another process"
                raise TrainingDiverged(f"train@{name}: {what} at step {step}; "
                                       f"{kept}; lower models.{name}.lr_g or check the data")
            logging_step = step % params.train.log_every == 0 or step == total
            if world.world > 1 and logging_step:
                terms = mean_over_ranks(terms, world.device)
            if world.writer and logging_step:
                history["curve"].append({"step": step, "epoch": epoch, **terms})
                run.log_metrics(terms, step=step)
                bar.set_postfix(loss=f"{terms['g/total']:.4f}")
            end_of_epoch = index == steps_per_epoch - 1 or step == total
            if world.world > 1 and end_of_epoch:
                sync_buffers(objective)
            if world.writer and end_of_epoch:
                psnr_hole, grid = validate(objective, val_batch, autocast)
                history["val"].append({"step": step, "epoch": epoch, "psnr_hole": psnr_hole})
                run.log_metrics({"val/psnr_hole": psnr_hole}, step=step)
                run.log_image(grid, f"samples/step_{step:07d}.png")
            if step % params.train.checkpoint_every == 0 or step == total:
                # Every process checks: the weights are the same on all, so all stop together.
                if not all(torch.isfinite(p).all() for net in objective.networks().values()
                           for p in net.parameters()):
                    raise TrainingDiverged(f"train@{name}: weights became non-finite at step {step}; the "
                                           f"last good checkpoint is kept; lower models.{name}.lr_g")
                rng_by_rank = None
                if world.world > 1:
                    rng_by_rank = [None] * world.world
                    dist.all_gather_object(rng_by_rank, rng_state())
                if world.writer:
                    save_checkpoint(last, objective, step, epoch, params, key, history, rng_by_rank)
        epoch += 1
    bar.close()

    if world.writer:
        if not history["val"] or history["val"][-1]["step"] != step:
            psnr_hole, grid = validate(objective, val_batch, autocast)
            history["val"].append({"step": step, "epoch": epoch, "psnr_hole": psnr_hole})
        else:
            _, grid = validate(objective, val_batch, autocast)
        generator = unwrap(objective.generator)
        final = {"model": name, "step": step, "size": params.data.size, "cfg": to_dict(cfg),
                 "generator": generator.state_dict(), "params": to_dict(params),
                 "weights_provenance": provenance_tag(paths.weights)}
        save_atomic(final, out / "model.pt")
        write_curves(out, history)
        files.save_png(out / "samples.png", grid)
        run.log_metrics({"final/psnr_hole": history["val"][-1]["psnr_hole"]}, step=step)
        if params.tracking.log_models:
            run.log_generator(out / "model.pt", "generator")
    if world.world > 1:
        dist.barrier()
    return objective


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one model of the comparison.")
    parser.add_argument("model", help="ours | ce | pconv | gc")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    _main(args)


@exits_cleanly
def _main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
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
