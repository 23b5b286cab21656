"""DVC stage `train@<method>`: train one method (a classical one records its params); `train.nproc > 1` or `train.nnodes > 1`
relaunches it under torchrun (DDP), one process per GPU (or CPU process with gloo) on every node."""

import os
import sys

from fgi.config import Train, load_params
from fgi.errors import exits_cleanly
from fgi.training.distributed import torchrun_args
from fgi.training.train import main


@exits_cleanly
def train_params(argv: list[str]) -> Train:
    path = argv[argv.index("--params") + 1] if "--params" in argv else "params.yaml"
    return load_params(path).train


if __name__ == "__main__":
    argv = sys.argv[1:]
    train = train_params(argv)
    if (train.nproc > 1 or train.nnodes > 1) and "LOCAL_RANK" not in os.environ:
        # torchrun sets RANK/WORLD_SIZE/LOCAL_RANK for every process it starts.
        model = argv[0] if argv else ""
        command = [sys.executable, "-m", "torch.distributed.run", *torchrun_args(train, model),
                   "-m", "fgi.training.train", *argv]
        os.execv(sys.executable, command)
    main(argv)
