"""Torch datasets over the prepared data (docs/design.md §3 tensor conventions).

* `TrainSet` yields `(image, hole, fg_mask)`: a training face with a hole mask
  drawn at random from the training pool, randomly flipped and rotated by a
  multiple of 90° (`train.mask_augment`). The draw uses torch's RNG, so a
  seeded DataLoader (and each of its workers) is reproducible.
* `PairSet` yields `(image, hole, fg_mask, image_id)` for the fixed pairs of
  `test_pairs.csv`, in file order.

image: float32 (3, H, W) in [-1, 1]; hole: float32 (1, H, W), 1 = hole;
fg_mask: float32 (1, H, W), 1 = foreground; NaN everywhere when the data has no
foreground masks (a folder source without them): unknown, not empty, so a
method that reads it unawares gets a NaN loss, never a silent zero (a method
that needs it declares `needs_foreground` and is refused on such data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fgi import files
from fgi.data.layout import foreground_available, read_csv, read_ids
from fgi.errors import UserError


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """bool (H, W) -> float32 (1, H, W) of 0/1."""
    return torch.from_numpy(mask.astype(np.float32))[None]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounded as a PNG would store it."""
    scaled = (images.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class _Faces:
    """Loads a prepared face and its foreground mask, checking they match."""

    def __init__(self, prepared: Path, foreground: Path):
        self.prepared, self.foreground = Path(prepared), Path(foreground)
        self.known = foreground_available(self.foreground)

    def load(self, image_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        image = files.load_image_rgb(self.prepared / "images" / f"{image_id}.png")
        if not self.known:
            return image_tensor(image), torch.full((1, *image.shape[:2]), float("nan"))
        fg_mask = files.load_mask(self.foreground / f"{image_id}.png")
        if fg_mask.shape != image.shape[:2]:
            raise UserError(f"{self.foreground / f'{image_id}.png'}: {fg_mask.shape} does not match the "
                            f"image's {image.shape[:2]}; rerun `dvc repro foreground`")
        return image_tensor(image), mask_tensor(fg_mask)


class TrainSet(Dataset):
    """With `mix` > 0, that share of the holes (for a face that has any) is one of the face's own
    component holes from `components` (stage holes_semantic: `train_masks.csv`), unflipped so it
    stays on the face; the draw takes torch's RNG only when `mix` > 0."""

    def __init__(self, prepared: Path, foreground: Path, holes: Path, augment: bool = True,
                 ids: list[str] | None = None, components: Path | None = None, mix: float = 0.0):
        self.faces = _Faces(prepared, foreground)
        self.holes = Path(holes)
        self.ids = ids if ids is not None else read_ids(Path(prepared) / "train.txt")
        self.masks = [row["mask"] for row in read_csv(self.holes / "masks.csv") if row["split"] == "train"]
        if not self.masks:
            raise UserError(f"{self.holes / 'masks.csv'}: no training masks; rerun `dvc repro holes`")
        self.augment, self.mix = augment, mix
        self.components: dict[str, list[Path]] = {}
        if mix > 0:
            if components is None or not (Path(components) / "train_masks.csv").is_file():
                raise UserError(f"holes.train_mix is {mix}, but {components}/train_masks.csv is missing; run "
                                "`dvc repro holes_semantic`, or set holes.train_mix to 0")
            for row in read_csv(Path(components) / "train_masks.csv"):
                self.components.setdefault(row["image_id"], []).append(Path(components) / row["mask"])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, fg_mask = self.faces.load(self.ids[index])
        own = self.components.get(self.ids[index])
        if self.mix > 0 and own and float(torch.rand(())) < self.mix:
            hole = mask_tensor(files.load_mask(own[int(torch.randint(len(own), ()))]))
            return image, hole, fg_mask
        choice = int(torch.randint(len(self.masks), ()))
        hole = mask_tensor(files.load_mask(self.holes / self.masks[choice]))
        if hole.shape[1:] != image.shape[1:]:
            raise UserError(f"{self.holes / self.masks[choice]}: {tuple(hole.shape[1:])} differs from the "
                            f"images' {tuple(image.shape[1:])}; rerun `dvc repro holes`")
        if self.augment:
            if torch.rand(()) < 0.5:
                hole = hole.flip(-1)
            if torch.rand(()) < 0.5:
                hole = hole.flip(-2)
            hole = torch.rot90(hole, int(torch.randint(4, ())), dims=(-2, -1))
        return image, hole.contiguous(), fg_mask


class PairSet(Dataset):
    def __init__(self, prepared: Path, foreground: Path, holes: Path):
        self.faces = _Faces(prepared, foreground)
        self.holes = Path(holes)
        self.pairs = read_csv(self.holes / "test_pairs.csv")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
        pair = self.pairs[index]
        image, fg_mask = self.faces.load(pair["image_id"])
        hole = mask_tensor(files.load_mask(self.holes / pair["mask"]))
        return image, hole, fg_mask, pair["image_id"]
