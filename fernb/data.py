"""FER-2013 in memory: the public folder layout, Kaggle's CSV or a synthetic stand-in, as uint8 tensors per split."""
from __future__ import annotations

import csv
import hashlib
import os
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fernb import synthetic
from fernb.errors import DataError
from fernb.files import atomic_write

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # canonical: alphabetical, as the folders
CSV_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # Kaggle's fer2013.csv emotion ids
IMAGE_SIZE = 48
USAGES = ("Training", "PublicTest", "PrivateTest", "Test")  # "Test": a test/ file whose name names neither half
SPLITS = ("train", "val", "trainval", "test", "publictest", "privatetest")
DEFAULT_ROOT = Path("data/fer2013")
_CACHE_VERSION = "1"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Pool:
    """Every image a source holds, before splitting: usage says which FER-2013 split each came from."""

    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], index into CLASSES
    usage: np.ndarray  # uint8 [N], index into USAGES
    source: str
    layout: str  # "folder", "csv" or "synthetic"
    resized: int = 0  # how many images were not 48x48 and were resized


@dataclass
class FERData:
    """One split in memory: images uint8 [N, 48, 48], labels int64 [N] in CLASSES order."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    split: str
    source: str
    holdout: dict | None = None  # {"val_fraction", "seed"} that carved train/val: fit stores it in the checkpoint

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        n = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, n))


# ---------------------------------------------------------------- where data comes from


def resolve_source(source: str | os.PathLike | None = None) -> str:
    """The source to read: the argument, else $FERNB_DATA, else ./data/fer2013, else 'synthetic'."""
    if source is not None and str(source) != "":
        return str(source)
    if os.environ.get("FERNB_DATA"):
        return os.environ["FERNB_DATA"]
    if DEFAULT_ROOT.is_dir():
        return str(DEFAULT_ROOT)
    return "synthetic"


def synthetic_notice(asked: bool) -> str:
    """The line shown whenever synthetic faces stand in for FER-2013."""
    why = "as asked" if asked else "no FER-2013 found (no --data, $FERNB_DATA unset, no ./data/fer2013)"
    return (f"fernb: NOTICE: synthetic cartoon faces stand in for FER-2013 ({why}); numbers below are not "
            "FER-2013 results. Get the data: fernb download data/fer2013")


def read_pool(source: str | os.PathLike | None = None) -> Pool:
    """Read every image of a source (folder, CSV or 'synthetic'), through the on-disk cache."""
    src = resolve_source(source)
    if src == "synthetic":
        print(synthetic_notice(asked=str(source) == "synthetic"), file=sys.stderr)
        return synthetic_pool()
    path = Path(src).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass a FER-2013 folder (train/ and/or test/) or fer2013.csv, "
                        "or fetch it with `fernb download data/fer2013`")
    if path.is_dir():
        files = scan_folder(path)
        pool = _cached(path, _fingerprint_files(path, files), lambda: _read_folder(path, files))
    elif path.suffix.lower() == ".csv":
        st = path.stat()
        pool = _cached(path.parent, f"csv|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}", lambda: read_csv(path))
    else:
        raise DataError(f"{path}: not a folder or a .csv file; pass a FER-2013 folder or Kaggle's fer2013.csv")
    pool.source = src  # the cache may have been written through another path to the same data
    return pool


def load(source: str | os.PathLike | None = None, split: str = "train", val_fraction: float = 0.1,
         seed: int = 0, pool: Pool | None = None) -> FERData:
    """Load one split ('train', 'val', 'trainval', 'test', 'publictest', 'privatetest') as tensors.

    train and val record the hold-out that carved them, so a checkpoint trained on train can carve the same val.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    pool = pool or read_pool(source)
    idx = split_indices(pool, split, val_fraction, seed)
    holdout = {"val_fraction": val_fraction, "seed": seed} if split in ("train", "val") else None
    return FERData(images=torch.from_numpy(pool.images[idx]), labels=torch.from_numpy(pool.labels[idx]),
                   classes=CLASSES, split=split, source=pool.source, holdout=holdout)


