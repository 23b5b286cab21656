"""DVC stage `train@<model>`: train one learned model; `train.nproc > 1` relaunches under torchrun (DDP)."""

import os
import sys

from fgi.config import load_params
from fgi.errors import exits_cleanly
from fgi.train import main


@exits_cleanly
def nproc(argv: list[str]) -> int:
    path = argv[argv.index("--params") + 1] if "--params" in argv else "params.yaml"
    return load_params(path).train.nproc


if __name__ == "__main__":
    argv = sys.argv[1:]
    processes = nproc(argv)
    if processes > 1 and "LOCAL_RANK" not in os.environ:
        # One process per GPU (or CPU process with gloo); torchrun sets RANK/WORLD_SIZE/LOCAL_RANK.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", "-m", "fgi.train", *argv]
        os.execv(sys.executable, command)
    main(argv)
