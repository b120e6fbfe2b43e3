"""FER-2013 in memory: FERData, one split of a source as uint8 tensors, carved by the one table of splits."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch

from fernb.errors import DataError, check_number
from fernb.sources import CLASSES, DEFAULT_ROOT, IMAGE_SIZE, USAGES, Pool, read_pool, resolve_source  # noqa: F401

# split -> the FER-2013 usages it draws from; train and val are a stratified, seeded hold-out carved from Training
SPLITS = {"train": ("Training",), "val": ("Training",), "trainval": ("Training",),
          "test": ("PublicTest", "PrivateTest", "Test"), "publictest": ("PublicTest",),
          "privatetest": ("PrivateTest",)}


@dataclass
class FERData:
    """One split in memory: images uint8 [N, 48, 48], labels int64 [N] indexing classes (FER-2013's seven, or the
    class folders of a source of your own)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    split: str
    source: str
    holdout: dict | None = None  # {"val_fraction", "seed"} that carved train/val: fit stores it in the checkpoint
    targets: torch.Tensor | None = None  # float [N, C] soft targets that training learns instead of labels (FER+)

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """A short hash of the faces and their labels: a run records its training split's, so that resume and
        scoring on val can tell the same data from other data."""
        h = hashlib.sha1(self.images.contiguous().numpy().tobytes())
        h.update(self.labels.contiguous().numpy().tobytes())
        if self.targets is not None:
            h.update(self.targets.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        n = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, n))


def load(source: str | os.PathLike | None = None, split: str = "train", val_fraction: float = 0.1,
         seed: int = 0, pool: Pool | None = None) -> FERData:
    """Load one split (a key of SPLITS) as tensors; train and val record the hold-out that carved them, so a
    checkpoint trained on train can carve the same val."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    pool = pool or read_pool(source)
    idx = split_indices(pool, split, val_fraction, seed)
    holdout = {"val_fraction": val_fraction, "seed": seed} if split in ("train", "val") else None
    return FERData(images=torch.from_numpy(pool.images[idx]), labels=torch.from_numpy(pool.labels[idx]),
                   classes=pool.classes, split=split, source=pool.source, holdout=holdout,
                   targets=None if pool.soft is None else torch.from_numpy(pool.soft[idx]))


def load_train_val(source: str | os.PathLike | None = None, val_fraction: float = 0.1, seed: int = 0,
                   pool: Pool | None = None) -> tuple[FERData, FERData | None]:
    """The (train, val) pair that fit takes; val_fraction 0: all of train and no val (the last epoch is kept)."""
    if val_fraction != 0:
        check_holdout(val_fraction, seed)  # before reading the source: a bad option fails at once
    pool = pool or read_pool(source)
    if val_fraction == 0:
        return load(split="train", val_fraction=0, seed=seed, pool=pool), None
    return load(split="train", val_fraction=val_fraction, seed=seed, pool=pool), \
        load(split="val", val_fraction=val_fraction, seed=seed, pool=pool)


def split_indices(pool: Pool, split: str, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Indices of one split's faces in the pool, by SPLITS; val is a stratified, seeded hold-out of Training."""
    idx = np.flatnonzero(np.isin(pool.usage, [USAGES.index(u) for u in SPLITS[split]]))
    if len(idx) == 0:
        what = {"Training": "training images (no train/ folder or Training rows)", "PublicTest": "PublicTest_* files "
                "or PublicTest rows", "PrivateTest": "PrivateTest_* files or PrivateTest rows"}
        raise DataError(f"{pool.source}: holds no {'test/ images' if split == 'test' else what[SPLITS[split][0]]} "
                        f"for split {split!r}; point --data at a source that has them")
    if split not in ("train", "val") or (split == "train" and val_fraction == 0):
        return idx
    check_holdout(val_fraction, seed)
    return np.sort(_stratified_holdout(idx, pool.labels[idx], val_fraction, seed)[split == "val"])


def check_holdout(val_fraction: float, seed: int) -> None:
    """Refuse a hold-out that cannot be carved: a fraction outside (0, 1) or a negative or non-integer seed."""
    check_number("val_fraction", val_fraction, 0, 1, lo_open=True, error=DataError)
    check_number("seed", seed, 0, 2**32, whole=True, error=DataError)


def _stratified_holdout(idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split idx into (keep, holdout) with `fraction` of every class held out, seeded.

    By hand rather than sklearn's train_test_split: that refuses small sets and costs a second to import.
    """
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for k in np.unique(labels):
        members = rng.permutation(idx[labels == k])
        n_held = int(round(fraction * len(members)))
        held.append(members[:n_held])
        keep.append(members[n_held:])
    return np.concatenate(keep), np.concatenate(held)


def describe(pool: Pool, val_fraction: float = 0.1, seed: int = 0) -> dict:
    """Layout, image size and per-split, per-class counts of a source (what `fernb info` prints)."""
    check_holdout(val_fraction, seed)
    splits = {}
    for split in SPLITS:
        if not np.isin(pool.usage, [USAGES.index(u) for u in SPLITS[split]]).any():
            continue  # the source has no such faces: a test-only folder has no train, a PublicTest-only one no private
        idx = split_indices(pool, split, val_fraction, seed)
        counts = np.bincount(pool.labels[idx], minlength=len(pool.classes))
        splits[split] = {"total": int(len(idx)), "per_class": dict(zip(pool.classes, counts.tolist()))}
    return {"source": pool.source, "layout": pool.layout, "image_size": list(pool.images.shape[1:]),
            "classes": list(pool.classes), "total": int(len(pool.labels)), "resized": pool.resized, "splits": splits}
