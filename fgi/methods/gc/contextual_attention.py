"""Contextual attention: fill a hole by copying features from the known region.

Yu, Lin, Yang, Shen, Lu, Huang, "Generative Image Inpainting with Contextual
Attention", CVPR 2018 (DeepFill v1, arXiv:1801.07892). DeepFill v2 (Yu et al.,
ICCV 2019) reuses the layer unchanged; this implementation follows the
released TensorFlow `contextual_attention` (JiahuiYu/generative_inpainting):

1. Background patches twice: `ksize` x `ksize` patches of the background
   downsampled by `rate` for matching, and "raw" 2·rate x 2·rate patches of
   the full-resolution background, taken every `rate` pixels, for pasting, so
   the copy keeps full-resolution detail. Foreground and background are
   downsampled as released: neuralgym's `resize` with
   `tf.image.resize_nearest_neighbor` and align_corners=True (see
   `resize_nearest_align_corners`), so in the lower/right half the matching
   grid reads the pixel after the one the raw-patch grid starts at.
2. Match by convolution: the downsampled foreground convolved with each
   background patch divided by its L2 norm (here one matrix product of the
   normalised patches with the foreground's windows: the same sums). As in the released code the
   foreground is not normalised: at one foreground position every score is the
   cosine similarity times the same |foreground patch|, so the ranking is by
   cosine similarity and the foreground norm acts as a learned temperature.
3. Candidates: only background patches whose window holds no hole pixel.
4. Fuse (optional): convolve the (foreground × background) score matrix with
   an identity kernel, along the width and then along the height, so a match
   whose neighbours match with the same displacement scores higher.
5. Softmax over the candidates with `softmax_scale`.
6. Paste: transposed convolution with the raw patches as kernels, divided by 4
   (here a matrix product over the candidates and a fold: the same sums).

`variant="released"` (every profile's `models.gc.attention_variant`) is the
layer as released in all of this. The one difference: the hole is per sample,
whereas the released code uses one mask for the batch. In the release:

* the hole is resized with the same align-corners nearest as the features,
  image → feature side (`resize_mask_like`), then 1/rate inside the layer;
* a non-candidate's score is zeroed before the softmax, so each still adds
  exp(0) to its denominator, and its weight is zeroed after it;
* the paste is divided by 4, so the one-pixel border, which two raw patches
  cover instead of four, comes out halved.

`variant="corrected"` changes exactly those three points:

* the hole is downsampled with max-pooling (a cell is a hole if any pixel in
  it is), so a candidate's raw patch is hole-free even when a thin stroke
  falls between the pixels nearest sampling reads. At these integer factors,
  the max-pooled hole contains the released one;
* non-candidates get exactly zero weight, so no probability mass goes to them;
* the paste is divided by the number of raw patches that cover each pixel.
  Away from the border this is the same; the border is not halved.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one axis: the output side is ceil(size / stride).

    TensorFlow puts the odd pixel of an odd total after the input, so a
    stride-2 layer on an even side pads asymmetrically (3x3: 0 before, 1
    after; 5x5: 1 and 2); at stride 1 with an odd kernel the padding is
    symmetric.
    """
    out = -(-size // stride)
    span = (kernel - 1) * dilation + 1  # the dilated kernel's extent
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def align_corners_indices(in_size: int, out_size: int, device: torch.device | None = None) -> torch.Tensor:
    """(out_size,) source indices of TF1 `resize_nearest_neighbor(..., align_corners=True)` along one axis.

    TensorFlow's legacy kernel (tensorflow/core/kernels/image/
    resize_nearest_neighbor_op.cc, half_pixel_centers=False) reads
    min(roundf(i · scale), in_size - 1) with the float32 scale
    (in_size - 1) / (out_size - 1) (in_size / out_size for a single output).
    roundf rounds halves away from zero; torch.round rounds them to even, so
    the rounding is spelt out. Example: 8 → 4 reads 0, 2, 5, 7.
    """
    if out_size > 1:
        scale = torch.tensor(in_size - 1, dtype=torch.float32) / (out_size - 1)
    else:
        scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale  # float32, as the kernel computes it
    below = position.floor()
    index = below + (position - below >= 0.5).to(torch.float32)  # half away from zero (position >= 0)
    return index.to(torch.long).clamp_max(in_size - 1).to(device)


def resize_nearest_align_corners(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) → (N, C, *size), TF1 nearest-neighbour resizing with align_corners=True.

    The released contextual attention downsamples with neuralgym's `resize`,
    which calls `tf.image.resize_nearest_neighbor` with align_corners=True (its
    default). That maps the first and last pixels onto each other, so the
    pixels it reads are not PyTorch's nearest ones (floor(i · in / out)):
    32 → 16 reads 0, 2, …, 14, 17, 19, …, 31. PyTorch's "nearest" mode has no
    align_corners, so the rows and columns are picked explicitly (gradients
    flow to the picked pixels, as through TensorFlow's op).
    """
    rows = align_corners_indices(x.shape[-2], size[0], x.device)
    cols = align_corners_indices(x.shape[-1], size[1], x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def unfold_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """(N, C, H, W) → (N, C·kernel·kernel, L): every window at `stride`, row-major, 'SAME'-padded with zeros."""
    pad_top, pad_bottom = same_padding(x.shape[-2], kernel, stride)
    pad_left, pad_right = same_padding(x.shape[-1], kernel, stride)
    return F.unfold(F.pad(x, (pad_left, pad_right, pad_top, pad_bottom)), kernel, stride=stride)


def resize_hole(hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) hole → (N, 1, *size): max-pool when shrinking (any hole pixel wins), nearest when growing."""
    if tuple(hole.shape[-2:]) == tuple(size):
        return hole
    if hole.shape[-2] >= size[0] and hole.shape[-1] >= size[1]:
        return F.adaptive_max_pool2d(hole, size)
    return F.interpolate(hole, size=size, mode="nearest")


VARIANTS = ("released", "corrected")


class ContextualAttention(nn.Module):
    """`forward(foreground, background, hole) -> (N, C, H, W)`; no learned parameters.

    `foreground` and `background` are (N, C, H, W) features (DeepFill passes the
    same tensor twice) with H and W multiples of `rate`; `hole` is (N, 1, H', W'),
    1 = hole, at the image or the feature resolution. Every foreground position
    is reconstructed, known ones too, as in the released code. A sample whose
    hole leaves no candidate patch gets zeros.
    """

    def __init__(self, ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                 softmax_scale: float = 10.0, fuse: bool = True, variant: str = "released"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if ksize % 2 == 0 or fuse_k % 2 == 0:
            raise ValueError(f"ksize and fuse_k must be odd, got {ksize} and {fuse_k}")
        if fuse and stride != 1:
            # Fusing pairs a one-pixel foreground step with a one-patch background
            # step; with stride > 1 those displacements differ.
            raise ValueError(f"fuse needs stride 1, got stride {stride}")
        self.ksize, self.stride, self.rate = ksize, stride, rate
        self.fuse_k, self.softmax_scale, self.fuse, self.variant = fuse_k, softmax_scale, fuse, variant

    def extra_repr(self) -> str:
        return (f"ksize={self.ksize}, stride={self.stride}, rate={self.rate}, fuse_k={self.fuse_k}, "
                f"softmax_scale={self.softmax_scale}, fuse={self.fuse}, variant={self.variant}")

    def forward(self, foreground: torch.Tensor, background: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        n, c, h, w = foreground.shape
        rate = self.rate
        if background.shape != foreground.shape:
            raise ValueError(f"foreground {tuple(foreground.shape)} and background "
                             f"{tuple(background.shape)} must have the same shape")
        if h % rate or w % rate:
            raise ValueError(f"feature map {h}x{w} is not a multiple of rate {rate}")
        small = (h // rate, w // rate)

        # Pasting patches: 2r x 2r at full resolution, one per matching patch, one per column.
        raw_patches = unfold_same(background, 2 * rate, rate * self.stride)  # (N, C·2r·2r, L)
        # Matching happens at 1/rate resolution, on the pixels the release's
        # align-corners nearest resize reads (released: resize(f, scale=1/rate),
        # resize(b, to_shape=[H/rate, W/rate]), both resize_nearest_neighbor).
        fg_small = resize_nearest_align_corners(foreground, small)  # (N, C, H/r, W/r)
        bg_small = resize_nearest_align_corners(background, small)  # (N, C, H/r, W/r)
        patches = unfold_same(bg_small, self.ksize, self.stride)  # (N, C·k·k, L), one patch per column
        hole_small = self._hole_at(hole.to(foreground.dtype), (h, w), small)  # (N, 1, H/r, W/r)
        candidate = unfold_same(hole_small, self.ksize, self.stride).amax(dim=1) == 0  # (N, L)
        grid = (-(-small[0] // self.stride), -(-small[1] // self.stride))  # background patch grid, L = gh·gw
        # Every foreground position's k x k window, zero-padded as the release's 'SAME' conv.
        windows = F.unfold(fg_small, self.ksize, padding=self.ksize // 2)  # (N, C·k·k, H/r · W/r)

        columns = []
        for i in range(n):
            # The release convolves the foreground with the normalised patches; the same
            # sums as one matrix product: rows are background patches, columns foreground
            # positions (both row-major).
            norms = patches[i].norm(dim=0).clamp_min(1e-4)  # (L,)
            scores = (patches[i] / norms).t() @ windows[i]  # (L, H/r · W/r)
            if self.fuse:
                scores = self._fuse(scores, grid, small)  # (L, H/r · W/r)
            keep = candidate[i].view(-1, 1).to(scores.dtype)  # (L, 1)
            if self.variant == "released":  # yi *= mm; softmax(yi * scale); yi *= mm
                attention = F.softmax(scores * keep * self.softmax_scale, dim=0)  # (L, H/r · W/r)
            else:
                # The finite fill keeps an all-hole sample from producing NaN: its
                # softmax is uniform, and then no candidate is pasted.
                scores = (scores * self.softmax_scale).masked_fill(keep == 0, torch.finfo(scores.dtype).min)
                attention = F.softmax(scores, dim=0)  # (L, H/r · W/r)
            # The release pastes with a transposed convolution whose kernels are the raw
            # patches, after zeroing the non-candidates' weights. The same sums as a matrix
            # product over the candidates alone, then a fold: each foreground position's
            # weighted sum of raw patches, added into place at stride r. A hole's patches
            # cost nothing, and the raw patches are read as unfolded.
            kept = candidate[i].nonzero().squeeze(1)  # (K,)
            weights = attention.index_select(0, kept)  # (K, H/r · W/r)
            columns.append(raw_patches[i].index_select(1, kept) @ weights)  # (C·2r·2r, H/r · W/r)
        pasted = F.fold(torch.stack(columns), (h + rate, w + rate), 2 * rate, stride=rate)  # (N, C, H + r, W + r)
        crop = same_padding(h, 2 * rate, rate)[0]
        pasted = pasted[..., crop:crop + h, crop:crop + w]  # (N, C, H, W)
        if self.variant == "released":
            return pasted / 4.0

        # How many raw patches cover each pixel: 4 inside, fewer on the border.
        ones = foreground.new_ones(1, 1, *small)
        overlap = F.conv_transpose2d(ones, foreground.new_ones(1, 1, 2 * rate, 2 * rate), stride=rate)
        overlap = overlap[..., crop:crop + h, crop:crop + w]  # (1, 1, H, W)
        return pasted / overlap

    def _hole_at(self, hole: torch.Tensor, feature: tuple[int, int], small: tuple[int, int]) -> torch.Tensor:
        """The hole at the matching resolution: as released, the features' align-corners nearest resize
        (image → feature side, then 1/rate); corrected, max-pooled (any hole pixel makes a hole cell)."""
        if self.variant == "released":
            if tuple(hole.shape[-2:]) != feature:
                hole = resize_nearest_align_corners(hole, feature)
            return resize_nearest_align_corners(hole, small)
        return resize_hole(resize_hole(hole, feature), small)

    def _fuse(self, scores: torch.Tensor, grid: tuple[int, int], small: tuple[int, int]) -> torch.Tensor:
        """(L, fh·fw) scores → the same, each summed with its fuse_k - 1 diagonal neighbours.

        The release convolves the score matrix with a fuse_k x fuse_k identity kernel, twice. That
        is a sum along the matrix's diagonal, taken here as shifted slices: oneDNN runs a
        one-channel 3x3 convolution of a 1024 x 1024 matrix (256² images) at a small fraction of
        its speed, and the slices take a twentieth of its time.
        """
        gh, gw = grid
        fh, fw = small
        # Rows: background patches, columns: foreground positions, both flattened row-major,
        # so a diagonal step moves both one pixel along the width (wrapping at row ends, as
        # the released code does). A diagonal sum reads the same in the transposed matrix,
        # so the release's (foreground, background) orientation need not be built.
        x = diagonal_sum(scores, self.fuse_k)  # (L, fh·fw)
        # The same along the height: flatten both column-major.
        x = x.view(gh, gw, fh, fw).permute(1, 0, 3, 2).reshape(gw * gh, fw * fh)
        x = diagonal_sum(x, self.fuse_k)  # (L, fw·fh), column-major
        return x.view(gw, gh, fw, fh).permute(1, 0, 3, 2).reshape(gh * gw, fh * fw)


def diagonal_sum(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """(A, B) → (A, B): out[a, b] = Σ matrix[a + d, b + d] over |d| ≤ k // 2, zero outside the matrix.

    The 'SAME' convolution with a k x k identity kernel that the release's fuse step runs.
    """
    total = matrix.clone()
    for shift in range(1, k // 2 + 1):
        total[shift:, shift:] += matrix[:-shift, :-shift]  # d = -shift
        total[:-shift, :-shift] += matrix[shift:, shift:]  # d = +shift
    return total
