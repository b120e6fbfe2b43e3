"""Where faces come from: the public folder layout, Kaggle's CSV or the synthetic stand-in, read into one Pool,
through a content-keyed cache of the decoded arrays."""
from __future__ import annotations

import csv
import errno
import hashlib
import os
import stat
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fernb import synthetic
from fernb.errors import DataError, OutputError
from fernb.files import atomic_write
from fernb.images import open_image

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # canonical: alphabetical, as the folders
CSV_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # Kaggle's fer2013.csv emotion ids
IMAGE_SIZE = 48
USAGES = ("Training", "PublicTest", "PrivateTest", "Test")
# the names other datasets give these classes (CK+, JAFFE, RAF-DB, AffectNet folders), mapped onto CLASSES by name
SYNONYMS = {"anger": "angry", "disgusted": "disgust", "fearful": "fear", "happiness": "happy", "sadness": "sad",
            "surprised": "surprise"}  # "Test": a test/ file whose name names neither half
DEFAULT_ROOT = Path("data/fer2013")
_CACHE_VERSION = "2"  # 2: the pool's classes are cached too
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Pool:
    """Every image a source holds, before splitting: usage says which FER-2013 split each came from."""

    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], index into classes
    usage: np.ndarray  # uint8 [N], index into USAGES
    source: str
    layout: str  # "folder", "csv" or "synthetic"
    resized: int = 0  # how many images were not 48x48 and were resized
    classes: tuple[str, ...] = CLASSES  # FER-2013's seven, or the class folders a source of your own has
    soft: np.ndarray | None = None  # float32 [N, C]: soft targets (FER+'s vote distributions), or None


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
    try:
        return _read_pool(src)
    except DataError as e:
        if source is None or str(source) == "":  # the user may not know where the path came from: say it
            raise DataError(f"{e} (the data path {src} came from " + ("$FERNB_DATA)" if os.environ.get("FERNB_DATA")
                                                                      else "the default ./data/fer2013)")) from None
        raise


def _read_pool(src: str) -> Pool:
    """Read a folder or CSV source through the cache."""
    path = Path(src).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass a FER-2013 folder (train/ and/or test/) or fer2013.csv, "
                        "or fetch it with `fernb download data/fer2013`")
    if path.is_dir():
        try:
            files, notes = scan_folder(path)
        except OSError as e:  # a folder we may not list: permissions, a loop of links
            raise DataError(f"{e.filename or path}: cannot be listed ({e.strerror}); make it readable for you") from None
        pool = _cached(path, _fingerprint_files(path, files, notes["classes"]),
                       lambda: _read_folder(path, files, notes["classes"]))
        say_what_was_mapped(path, notes)
    elif path.suffix.lower() == ".csv":
        st = path.stat()
        pool = _cached(path.parent, f"csv|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}", lambda: read_csv(path))
    else:
        raise DataError(f"{path}: not a folder or a .csv file; pass a FER-2013 folder or Kaggle's fer2013.csv")
    pool.source = src  # the cache may have been written through another path to the same data
    return pool


def synthetic_pool(seed: int = 0) -> Pool:
    """The synthetic stand-in set: a training part and a test part split into PublicTest and PrivateTest halves."""
    train_x, train_y = synthetic.synthetic_faces(synthetic.TRAIN_PER_CLASS, seed, IMAGE_SIZE)
    test_x, test_y = synthetic.synthetic_faces(synthetic.TEST_PER_CLASS, seed + 1, IMAGE_SIZE)
    test_usage = np.where(np.arange(len(test_y)) % 2 == 0, USAGES.index("PublicTest"), USAGES.index("PrivateTest"))
    usage = np.concatenate([np.full(len(train_y), USAGES.index("Training")), test_usage]).astype(np.uint8)
    return Pool(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]), usage, "synthetic", "synthetic")


# ---------------------------------------------------------------- the public folder layout


