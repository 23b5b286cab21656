"""The `prepare` stage: resize the faces to the working size and split them.

Writes `<out>/images/<id>.png` (RGB, `data.size` square), `<out>/train.txt`,
`<out>/test.txt` and `<out>/summary.json`. The id of a CelebA-HQ-layout face is
its 5-digit index; that of a folder source's face (`data.source: folder`) is its
file stem. JPEGs are decoded at a reduced DCT scale where the working size
allows (a 1024² JPEG decodes straight to 256² at 1/4 scale, ~10x less work),
then resized with an antialiasing Lanczos filter. Work is spread over all cores.

A folder source's faces are read where they are (the files `data/manifest/images.csv`
lists), upright and made square as `fgi.data.folder_source` says. With foreground
masks, each face's mask is decoded here too and must have the face's size, so that
the split holds only usable pairs: `data.on_corrupt: skip` leaves out a face whose
image or mask does not decode.

The split is seeded by `seed`: `split.train` and `split.test` are numbers of faces,
or shares of the usable faces (fractions, rounded to whole faces).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from fgi import files, progress
from fgi.config import Params, Split
from fgi.data import folder_source
from fgi.data.layout import worker_count
from fgi.data.manifest import read_manifest
from fgi.data.sources import celebamask_image, check_celebamask_layout
from fgi.errors import UserError


def image_name(image_id: int) -> str:
    return f"{image_id:05d}"


def load_resized(path: Path, size: int) -> np.ndarray:
    """Decode `path` and resize it to (size, size, 3) uint8; UserError if undecodable."""
    try:
        with Image.open(path) as image:
            # JPEG only: pick the smallest DCT scale that still yields >= size pixels.
            image.draft("RGB", (size, size))
            image.load()
            rgb = image.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: image not found; rerun fetch_data") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot decode image ({err}); the file is truncated or corrupt: "
                        "download it again, or set data.on_corrupt: skip") from err
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


@dataclass(frozen=True)
class Face:
    """One face to prepare: its id, its image and (a folder source with masks) its foreground mask."""

    name: str
    image: Path
    mask: Path | None = None


def _prepare_one(job: tuple[Face, int, str | None, Path]) -> tuple[str, str, str]:
    """Resize one face; returns (id, '', '') or (id, why it cannot be read, the file) for the parent to
    judge. `square` is None for a CelebA-HQ-layout face (already square), else `data.folder.square`."""
    face, size, square, out = job
    if square is None:
        try:
            image = load_resized(face.image, size)
        except UserError as err:
            return face.name, str(err), str(face.image)
    else:
        reading = face.image
        try:
            image, upright = folder_source.load_face(face.image, size, square)
            if face.mask is not None:
                reading = face.mask
                # A mask of another size is no corrupt file but a wrong one: its UserError stops the
                # stage whatever data.on_corrupt says (the pool re-raises it in the parent).
                folder_source.check_mask(face.mask, face.image, upright)
        except folder_source.Undecodable as err:
            return face.name, str(err), str(reading)
    files.save_png(out / "images" / f"{face.name}.png", image)
    return face.name, "", ""


def split_counts(usable: int, split: Split) -> tuple[int, int]:
    """(train, test) numbers of faces: the counts as given, or the shares of `usable` rounded (train
    trimmed by the rounding when the shares add up to 1)."""
    if isinstance(split.train, int) and isinstance(split.test, int):
        return split.train, split.test
    test = round(split.test * usable)
    train = min(round(split.train * usable), usable - test)
    if train < 1 or test < 1:
        raise UserError(f"split: train {split.train} and test {split.test} of {usable} usable images give "
                        f"{train} and {test} images; each needs at least 1: raise the shares or add images")
    return train, test


def split_ids(ids: list, train: int, test: int, seed: int, skipped: int = 0) -> tuple[list, list]:
    """A seeded split: `test` ids, then `train` ids, disjoint, each sorted."""
    if train + test > len(ids):
        raise UserError(f"split: train + test = {train + test} but only {len(ids)} images are usable"
                        f"{f' ({skipped} skipped as corrupt)' if skipped else ''}; lower split.train "
                        "or split.test")
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order]
    return sorted(chosen[test:test + train]), sorted(chosen[:test])


def folder_faces(params: Params, manifest: Path) -> list[Face]:
    """The faces of a folder source, in stem order, each with its mask when there are masks."""
    folder = params.data.folder
    masks = {}
    if folder.foreground.strip():
        masks = {row["stem"]: Path(folder.foreground) / row["path"] for row in read_manifest(manifest, "foreground")}
    rows = sorted(read_manifest(manifest, "images"), key=lambda row: row["stem"])
    if not rows:
        raise UserError(f"{Path(manifest) / 'images.csv'}: no images listed; run `dvc repro manifest`")
    return [Face(row["stem"], Path(folder.images) / row["path"], masks.get(row["stem"])) for row in rows]


def prepare(params: Params, raw_root: Path, out: Path, manifest: Path = Path("data/manifest")) -> dict:
    """Resize every face of the source into `out` and write the split; return a summary."""
    size, from_folder = params.data.size, params.data.source == "folder"
    if from_folder:
        faces, square = folder_faces(params, manifest), params.data.folder.square
    else:
        faces = [Face(image_name(i), celebamask_image(raw_root, i)) for i in check_celebamask_layout(raw_root)]
        square = None
    jobs = [(face, size, square, out) for face in faces]
    failures: dict[str, str] = {}  # id: the file that could not be read
    with Pool(worker_count(params.data.workers)) as pool:
        results = pool.imap_unordered(_prepare_one, jobs, chunksize=16)
        for name, error, file in progress.bar(results, total=len(jobs), desc="prepare", unit="img"):
            if error:
                if params.data.on_corrupt == "error":
                    pool.terminate()
                    raise UserError(error)
                failures[name] = file
    usable = [face.name for face in faces if face.name not in failures]
    for name in failures:
        (out / "images" / f"{name}.png").unlink(missing_ok=True)
    train, test = split_ids(usable, *split_counts(len(usable), params.split), params.seed, len(failures))
    files.write_text_atomic(out / "train.txt", "".join(f"{name}\n" for name in train))
    files.write_text_atomic(out / "test.txt", "".join(f"{name}\n" for name in test))
    summary = {"size": size, "images": len(usable), "train": len(train), "test": len(test),
               "skipped_corrupt": len(failures),
               "skipped_files": sorted(failures.values())}
    if from_folder:  # (the CelebA-HQ-layout summary keeps its keys, so its bytes and DVC hash stay as they were)
        summary.update({"source": "folder", "seed": params.seed, "square": square,
                        "split": {"train": params.split.train, "test": params.split.test},
                        "foreground_masks": any(face.mask for face in faces)})
    files.write_json_atomic(out / "summary.json", summary)
    return summary