def synthetic_pool(seed: int = 0) -> Pool:
    """The synthetic stand-in set: a training part and a test part split into PublicTest and PrivateTest halves."""
    train_x, train_y = synthetic.synthetic_faces(synthetic.TRAIN_PER_CLASS, seed, IMAGE_SIZE)
    test_x, test_y = synthetic.synthetic_faces(synthetic.TEST_PER_CLASS, seed + 1, IMAGE_SIZE)
    test_usage = np.where(np.arange(len(test_y)) % 2 == 0, USAGES.index("PublicTest"), USAGES.index("PrivateTest"))
    usage = np.concatenate([np.full(len(train_y), USAGES.index("Training")), test_usage]).astype(np.uint8)
    return Pool(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]), usage, "synthetic", "synthetic")


def split_indices(pool: Pool, split: str, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Indices of one split; val is a stratified, seeded hold-out carved from the training images."""
    usage = pool.usage
    if split in ("train", "val", "trainval"):
        idx = np.flatnonzero(usage == USAGES.index("Training"))
        if len(idx) == 0:
            raise DataError(f"{pool.source}: holds no training images (no train/ folder or Training rows); "
                            "point --data at a source with train/")
        if split == "trainval" or (split == "train" and val_fraction == 0):
            return idx
        check_holdout(val_fraction, seed)
        return np.sort(_stratified_holdout(idx, pool.labels[idx], val_fraction, seed)[split == "val"])
    wanted = {"test": ("PublicTest", "PrivateTest", "Test"), "publictest": ("PublicTest",),
              "privatetest": ("PrivateTest",)}[split]
    idx = np.flatnonzero(np.isin(usage, [USAGES.index(u) for u in wanted]))
    if len(idx) == 0:
        what = "test/ images" if split == "test" else f"{wanted[0]}_* files or {wanted[0]} rows"
        raise DataError(f"{pool.source}: holds no {what} for split {split!r}; point --data at a source that has them")
    return idx


def check_holdout(val_fraction: float, seed: int) -> None:
    """Refuse a hold-out that cannot be carved: a fraction outside (0, 1) or a negative or non-integer seed."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction={val_fraction}: must be in (0, 1) to carve a val split")
    if not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed={seed!r}: must be a whole number >= 0")


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
        try:
            idx = split_indices(pool, split, val_fraction, seed)
        except DataError:
            continue
        counts = np.bincount(pool.labels[idx], minlength=len(CLASSES))
        splits[split] = {"total": int(len(idx)), "per_class": dict(zip(CLASSES, counts.tolist()))}
    return {"source": pool.source, "layout": pool.layout, "image_size": list(pool.images.shape[1:]),
            "classes": list(CLASSES), "total": int(len(pool.labels)), "resized": pool.resized, "splits": splits}


