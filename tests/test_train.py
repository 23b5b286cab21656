"""The training loop on the micro data: resume after kill -9, NaN stop, DDP, checkpoints."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import MICRO_PARAMS, REPO, free_port
from fgi.config import load_params
from fgi.train import Paths, TrainingDiverged, load_checkpoint, train

pytestmark = pytest.mark.e2e


def write_params(folder: Path, **changes) -> Path:
    """The micro params with dotted-key changes, tracking off, written to folder/params.yaml."""
    tree = yaml.safe_load(MICRO_PARAMS.read_text())
    tree["tracking"]["enabled"] = False
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = tree
        for key in parents:
            node = node[key]
        node[last] = value
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.fixture
def workdir(tmp_path, micro_pipeline) -> Path:
    """A folder whose data/ is the micro pipeline's prepared data, with fresh models/ and checkpoints/."""
    (tmp_path / "data").symlink_to(micro_pipeline / "data", target_is_directory=True)
    return tmp_path


def paths_in(folder: Path, out: str = "") -> Paths:
    """Data from folder/data; models and checkpoints under folder/out."""
    data = folder / "data"
    return Paths(prepared=data / "prepared", foreground=data / "foreground", holes=data / "holes",
                 weights=data / "weights", models=folder / out / "models",
                 checkpoints=folder / out / "checkpoints")


def python_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_kill_9_then_rerun_resumes_from_the_checkpoint(workdir):
    write_params(workdir, **{"train.max_steps": 400, "train.epochs": 1000, "train.checkpoint_every": 5,
                             "train.log_every": 5})
    command = [sys.executable, "-m", "stages.train", "ours"]
    first = subprocess.Popen(command, cwd=workdir, env=python_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    checkpoint = workdir / "checkpoints" / "ours" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the first run must be killed partway"
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < 400
    assert not (workdir / "models" / "ours" / "model.pt").exists()

    second = subprocess.run(command, cwd=workdir, env=python_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed_at = int(second.stdout.split("resumed from")[1].split("at step")[1].split()[0])
    assert resumed_at >= killed_at
    final = torch.load(workdir / "models" / "ours" / "model.pt", weights_only=True)
    assert final["step"] == 400
    curve = (workdir / "models" / "ours" / "curve.csv").read_text().splitlines()
    assert curve[1].startswith("5,"), "the curve keeps the steps logged before the kill"


def test_a_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(workdir):
    params = load_params(write_params(workdir, **{"train.max_steps": 50, "train.checkpoint_every": 1}))
    # Adam moves every weight by ~lr: finite after step 1, overflowing activations at step 2.
    exploding = dataclasses.replace(params.models.ce, lr_g=1e30)
    params = dataclasses.replace(params, models=dataclasses.replace(params.models, ce=exploding))
    with pytest.raises(TrainingDiverged, match=r"train@ce: loss .* became (nan|inf|-inf) at step \d+; "
                                               r"the last good checkpoint .* is kept"):
        train(params, "ce", paths_in(workdir))
    kept = load_checkpoint(workdir / "checkpoints" / "ce" / "last.pt")
    assert all(torch.isfinite(v).all() for v in kept["networks"]["generator"].values() if v.is_floating_point())


def test_training_is_deterministic_on_the_cpu(workdir):
    params = load_params(write_params(workdir, **{"train.max_steps": 3}))
    first = train(params, "gc", paths_in(workdir, "a"))
    second = train(params, "gc", paths_in(workdir, "b"))
    for a, b in zip(first.generator.parameters(), second.generator.parameters()):
        assert torch.equal(a, b)
    model = Path("models") / "gc" / "model.pt"
    assert (workdir / "a" / model).read_bytes() == (workdir / "b" / model).read_bytes(), \
        "the same run writes the same bytes, so DVC sees no change"


def _ddp_rank(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    params = load_params(Path(folder) / "params.yaml")
    objective = train(params, "ours", paths_in(Path(folder)))
    weights = torch.cat([p.detach().flatten() for p in objective.generator.parameters()])
    torch.save(weights, Path(folder) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_ranks_end_with_identical_weights(workdir):
    write_params(workdir, **{"train.max_steps": 3, "train.epochs": 10, "train.batch_size": 2})
    torch.multiprocessing.spawn(_ddp_rank, args=(2, free_port(), str(workdir)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(workdir / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(rank0, rank1)
    initial = torch.load(workdir / "models" / "ours" / "model.pt", weights_only=True)
    assert initial["step"] == 3, "rank 0 wrote the final checkpoint"


def test_nproc_2_relaunches_the_stage_under_torchrun(workdir):
    write_params(workdir, **{"train.max_steps": 2, "train.nproc": 2, "train.batch_size": 2})
    result = subprocess.run([sys.executable, "-m", "stages.train", "pconv"], cwd=workdir, env=python_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(workdir / "models" / "pconv" / "model.pt", weights_only=True)["step"] == 2
