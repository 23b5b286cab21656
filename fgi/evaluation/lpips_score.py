"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric"), VGG variant, as LaMa reports it, through the `lpips` package.

The package builds the network and ships the learned linear layers (v0.1,
`lpips/weights/v0.1/vgg.pth`); its VGG16 backbone needs ImageNet weights,
which torchvision would download. Here they come from the `weights` stage's
`vgg16.pth` (torchvision's own file, with its provenance), loaded into the
package's network in place of the download. With a random-init VGG16 LPIPS is
"n/a", never a number (`LPIPS.from_weights` returns None).

Per image: `full` is the package's LPIPS (each layer's distance map averaged
over its own grid, summed over layers); `foreground` and `hole` average the
package's spatial map (each layer's map upsampled to the image, summed) over
the region's pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from fgi.errors import UserError

SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # lpips.pretrained_networks.vgg16: features[a:b]


def lpips_backbone_state(vgg16_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's `features.<i>.*` keys renamed to the package's `slice<k>.<i>.*`."""
    state = {}
    for k, (start, stop) in enumerate(SLICES, start=1):
        for index in range(start, stop):
            for param in ("weight", "bias"):
                key = f"features.{index}.{param}"
                if key in vgg16_state:
                    state[f"slice{k}.{index}.{param}"] = vgg16_state[key]
    return state


class LPIPS:
    """LPIPS-VGG distances between predictions and ground truths (lower is closer)."""

    def __init__(self, vgg16_state: dict[str, torch.Tensor], device: torch.device | str = "cpu",
                 batch_size: int = 32):
        import lpips  # noqa: PLC0415 - ~2.5 s of imports (torchvision); only evaluate with pretrained VGG16 runs it

        self.device = torch.device(device)
        self.batch_size = batch_size
        # pnet_rand: no torchvision download; the backbone is loaded below. pretrained: the
        # package's own linear layers, read from the file it ships. The package still calls
        # torchvision with the `pretrained=` argument torchvision deprecates: not ours to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self.model.net.load_state_dict(lpips_backbone_state(vgg16_state), strict=True)
        self.model = self.model.to(self.device).eval()

    @classmethod
    def from_weights(cls, vgg16_path: Path | None, device: torch.device | str = "cpu",
                     batch_size: int = 32) -> LPIPS | None:
        """None when `vgg16_path` is None (the weights stage has no pretrained VGG16)."""
        if vgg16_path is None:
            return None
        try:
            state = torch.load(vgg16_path, map_location="cpu", weights_only=True)
            return cls(state, device, batch_size)
        except (OSError, RuntimeError, KeyError) as err:
            raise UserError(f"{vgg16_path}: not torchvision's VGG16 weights ({str(err)[:200]}); "
                            "delete it and rerun the weights stage") from err

    @staticmethod
    def _tensor(images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1], the package's input range."""
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    @torch.no_grad()
    def distances(self, predictions: np.ndarray, truths: np.ndarray,
                  regions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{"full": (N,), <region>: (N,)} for (N, H, W, 3) uint8 images and (N, H, W) bool regions;
        NaN where a region is empty."""
        full, maps = [], []
        for start in range(0, len(predictions), self.batch_size):
            prediction = self._tensor(predictions[start:start + self.batch_size]).to(self.device)
            truth = self._tensor(truths[start:start + self.batch_size]).to(self.device)
            self.model.spatial = False
            full.append(self.model(prediction, truth).flatten().cpu())  # (B,)
            self.model.spatial = True
            maps.append(self.model(prediction, truth)[:, 0].cpu())  # (B, H, W)
        result = {"full": torch.cat(full).double().numpy()}
        spatial = torch.cat(maps).double().numpy()  # (N, H, W)
        for name, region in regions.items():
            pixels = region.reshape(len(region), -1).sum(axis=1)
            total = (spatial * region).reshape(len(region), -1).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                result[name] = np.where(pixels > 0, total / np.maximum(pixels, 1), np.nan)
        return result
