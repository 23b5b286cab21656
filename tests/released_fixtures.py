"""A LaMa release in miniature, laid out as advimman/lama publishes lama-celeba-hq/lama-fourier/.

    lama-fourier/config.yaml        the training config, as bin/train.py saves it (OmegaConf.save,
                                    unresolved: ${generator....} references stay strings)
    lama-fourier/models/best.ckpt   a PyTorch Lightning 1.2 checkpoint of the training module

The checkpoint holds what Lightning 1.2.9 (the release's requirements.txt) saves for the release's
`DefaultInpaintingTrainingModule`: `state_dict` (the generator under `generator.`, then the other
modules: discriminator, ResNetPL's encoder, the evaluators), `epoch`, `global_step`,
`pytorch-lightning_version`, `callbacks` keyed by the callback's class, `optimizer_states`,
`lr_schedulers`, and `hyper_parameters`: the config (`save_hyperparameters(config)`), here a plain
dict where the release has an OmegaConf DictConfig (tests/test_lama_released.py also writes one).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import torch
import yaml

from fgi.config import ReleasedWeights
from fgi.methods.lama import LamaParams
from fgi.methods.lama.ffc import PAPER_NGF, LamaGenerator, scaled


def lama_cfg(width: float = 0.25, n_blocks: int = 1, ratio_g: float = 0.75) -> LamaParams:
    """A models.lama section: the CelebA recipe's values, the network shrunk for tests."""
    return LamaParams(width=width, n_blocks=n_blocks, ratio_g=ratio_g, lr_g=1e-3, lr_d=1e-4, beta1=0.9,
                      beta2=0.999, w_l1_known=10.0, w_l1_missing=0.0, w_adv=10.0, gp_coef=0.001, w_fm=100.0,
                      w_resnet_pl=30.0, grad_clip=1.0, released=ReleasedWeights(url="", path="", sha256=""))


def generator_section(cfg: LamaParams) -> dict:
    """configs/training/generator/ffc_resnet_075.yaml for cfg, its references unresolved as saved."""
    return {"kind": "ffc_resnet", "input_nc": 4, "output_nc": 3, "ngf": scaled(PAPER_NGF, cfg.width, "test"),
            "n_downsampling": 3, "n_blocks": cfg.n_blocks, "add_out_act": "sigmoid",
            "init_conv_kwargs": {"ratio_gin": 0, "ratio_gout": 0, "enable_lfu": False},
            "downsample_conv_kwargs": {"ratio_gin": "${generator.init_conv_kwargs.ratio_gout}",
                                       "ratio_gout": "${generator.downsample_conv_kwargs.ratio_gin}",
                                       "enable_lfu": False},
            "resnet_conv_kwargs": {"ratio_gin": cfg.ratio_g, "ratio_gout": "${generator.resnet_conv_kwargs.ratio_gin}",
                                   "enable_lfu": False}}


def release_config(generator: dict) -> dict:
    """The parts of lama-fourier-celeba.yaml's composed config that sit beside the generator."""
    return {"run_title": "", "training_model": {"kind": "default", "concat_mask": True},
            "losses": {"l1": {"weight_missing": 0, "weight_known": 10}, "adversarial": {"kind": "r1", "weight": 10},
                       "resnet_pl": {"weight": 30, "weights_path": "${env:TORCH_HOME}"}},
            "generator": generator, "discriminator": {"kind": "pix2pixhd_nlayer", "input_nc": 3, "ndf": 64,
                                                      "n_layers": 4}}


class ModelCheckpoint:
    """Stands for pytorch_lightning.callbacks.ModelCheckpoint: Lightning 1.2 keys callback states by class."""


def other_modules() -> dict[str, torch.Tensor]:
    """A few tensors of the training module's other parts, as the release's state_dict has them."""
    rng = torch.Generator().manual_seed(0)
    return {"discriminator.model0.0.weight": torch.randn(8, 3, 4, 4, generator=rng),
            "discriminator.model0.0.bias": torch.randn(8, generator=rng),
            "discriminator.model1.1.running_mean": torch.zeros(16),
            "loss_resnet_pl.impl.conv1.weight": torch.randn(4, 3, 3, 3, generator=rng),
            "val_evaluator.scores.ssim.weight": torch.ones(1, 1, 3, 3)}


def lightning_checkpoint(state_dict: dict, hyper_parameters) -> dict:
    return {"epoch": 39, "global_step": 1000, "pytorch-lightning_version": "1.2.9", "state_dict": state_dict,
            "callbacks": {ModelCheckpoint: {"monitor": "val_ssim_fid100_f1_total_mean",
                                            "best_model_score": torch.tensor(0.9),
                                            "best_model_path": "/experiments/models/epoch=39.ckpt"}},
            "optimizer_states": [{"state": {0: {"step": 10, "exp_avg": torch.zeros(3)}}, "param_groups": []}],
            "lr_schedulers": [], "hyper_parameters": hyper_parameters}


def write_lama_release(folder: Path, generator: LamaGenerator, cfg: LamaParams, extra_prefixes: bool = True,
                       config: dict | None = None, hyper_parameters=None) -> Path:
    """`folder` as the release's lama-fourier/: config.yaml (`config`, else the release's for cfg) and
    models/best.ckpt holding `generator`'s weights under `generator.`. Returns `folder`."""
    config = config if config is not None else release_config(generator_section(cfg))
    state = OrderedDict((f"generator.{key}", value) for key, value in generator.net.state_dict().items())
    if extra_prefixes:
        state.update(other_modules())
    folder = Path(folder)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    hyper_parameters = hyper_parameters if hyper_parameters is not None else copy.deepcopy(config)
    torch.save(lightning_checkpoint(state, hyper_parameters), folder / "models" / "best.ckpt")
    return folder
