"""Datasets and loaders: paired (low, high) images for training and evaluation, unpaired for enhancement.

Training input has to keep a GPU busy: a LOL-sized set is decoded once and held in memory as
integer arrays (uint8 is a quarter of float32: LOL-v1's 485 training pairs take ~0.7 GB), crops and
flips are tensor views, and loader workers persist across epochs. Augmentation is a pure function of
``(seed, epoch, index)``, so a run is reproducible whatever the number of workers. The epoch lives in a
shared-memory tensor so that ``set_epoch`` reaches workers that persist across epochs.

Pairing and layouts live in ``lumicap.data.pairing`` and are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lumicap.data.io import read_image_array
from lumicap.data.pairing import (  # noqa: F401  (re-exported: one import place for dataset users)
    LAYOUTS,
    ImagePair,
    detect_layout,
    find_pairs,
    list_images,
    resolve_split,
    scene_groups,
    split_by_scene,
)
from lumicap.errors import DatasetError


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8/uint16 -> (3, H, W) of the same integer type (uint16 stored as int32: torch lacks uint16 ops)."""
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _to_float(image: torch.Tensor, bit_depth: int) -> torch.Tensor:
    return image.to(torch.float32).div_(65535.0 if bit_depth == 16 else 255.0)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, epoch, index), well mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class PairedImageDataset(Dataset):
    """(low, high) image pairs as ``{"low": (3,h,w), "high": (3,h,w), "name": str}`` float tensors in [0, 1].

    ``patch_size=None`` yields whole images (evaluation; batch them one at a time, models pad inside).
    With ``patch_size`` the same random crop is taken from both images; with ``augment`` a random
    horizontal flip, vertical flip and 90-degree rotation (0/90/180/270; only 0/180 for non-square
    outputs, so that batch shapes stay equal) follow. All draws come from ``(seed, epoch, index)``.
    ``cache=False`` reads the files at every access (for sets too large for memory).
    ``exposure_range=(lo, hi)``: the low image is multiplied by a factor drawn log-uniformly from [lo, hi]
    (then clamped to [0, 1]) while the reference stays: the network learns that a brighter dark photo needs
    less gain, instead of one fixed brightening for LOL's very dark inputs (which clips the highlights of
    photos that are only moderately dark). Drawn after the crop and flips, so it changes no other draw.
    ``identity_fraction=p``: with probability ``p`` a sample's input is its *reference* (crop and context
    alike), so the target equals the input: a photo that is already well exposed must come back as it was.
    ``context=True`` (with ``patch_size``): each sample also carries ``"context"``, the whole low image the
    crop was cut from, with the same flips, rotation and exposure factor, for models whose global branch
    judges the whole photo (IAT's gamma and colour matrix) while the loss sees the crop. Whole images of one
    batch must then share a size; a 90-degree turn is used only when the whole image is square.

    Args:
        pairs: the (low, high) files, e.g. from ``resolve_split``.
        patch_size: side of the random square crop; None: whole images.
        augment: random flips and 90-degree rotations (with ``patch_size``).
        cache: decode every image once and keep it in memory.
        seed: with the epoch (``set_epoch``) and the index, decides every random draw.
        exposure_range: (lo, hi) of the log-uniform factor the low image is multiplied by; None: off.
        identity_fraction: share of samples whose input is their reference (0: none).
        context: add the whole low image of each crop as ``"context"``.
    """

    def __init__(
        self,
        pairs: list[ImagePair],
        patch_size: int | None = None,
        augment: bool = False,
        cache: bool = True,
        seed: int = 0,
        exposure_range: tuple[float, float] | None = None,
        identity_fraction: float = 0.0,
        context: bool = False,
    ):
        if not pairs:
            raise DatasetError("PairedImageDataset: no image pairs")
        if patch_size is not None and patch_size <= 0:
            raise DatasetError(f"patch_size must be positive, got {patch_size}")
        self.pairs = list(pairs)
        if exposure_range is not None:
            lo, hi = (float(v) for v in exposure_range)
            if not 0 < lo <= hi:
                raise DatasetError(f"exposure_range must be two factors 0 < low <= high, got {list(exposure_range)}")
            exposure_range = (lo, hi)
        if not 0.0 <= identity_fraction <= 1.0:
            raise DatasetError(f"identity_fraction must be in [0, 1], got {identity_fraction}")
        self.exposure_range = exposure_range
        self.identity_fraction = float(identity_fraction)
        self.context = bool(context) and patch_size is not None
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.cache = cache
        # Shared memory: workers forked (or spawned) before set_epoch still read the new value.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._images: list[tuple[torch.Tensor, torch.Tensor, int]] | None = None
        if cache:
            self._images = [self._load(i) for i in range(len(self.pairs))]

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        pair = self.pairs[index]
        low, high = read_image_array(pair.low), read_image_array(pair.high)
        if low.shape != high.shape:
            raise DatasetError(
                f"{pair.name}: size mismatch {pair.low} ({low.shape[1]}x{low.shape[0]}) vs "
                f"{pair.high} ({high.shape[1]}x{high.shape[0]})"
            )
        # Both sides share one bit depth so one scale converts them; an 8-bit side is widened exactly.
        bit_depth = 16 if np.uint16 in (low.dtype, high.dtype) else 8
        if bit_depth == 16:
            low = low.astype(np.uint16) * (257 if low.dtype == np.uint8 else 1)
            high = high.astype(np.uint16) * (257 if high.dtype == np.uint8 else 1)
        return _to_tensor(low), _to_tensor(high), bit_depth

    def __getitem__(self, index: int) -> dict:
        low, high, bit_depth = self._images[index] if self._images is not None else self._load(index)
        factor, whole = None, None
        if self.patch_size is not None or self.augment or self.exposure_range is not None:
            generator = sample_generator(self.seed, self.epoch, index)
            if self.patch_size is not None:
                whole = low
                low, high = self._random_crop(low, high, generator, index)
            if self.augment:
                square = whole is None or whole.shape[-1] == whole.shape[-2]
                flips = _draw_flip_rotate(generator, square=low.shape[-1] == low.shape[-2] and square)
                low, high = _apply_flip_rotate(low, flips), _apply_flip_rotate(high, flips)
                if self.context:
                    whole = _apply_flip_rotate(whole, flips)
            if self.exposure_range is not None:
                lo, hi = np.log(self.exposure_range)
                factor = float(np.exp(lo + (hi - lo) * float(torch.rand(1, generator=generator))))
            # Drawn last and only when asked, so configs without it keep every other draw.
            if self.identity_fraction > 0 and float(torch.rand(1, generator=generator)) < self.identity_fraction:
                low, factor = high, None
                if self.context:
                    whole = self._whole_reference(index, flips if self.augment else None)
        sample = {
            "low": self._as_input(low, bit_depth, factor),
            "high": _to_float(high, bit_depth),
            "name": self.pairs[index].name,
        }
        if self.context:
            sample["context"] = self._as_input(whole, bit_depth, factor)
        return sample

    @staticmethod
    def _as_input(image: torch.Tensor, bit_depth: int, factor: float | None) -> torch.Tensor:
        image = _to_float(image, bit_depth)
        return image if factor is None else image.mul_(factor).clamp_(0.0, 1.0)

    def _whole_reference(self, index: int, flips: tuple[int, int, int] | None) -> torch.Tensor:
        high = (self._images[index] if self._images is not None else self._load(index))[1]
        return high if flips is None else _apply_flip_rotate(high, flips)

    def _random_crop(self, low, high, generator, index):
        size = self.patch_size
        height, width = low.shape[-2:]
        if height < size or width < size:
            raise DatasetError(f"{self.pairs[index].low}: {width}x{height} is smaller than patch_size {size}")
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        return low[:, top : top + size, left : left + size], high[:, top : top + size, left : left + size]