def find_oddities(pool: Pool, blank_std: float = 3.0) -> dict:
    """Near-blank images (pixel std below blank_std) and groups of pixel-identical images across all splits."""
    blank = np.flatnonzero(pool.images.reshape(len(pool.images), -1).std(1) < blank_std)
    rows = np.ascontiguousarray(pool.images.reshape(len(pool.images), -1))
    as_bytes = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one opaque value per image: a fast unique
    _, inverse, counts = np.unique(as_bytes, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    groups = [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]
    train = USAGES.index("Training")
    cross = sum(1 for g in groups if len(set(pool.usage[g] == train)) > 1)
    conflicting = [g for g in groups if len(set(pool.labels[g])) > 1]
    return {"blank": blank, "duplicate_groups": groups, "cross_split": cross, "conflicting_labels": len(conflicting),
            "conflicting_groups": conflicting}


def face_titles(pool: Pool, indices) -> list[str]:
    """'split / label' for each face, to title a strip of faces from a pool."""
    split = {"Training": "train", "PublicTest": "public test", "PrivateTest": "private test", "Test": "test"}
    return [f"{split[USAGES[pool.usage[i]]]}\n{CLASSES[pool.labels[i]]}" for i in indices]


def pick_faces(images: torch.Tensor, n: int, seed: int = 0, min_std: float = 20.0) -> list[int]:
    """n random (seeded) faces with real contrast: FER-2013's blank frames make poor examples."""
    ok = torch.nonzero(images.float().flatten(1).std(1) >= min_std).flatten()
    return ok[torch.randperm(len(ok), generator=torch.Generator().manual_seed(seed))[:n]].tolist()


# ---------------------------------------------------------------- the public folder layout


def scan_folder(root: Path) -> list[tuple[str, int, str, int, int]]:
    """List (usage, class index, path, size, mtime) of every image under ROOT/{train,test}/<class>/, checking the layout."""
    split_dirs = [d for d in ("train", "test") if (root / d).is_dir()]
    if not split_dirs:
        raise DataError(f"{root}: found neither train/ nor test/; expected ROOT/train/<class>/*.jpg and/or "
                        "ROOT/test/<class>/*.jpg (fetch it with `fernb download DEST`)")
    files = []
    for d in split_dirs:
        found = sorted(p.name for p in (root / d).iterdir() if p.is_dir() and not p.name.startswith("."))
        unknown = sorted(set(found) - set(CLASSES))
        missing = [c for c in CLASSES if c not in found]
        if unknown:
            raise DataError(f"{root / d}: unknown class folder(s) {', '.join(unknown)}; "
                            f"FER-2013 has exactly {', '.join(CLASSES)}: rename or remove them")
        if missing:
            raise DataError(f"{root / d}: missing class folder(s) {', '.join(missing)}; "
                            f"FER-2013 has exactly {', '.join(CLASSES)}: add them")
        for label, c in enumerate(CLASSES):
            # os.scandir, not Path.iterdir: the listing and stat of 36k files stays well under a second
            with os.scandir(root / d / c) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            if not entries:
                raise DataError(f"{root / d / c}: class folder is empty; add its images or re-download the dataset")
            for e in entries:
                st = e.stat()
                files.append((_usage_of(d, e.name), label, e.path, st.st_size, st.st_mtime_ns))
    return files


def _usage_of(split_dir: str, name: str) -> str:
    """FER-2013 usage from the split folder and file name (PublicTest_* / PrivateTest_* in test/)."""
    if split_dir == "train":
        return "Training"
    for u in ("PublicTest", "PrivateTest"):
        if name.startswith(u):
            return u
    return "Test"


def _fingerprint_files(root: Path, files: list[tuple[str, int, str, int, int]]) -> str:
    """A key that changes when any file is added, removed, renamed, resized or touched."""
    h, skip = hashlib.sha1(), len(str(root))  # paths relative to root, so a moved folder keeps its cache
    h.update("".join(f"{u}|{lab}|{p[skip:]}|{size}|{mtime}\n" for u, lab, p, size, mtime in files).encode())
    return "folder|" + h.hexdigest()


def decode_image(path: str | Path) -> tuple[np.ndarray, bool]:
    """Decode one face to 48x48 grey uint8; returns (pixels, was_resized)."""
    path = Path(path)
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file (expected .jpg/.png); remove it from the class folder")
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            resized = im.size != (IMAGE_SIZE, IMAGE_SIZE)
            if resized:  # our call: resize rather than refuse, so a folder of your own face crops works too
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8), resized
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e.__class__.__name__}); delete or replace it") from None


def _read_folder(root: Path, files: list[tuple[str, int, str, int, int]]) -> Pool:
    """Decode every image of a checked folder layout."""
    images = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    # threads: PIL releases the GIL while decoding, so 2 cores decode ~2x faster
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as ex:
        decoded = list(ex.map(decode_image, [f[2] for f in files]))
    for i, (pixels, _) in enumerate(decoded):
        images[i] = pixels
    resized = sum(r for _, r in decoded)
    if resized:
        first = next(f[2] for f, (_, r) in zip(files, decoded) if r)
        print(f"fernb: {resized} image(s) were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized (first: {first})",
              file=sys.stderr)
    labels = np.array([f[1] for f in files], np.int64)
    usage = np.array([USAGES.index(f[0]) for f in files], np.uint8)
    return Pool(images, labels, usage, source=str(root), layout="folder", resized=resized)