def scan_folder(root: Path) -> tuple[list[tuple[str, int, str, int, int]], dict]:
    """List (usage, class index, path, size, mtime) of every image in the folder layout ROOT/{train,test}/<class>/,
    or a flat ROOT/<class>/ taken as one test split; and the source's classes, with what was mapped on the way.
    Class folders may be any of CLASSES, under their own names or the usual other ones (SYNONYMS), and classes of
    your own (contempt, say), which follow CLASSES in alphabetical order."""
    splits = [(root / d, d) for d in ("train", "test") if (root / d).is_dir()] or [(root, "test")]
    named = {d: class_folders(folder) for folder, d in splits}  # per split: folder name -> class
    found = {c for folders in named.values() for c in folders.values()}
    classes = tuple([c for c in CLASSES if c in found] + sorted(found - set(CLASSES)))
    files = []
    for folder, d in splits:
        for name, c in named[d].items():
            # os.scandir, not Path.iterdir: the listing and stat of 36k files stays well under a second
            with os.scandir(folder / name) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            if not entries:
                raise DataError(f"{folder / name}: class folder is empty; add its images or re-download the dataset")
            for e in entries:
                st = _stat(e)
                files.append((usage_of(d, e.name), classes.index(c), e.path, st.st_size, st.st_mtime_ns))
    if not files:
        raise DataError(f"{root}: found neither train/ nor test/ (nor class folders); expected ROOT/train/<class>/*.jpg "
                        "and/or ROOT/test/<class>/*.jpg, or ROOT/<class>/*.jpg (fetch FER-2013 with `fernb download DEST`)")
    mapped = {f: c for folders in named.values() for f, c in folders.items() if f != c}
    return files, {"classes": classes, "mapped": mapped}


def _stat(entry: os.DirEntry) -> os.stat_result:
    """An image file's size and time, following links; one line naming a broken link, a loop or an unreadable file."""
    try:
        return entry.stat()
    except OSError as e:
        raise DataError(f"{entry.path}: cannot be read ({'a link in a loop' if e.errno == errno.ELOOP else e.strerror}"
                        "); fix or remove it") from None


def class_folders(split_dir: Path) -> dict[str, str]:
    """The class folders of one split, each with its class: FER-2013's by name (never by position) or its own."""
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    to_class = {f: SYNONYMS.get(f.lower(), f.lower()) for f in found}
    for c in set(to_class.values()):
        same = [f for f, k in to_class.items() if k == c]
        if len(same) > 1:
            raise DataError(f"{split_dir}: folders {' and '.join(same)} would both be class {c}; merge them into one")
    return to_class


def say_what_was_mapped(path: Path, notes: dict) -> None:
    """One line each for class folders read under another name, classes of its own, and FER-2013 classes it lacks."""
    classes, mapped = notes["classes"], notes["mapped"]
    if mapped:
        print(f"fernb: {path}: class folders mapped by name: " + ", ".join(f"{f} -> {c}" for f, c in sorted(mapped.items())),
              file=sys.stderr)
    own, missing = [c for c in classes if c not in CLASSES], [c for c in CLASSES if c not in classes]
    if own or missing:
        print(f"fernb: {path}: {len(classes)} classes ({', '.join(classes)})" + (f"; none of {', '.join(missing)}"
              if missing else "") + "; a model trained on it learns these, and scores cover the classes it has",
              file=sys.stderr)


def usage_of(split_dir: str, name: str) -> str:
    """FER-2013 usage from the split folder and file name (PublicTest_* / PrivateTest_* in test/)."""
    if split_dir == "train":
        return "Training"
    return next((u for u in ("PublicTest", "PrivateTest") if name.startswith(u)), "Test")


def _fingerprint_files(root: Path, files: list[tuple[str, int, str, int, int]], classes) -> str:
    """A key that changes when any file is added, removed, renamed, resized or touched, or a class renamed."""
    h = hashlib.sha1("|".join(classes).encode())  # paths relative to root, so a moved folder keeps its cache
    h.update("".join(f"{u}|{lab}|{os.path.relpath(p, root)}|{size}|{mtime}\n"
                     for u, lab, p, size, mtime in files).encode("utf-8", "surrogateescape"))
    return "folder|" + h.hexdigest()


