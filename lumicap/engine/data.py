"""The training engine's view of the data: splits, the resumable sampler, loaders, batch streams.

Data order is a pure function of ``(seed, epoch)`` and the position inside the epoch: the sampler is a
``DistributedSampler`` (one replica when not distributed) whose permutation depends only on seed and
epoch, and the dataset draws crops/flips from ``(seed, epoch, index)``. A resumed run therefore sets
the epoch, skips the batches already consumed and sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lumicap.config import Config, StageConfig
from lumicap.errors import DatasetError, LumicapError


@dataclass
class Splits:
    train: list  # list[lumicap.data.ImagePair]
    val: list
    test: list
    val_source: str  # how val was made, for the run record


def training_pairs(cfg: Config) -> list:
    """The pairs of ``data.train_split``: one split, or several trained together (their names must differ)."""
    from lumicap.data import resolve_split

    d = cfg.data
    names = [d.train_split] if isinstance(d.train_split, str) else list(d.train_split)
    pairs = [pair for name in names for pair in resolve_split(d.root, name, d.layout)]
    if len(names) > 1 and len({pair.name for pair in pairs}) < len(pairs):
        raise DatasetError(f"data.train_split {names}: the splits share image names; they must be disjoint")
    return pairs


def resolve_splits(cfg: Config) -> Splits:
    """Train/val/test pairs. Val: an explicit split, the test split (``select_on: test``), or a carve
    of the training split by whole scenes (the default)."""
    from lumicap.data import resolve_split, split_by_scene

    d = cfg.data
    train = training_pairs(cfg)
    test = resolve_split(d.root, d.test_split, d.layout)
    if cfg.train.select_on == "test":
        return Splits(train, test, test, f"test split '{d.test_split}' (select_on: test)")
    if d.val_split is not None:
        return Splits(train, resolve_split(d.root, d.val_split, d.layout), test, f"split '{d.val_split}'")
    if d.val_fraction == 0:
        raise DatasetError("data.val_fraction is 0 and data.val_split is null: no validation set to select on")
    if len(train) < 2:
        raise DatasetError(
            f"data.train_split '{d.train_split}' has {len(train)} pair(s): carving a validation set out of it "
            "needs at least 2 (of different scenes); add pairs, or set data.val_split or train.select_on=test"
        )
    train, val = split_by_scene(train, d.val_fraction, seed=d.val_seed)
    return Splits(train, val, test, f"{len(val)} pairs carved by scene from '{d.train_split}' (seed {d.val_seed})")


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch part-way (after ``start`` of this rank's items)."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


class BatchStream:
    """Endless training batches for one stage, tracking ``(epoch, position)`` for checkpoints."""

    def __init__(
        self, cfg: Config, stage: StageConfig, pairs: list, rank: int, world: int, seed: int, context: bool = False
    ):
        from lumicap.data import PairedImageDataset

        if stage.batch_size % world:
            raise DatasetError(
                f"stage '{stage.name}': batch_size {stage.batch_size} is not divisible by the {world} processes"
            )
        self.batch_size = stage.batch_size // world
        self.dataset = PairedImageDataset(
            pairs, patch_size=stage.patch_size, augment=True, cache=cfg.data.cache, seed=seed,
            exposure_range=cfg.data.exposure_range, identity_fraction=cfg.data.identity_fraction,
            context=context,
        )
        self.sampler = ResumableSampler(self.dataset, world, rank, seed)
        self.batches_per_epoch = self.sampler.num_samples // self.batch_size
        if self.batches_per_epoch == 0:
            raise DatasetError(
                f"stage '{stage.name}': {len(pairs)} training pairs are fewer than one batch "
                f"({self.batch_size} per process x {world} processes)"
            )
        workers = cfg.data.num_workers
        self.loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=True,
            # A private generator: creating an iterator must not draw from the global RNG (resume).
            generator=torch.Generator().manual_seed(seed),
            worker_init_fn=_leave_stop_signals_to_the_trainer if workers > 0 else None,
        )
        self.epoch = 0
        self.position = 0
        self._iterator: Iterator | None = None

    def seek(self, epoch: int, position: int) -> None:
        self.epoch, self.position = epoch, position
        self._iterator = None

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch)
        self.dataset.set_epoch(self.epoch)
        self.sampler.start = self.position * self.batch_size
        self._iterator = iter(self.loader)

    def next(self) -> dict:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
            self._iterator = None
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except LumicapError as exc:
            raise worker_error(exc) from None
        self.position += 1
        return batch

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}


def _leave_stop_signals_to_the_trainer(_worker_id: int) -> None:
    """Ctrl-C in a terminal (SIGINT) and ``kill`` of the process group (SIGTERM) reach the data workers too. A
    worker that dies of them makes the trainer fail in the middle of a step, without the checkpoint it writes
    when it stops; the workers ignore them and the trainer, which handles both, shuts them down."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_error(exc: LumicapError) -> LumicapError:
    """A lumicap error raised in a DataLoader worker, as the one line it was there.

    PyTorch re-raises a worker's exception in the main process as the same type, but with a message of
    several lines ("Caught ImageReadError in DataLoader worker process 0. Original Traceback ..."); the
    original message is the traceback's last line, after the exception's name.
    """
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    name = type(exc).__name__
    prefixes = (f"{type(exc).__module__}.{name}: ", f"{name}: ")
    for line in reversed(text.splitlines()):
        for prefix in prefixes:
            if line.startswith(prefix):
                return type(exc)(line[len(prefix) :])
    return type(exc)(f"{name} in a data-loading worker process")


def eval_loader(pairs: list, cache: bool = False) -> DataLoader:
    """Whole images, one at a time, in a fixed order (validation and test); decoded in this process."""
    from lumicap.data import PairedImageDataset

    dataset = PairedImageDataset(pairs, patch_size=None, augment=False, cache=cache)
    # A private generator: iterating must not draw from the global RNG that training uses.
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0, generator=torch.Generator())