# ---------------------------------------------------------------- Kaggle's fer2013.csv


def read_csv(path: Path) -> Pool:
    """Read Kaggle's fer2013.csv (emotion,pixels,Usage), mapping its label order to CLASSES."""
    try:
        return _parse_csv(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; pass Kaggle's fer2013.csv (emotion,pixels,Usage)") from None


def _parse_csv(path: Path) -> Pool:
    """read_csv's loop over the rows, checking each."""
    to_canonical = np.array([CLASSES.index(c) for c in CSV_CLASSES])
    images, labels, usage = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:3] != ["emotion", "pixels", "Usage"]:
            raise DataError(f"{path}: columns are {','.join(header) or '(none)'}; expected emotion,pixels,Usage "
                            "(Kaggle's fer2013.csv)")
        for row_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                emotion, pixels, use = int(row[0]), np.array(row[1].split(), dtype=np.int64), row[2].strip()
            except (ValueError, IndexError):
                raise DataError(f"{path}:{row_no}: malformed row; expected an emotion id, 2304 pixel values and "
                                "a Usage: fix or delete the row") from None
            if not 0 <= emotion < len(CSV_CLASSES):
                raise DataError(f"{path}:{row_no}: emotion {emotion} is not in 0..6: fix or delete the row")
            if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
                got = (f"{pixels.size} values" if pixels.size != IMAGE_SIZE * IMAGE_SIZE else
                       f"a value of {pixels.max() if pixels.max() > 255 else pixels.min()}")
                raise DataError(f"{path}:{row_no}: pixels must be {IMAGE_SIZE * IMAGE_SIZE} values in 0..255, "
                                f"got {got}: fix or delete the row")
            if use not in USAGES[:3]:
                raise DataError(f"{path}:{row_no}: Usage {use!r} is not Training, PublicTest or PrivateTest")
            images.append(pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
            labels.append(to_canonical[emotion])
            usage.append(USAGES.index(use))
    if not images:
        raise DataError(f"{path}: has a header but no rows; is the download complete?")
    return Pool(np.stack(images), np.array(labels, np.int64), np.array(usage, np.uint8), str(path), "csv")


# ---------------------------------------------------------------- the decoded-array cache


def cache_dir_for(data_dir: Path) -> Path:
    """Where the cache goes: $FERNB_CACHE_DIR, else beside the data when writable, else the user cache dir."""
    if os.environ.get("FERNB_CACHE_DIR"):
        return Path(os.environ["FERNB_CACHE_DIR"])
    st = data_dir.stat()
    # the write bit, not os.access: root may write anywhere, yet a folder without write bits is meant read-only
    if st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) and os.access(data_dir, os.W_OK):
        return data_dir / ".fernb-cache"
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("fernb"))


def _cached(data_dir: Path, key: str, build) -> Pool:
    """Load the pool for `key` from the cache, or build it and write the cache atomically."""
    digest = hashlib.sha1(f"{_CACHE_VERSION}|{key}".encode()).hexdigest()[:20]
    path = cache_dir_for(data_dir) / f"pool-{digest}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return Pool(z["images"], z["labels"], z["usage"], str(z["source"]), str(z["layout"]), int(z["resized"]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    pool = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, images=pool.images, labels=pool.labels, usage=pool.usage,
                                                source=pool.source, layout=pool.layout, resized=pool.resized))
    except OSError as e:  # a cache we cannot write only costs speed
        print(f"fernb: could not write the cache {path} ({e.strerror}); set FERNB_CACHE_DIR to a writable folder",
              file=sys.stderr)
    return pool