def decode_image(path: str | Path) -> tuple[np.ndarray, bool]:
    """Decode one face to 48x48 grey uint8, upright and scaled as a photo is (images.open_image); returns (pixels,
    was_resized)."""
    path = Path(path)
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file (expected .jpg/.png); remove it from the class folder")
    im = open_image(path, DataError).convert("L")
    resized = im.size != (IMAGE_SIZE, IMAGE_SIZE)
    if resized:  # our call: resize rather than refuse, so a folder of your own face crops works too
        im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8), resized


def _read_folder(root: Path, files: list[tuple[str, int, str, int, int]], classes: tuple[str, ...]) -> Pool:
    """Decode every image of a checked folder layout."""
    # threads: PIL releases the GIL while decoding, so every core decodes
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as ex:
        decoded = list(ex.map(decode_image, [f[2] for f in files]))
    images = np.stack([pixels for pixels, _ in decoded]) if decoded else np.empty((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    resized = sum(r for _, r in decoded)
    if resized:
        first = next(f[2] for f, (_, r) in zip(files, decoded) if r)
        print(f"fernb: {resized} image(s) were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized (first: {first})",
              file=sys.stderr)
    labels = np.array([f[1] for f in files], np.int64)
    usage = np.array([USAGES.index(f[0]) for f in files], np.uint8)
    return Pool(images, labels, usage, source=str(root), layout="folder", resized=resized, classes=classes)


# ---------------------------------------------------------------- Kaggle's fer2013.csv


def read_csv(path: Path) -> Pool:
    """Read Kaggle's fer2013.csv (emotion,pixels,Usage), checking each row and mapping its label order to CLASSES."""
    to_canonical = np.array([CLASSES.index(c) for c in CSV_CLASSES])
    images, labels, usage = [], [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of the header
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if header[:3] != ["emotion", "pixels", "Usage"]:
                raise DataError(f"{path}: columns are {','.join(header) or '(none)'}; expected emotion,pixels,Usage "
                                "(Kaggle's fer2013.csv)")
            for row_no, row in enumerate(reader, start=2):
                if row:
                    pixels, emotion, use = _csv_row(path, row_no, row)
                    images.append(pixels)
                    labels.append(to_canonical[emotion])
                    usage.append(USAGES.index(use))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; pass Kaggle's fer2013.csv (emotion,pixels,Usage)") from None
    except PermissionError:
        raise DataError(f"{path}: not readable for you (permission denied); make it readable, e.g. chmod a+r") from None
    if not images:
        raise DataError(f"{path}: has a header but no rows; is the download complete?")
    return Pool(np.stack(images), np.array(labels, np.int64), np.array(usage, np.uint8), str(path), "csv")


def _csv_row(path: Path, row_no: int, row: list[str]) -> tuple[np.ndarray, int, str]:
    """One checked row of fer2013.csv: (pixels uint8 [48, 48], emotion id, usage)."""
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
    return pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE), emotion, use


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
    digest = hashlib.sha1(f"{_CACHE_VERSION}|{key}".encode("utf-8", "surrogateescape")).hexdigest()[:20]
    path = cache_dir_for(data_dir) / f"pool-{digest}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return Pool(z["images"], z["labels"], z["usage"], str(z["source"]), str(z["layout"]), int(z["resized"]),
                            tuple(str(c) for c in z["classes"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            print(f"fernb: the cache {path} is damaged; rebuilding it from the data", file=sys.stderr)
    pool = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.savez(tmp, images=pool.images, labels=pool.labels, usage=pool.usage,
                                                source=pool.source, layout=pool.layout, resized=pool.resized,
                                                classes=np.array(pool.classes)))
    except (OSError, OutputError) as e:  # a cache we cannot write only costs speed
        print(f"fernb: could not write the cache {path} ({getattr(e, 'strerror', None) or e}); set FERNB_CACHE_DIR "
              "to a writable folder", file=sys.stderr)
    return pool
