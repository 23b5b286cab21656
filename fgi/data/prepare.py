"""The `prepare` stage: resize the faces to the working size and split them.

Writes `<out>/images/<id>.png` (RGB, `data.size` square, id = 5-digit
CelebA-HQ index), `<out>/train.txt`, `<out>/test.txt` and `<out>/summary.json`.
JPEGs are decoded at a reduced DCT scale where the working size allows (a
1024² JPEG decodes straight to 256² at 1/4 scale, ~10x less work), then
resized with an antialiasing Lanczos filter. Work is spread over all cores.
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from fgi import files, progress
from fgi.config import Params
from fgi.data.layout import worker_count
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


def _prepare_one(job: tuple[Path, int, int, Path]) -> tuple[int, str]:
    """Resize one image; returns (id, '') or (id, error message) for the parent to judge."""
    raw_root, image_id, size, out = job
    try:
        image = load_resized(celebamask_image(raw_root, image_id), size)
    except UserError as err:
        return image_id, str(err)
    files.save_png(out / "images" / f"{image_name(image_id)}.png", image)
    return image_id, ""


def split_ids(ids: list[int], train: int, test: int, seed: int, skipped: int = 0) -> tuple[list[int], list[int]]:
    """A seeded split: `test` ids, then `train` ids, disjoint, each sorted."""
    if train + test > len(ids):
        raise UserError(f"split: train + test = {train + test} but only {len(ids)} images are usable"
                        f"{f' ({skipped} skipped as corrupt)' if skipped else ''}; lower split.train "
                        "or split.test")
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order]
    return sorted(chosen[test:test + train]), sorted(chosen[:test])


def prepare(params: Params, raw_root: Path, out: Path) -> dict:
    """Resize every face of `raw_root` into `out` and write the split; return a summary."""
    ids = check_celebamask_layout(raw_root)
    size = params.data.size
    jobs = [(raw_root, image_id, size, out) for image_id in ids]
    failures: dict[int, str] = {}
    with Pool(worker_count(params.data.workers)) as pool:
        results = pool.imap_unordered(_prepare_one, jobs, chunksize=16)
        for image_id, error in progress.bar(results, total=len(jobs), desc="prepare", unit="img"):
            if error:
                if params.data.on_corrupt == "error":
                    pool.terminate()
                    raise UserError(error)
                failures[image_id] = error
    usable = [i for i in ids if i not in failures]
    for image_id in failures:
        (out / "images" / f"{image_name(image_id)}.png").unlink(missing_ok=True)
    train, test = split_ids(usable, params.split.train, params.split.test, params.seed, len(failures))
    files.write_text_atomic(out / "train.txt", "".join(f"{image_name(i)}\n" for i in train))
    files.write_text_atomic(out / "test.txt", "".join(f"{image_name(i)}\n" for i in test))
    summary = {"size": size, "images": len(usable), "train": len(train), "test": len(test),
               "skipped_corrupt": len(failures),
               "skipped_files": sorted(str(celebamask_image(raw_root, i)) for i in failures)}
    files.write_json_atomic(out / "summary.json", summary)
    return summary