def _draw_flip_rotate(generator: torch.Generator, square: bool) -> tuple[int, int, int]:
    """(horizontal flip, vertical flip, quarter turns); only 0/180-degree turns when not ``square`` (a 90-degree
    turn would change the shape of a non-square sample and break the batch)."""
    hflip, vflip = torch.randint(0, 2, (2,), generator=generator).tolist()
    quarter_turns = int(torch.randint(0, 4, (1,), generator=generator))
    return hflip, vflip, quarter_turns if square else quarter_turns // 2 * 2


def _apply_flip_rotate(image: torch.Tensor, flips: tuple[int, int, int]) -> torch.Tensor:
    hflip, vflip, quarter_turns = flips
    if hflip:
        image = image.flip(-1)
    if vflip:
        image = image.flip(-2)
    if quarter_turns:
        image = torch.rot90(image, quarter_turns, (-2, -1))
    return image


def mixup_pairs(
    low: torch.Tensor, high: torch.Tensor, generator: torch.Generator, alpha: float = 1.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with a shuffled copy of itself, one lambda ~ Beta(alpha, alpha) for low and high.

    This is the mixup of Retinexformer's training (BasicSR ``Mixing_Augment``, beta 1.2); whether to
    apply it at a given step (Retinexformer skips it half the time) is the caller's choice.
    """
    if low.shape != high.shape:
        raise ValueError(f"mixup_pairs: low {tuple(low.shape)} and high {tuple(high.shape)} differ")
    # torch's Beta sampler takes no generator; a numpy stream seeded from it keeps the draw reproducible.
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    lam = float(rng.beta(alpha, alpha))
    order = torch.randperm(low.shape[0], generator=generator).to(low.device)
    return lam * low + (1 - lam) * low[order], lam * high + (1 - lam) * high[order]


class UnpairedImageDataset(Dataset):
    """Images without references (DICM, LIME, MEF, NPE, VV, a user's photos): ``{"low", "name", "path"}``.

    Files are decoded at each access; whole images, so batch them one at a time.
    """

    def __init__(self, paths_or_dir: str | os.PathLike | list):
        if isinstance(paths_or_dir, (str, os.PathLike)):
            folder = Path(paths_or_dir)
            if folder.is_file():
                self.paths = [folder]
            else:
                self.paths = list_images(folder)
                if not self.paths:
                    raise DatasetError(f"{folder}: no images")
        else:
            self.paths = [Path(p) for p in paths_or_dir]
            if not self.paths:
                raise DatasetError("UnpairedImageDataset: empty list of images")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        array = read_image_array(path)
        return {
            "low": _to_float(_to_tensor(array), 16 if array.dtype == np.uint16 else 8),
            "name": path.stem,
            "path": str(path),
        }


class EpochSampler(Sampler):
    """Indices in a permutation drawn from (seed, epoch) (or in order); ``set_epoch`` picks the epoch."""

    def __init__(self, length: int, shuffle: bool, seed: int = 0):
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    distributed: bool = False,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader with per-epoch seeded shuffling (a DistributedSampler under DDP), persistent workers
    when ``num_workers > 0``, and pinned memory when CUDA is present. ``drop_last`` defaults to ``shuffle``
    (training batches all have ``batch_size`` items). Call ``set_loader_epoch`` before each epoch.
    """
    drop_last = shuffle if drop_last is None else drop_last
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the sampler (shuffle order) and the dataset (augmentation draws) which epoch starts."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
