"""The training loop on the micro data: resume after kill -9, NaN stop, DDP, checkpoints."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import MICRO_PARAMS, REPO, free_port
from fgi.config import load_params
from fgi.training.train import Paths, TrainingDiverged, load_checkpoint, train
from fgi.training.checkpoint import fingerprint

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
    """A folder laid out like the repo, with fresh models/ and checkpoints/ (see `lay_out`)."""
    return lay_out(tmp_path, micro_pipeline)


def lay_out(folder: Path, micro_pipeline: Path) -> Path:
    """`folder` as a stage sees the repo: data/ is the micro pipeline's prepared data, and fgi/ the code
    (a stage checks that each method's code lies at its `methods` path)."""
    (folder / "data").symlink_to(micro_pipeline / "data", target_is_directory=True)
    (folder / "fgi").symlink_to(REPO / "fgi", target_is_directory=True)
    return folder


def paths_in(folder: Path, out: str = "") -> Paths:
    """Data from folder/data; models and checkpoints under folder/out."""
    data = folder / "data"
    return Paths(prepared=data / "prepared", foreground=data / "foreground", holes=data / "holes",
                 holes_semantic=data / "holes_semantic", weights=data / "weights", models=folder / out / "models",
                 checkpoints=folder / out / "checkpoints")


def python_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_kill_9_then_rerun_resumes_from_the_checkpoint(workdir):
    # The first run cannot finish on a machine of any speed (its step cap is out of reach); it is
    # killed once its log says the first checkpoint is written (atomically, so a complete file).
    # The rerun's cap, which is not part of the checkpoint's fingerprint, lies past wherever the
    # kill landed.
    write_params(workdir, **{"train.max_steps": 10**6, "train.epochs": 10**6, "train.checkpoint_every": 5,
                             "train.log_every": 5})
    command = [sys.executable, "-m", "stages.train", "ours"]
    first = subprocess.Popen(command, cwd=workdir, env=python_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    checkpoint = workdir / "checkpoints" / "ours" / "last.pt"
    said = f"train@ours: checkpoint at step 5 in {checkpoint.relative_to(workdir)}"
    log = []
    for line in first.stdout:  # blocks until the line comes, or ends with the process
        log.append(line.decode())
        if line.decode().strip() == said:
            break
    assert first.poll() is None, "".join(log)[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "".join(log)[-3000:]
    killed_at = load_checkpoint(checkpoint)["step"]
    assert killed_at > 0 and killed_at % 5 == 0
    assert not (workdir / "models" / "ours" / "model.pt").exists()

    total = killed_at + 20
    write_params(workdir, **{"train.max_steps": total, "train.epochs": 10**6, "train.checkpoint_every": 5,
                             "train.log_every": 5})
    second = subprocess.run(command, cwd=workdir, env=python_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {checkpoint.relative_to(workdir)} at step {killed_at}" in second.stdout
    final = torch.load(workdir / "models" / "ours" / "model.pt", weights_only=True)
    assert final["step"] == total
    curve = (workdir / "models" / "ours" / "curve.csv").read_text().splitlines()
    assert curve[1].startswith("5,"), "the curve keeps the steps logged before the kill"
    assert len(curve) == 1 + total // 5, "every logged step once: none lost, none repeated"


def test_a_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(workdir):
    params = load_params(write_params(workdir, **{"train.max_steps": 50, "train.checkpoint_every": 1}))
    # Adam moves every weight by ~lr: finite after step 1, overflowing activations at step 2.
    params = dataclasses.replace(params, models={**params.models, "ce": {**params.models["ce"], "lr_g": 1e30}})
    with pytest.raises(TrainingDiverged, match=r"train@ce: loss .* became (nan|inf|-inf) at step \d+; "
                                               r"the last good checkpoint .* is kept"):
        train(params, "ce", paths_in(workdir))
    kept = load_checkpoint(workdir / "checkpoints" / "ce" / "last.pt")
    assert all(torch.isfinite(v).all() for v in kept["networks"]["generator"].values() if v.is_floating_point())


def test_train_mix_trains_on_component_holes_and_is_recorded(workdir):
    """holes.train_mix > 0 reads the training faces' component holes; model.pt records the share,
    and a different share is another run (no resume across it)."""
    params = load_params(write_params(workdir, **{"train.max_steps": 2, "holes.train_mix": 0.5}))
    train(params, "ce", paths_in(workdir))
    final = torch.load(workdir / "models" / "ce" / "model.pt", weights_only=True)
    assert final["params"]["holes"] == {"train_mix": 0.5} and final["step"] == 2
    other = load_params(write_params(workdir, **{"train.max_steps": 2, "holes.train_mix": 0.0}))
    assert fingerprint(other, "ce", paths_in(workdir).training_data()) != fingerprint(
        params, "ce", paths_in(workdir).training_data())


@pytest.mark.parametrize("amp", ["bfloat16", "auto"])
def test_train_amp_resolves_and_is_recorded(workdir, amp):
    """`bfloat16` trains under CPU autocast; `auto` does where this CPU has native bfloat16. model.pt
    says which, and on what processor."""
    from fgi.inference import bfloat16_is_native, cpu_name

    params = load_params(write_params(workdir, **{"train.max_steps": 2, "train.amp": amp}))
    objective = train(params, "ce", paths_in(workdir))
    final = torch.load(workdir / "models" / "ce" / "model.pt", weights_only=True)
    native = bfloat16_is_native(torch.device("cpu"))
    assert final["precision"] == ("bfloat16" if amp == "bfloat16" or native else "float32")
    assert final["processor"] == cpu_name() and final["params"]["train"]["amp"] == amp
    assert all(p.dtype == torch.float32 for p in objective.generator.parameters())  # autocast, not a cast


def test_training_is_deterministic_on_the_cpu(workdir):
    params = load_params(write_params(workdir, **{"train.max_steps": 3}))
    first = train(params, "gc", paths_in(workdir, "a"))
    second = train(params, "gc", paths_in(workdir, "b"))
    for a, b in zip(first.generator.parameters(), second.generator.parameters()):
        assert torch.equal(a, b)
    model = Path("models") / "gc" / "model.pt"
    assert (workdir / "a" / model).read_bytes() == (workdir / "b" / model).read_bytes(), \
        "the same run writes the same bytes, so DVC sees no change"


def test_two_nodes_form_one_job_with_the_result_of_one_two_process_job(workdir, micro_pipeline, tmp_path_factory):
    """`train.nproc: 2` relaunches the stage under torchrun; two "nodes" of one process each
    (`train.nnodes: 2`, c10d rendezvous on 127.0.0.1, gloo) train exactly the same model, and
    both ranks end with the same weights (ours: generator and critic under DDP)."""
    one_job = {"train.max_steps": 2, "train.batch_size": 2}
    write_params(workdir, **one_job, **{"train.nproc": 2})
    # One thread per process everywhere (torchrun's default for several processes per
    # machine), so every run does the same arithmetic.
    env = dict(python_env(), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "stages.train", "ours"]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for k in range(2):
        node = lay_out(tmp_path_factory.mktemp(f"node{k}"), micro_pipeline)
        write_params(node, **one_job, **{"train.nproc": 1, "train.nnodes": 2, "train.rdzv_endpoint": endpoint})
        nodes.append(node)
    for code, output in run_nodes(command, nodes, env):
        assert code == 0, output[-3000:]

    reference = torch.load(workdir / "models" / "ours" / "model.pt", weights_only=True)
    assert reference["step"] == 2
    for node in nodes:
        model = torch.load(node / "models" / "ours" / "model.pt", weights_only=True)
        assert model["generator"].keys() == reference["generator"].keys()
        assert all(torch.equal(model["generator"][k], v) for k, v in reference["generator"].items()), \
            f"{node.name} trained other weights than the one-machine job"
        assert (node / "models" / "ours" / "curve.csv").read_text() == \
            (workdir / "models" / "ours" / "curve.csv").read_text(), "losses are averaged over all ranks"
        networks = load_checkpoint(node / "checkpoints" / "ours" / "last.pt")["networks"]
        for name, state in load_checkpoint(workdir / "checkpoints" / "ours" / "last.pt")["networks"].items():
            assert all(torch.equal(networks[name][k], v) for k, v in state.items()), \
                f"{node.name}'s checkpoint holds another {name}: it could not resume the job"
        assert len(load_checkpoint(node / "checkpoints" / "ours" / "last.pt")["rng_by_rank"]) == 2, \
            "each process resumes its own random draws"

    # A node whose checkpoint is missing would run another loop than the others: all stop, saying why.
    (nodes[1] / "checkpoints" / "ours" / "last.pt").unlink()
    endpoint = f"127.0.0.1:{free_port()}"
    for node in nodes:
        write_params(node, **{**one_job, "train.max_steps": 4},
                     **{"train.nproc": 1, "train.nnodes": 2, "train.rdzv_endpoint": endpoint})
    for code, output in run_nodes(command, nodes, env):
        assert code != 0
        assert "the processes would resume at different steps (0 to 2)" in output, output[-3000:]


def run_nodes(command: list[str], nodes: list[Path], env: dict) -> list[tuple[int, str]]:
    """Start `command` in every node's folder at once; their exit codes and outputs."""
    launched = [subprocess.Popen(command, cwd=node, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True) for node in nodes]
    try:
        outputs = [process.communicate(timeout=300)[0] for process in launched]
    finally:
        for process in launched:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return [(process.returncode, output) for process, output in zip(launched, outputs)]
