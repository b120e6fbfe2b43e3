"""FER+ (Barsoum et al. 2016): FER-2013's faces re-labelled by 10 annotators each, in microsoft/FERPlus's
fer2013new.csv, which pairs with Kaggle's fer2013.csv row by row (its image names do not: most are wrong, 173 empty).

Two label modes, as the paper trains them:
- majority: each face takes the emotion more than half of its votes agree on; the rest, and faces whose majority is
  unknown or not-a-face (NF), are dropped;
- probability: each face keeps the distribution of its votes over the eight emotions as a soft target (its label,
  for accuracy, is the most voted one); faces whose most voted tag is unknown or NF, or whose emotions hold half
  the votes or fewer, are dropped.
In both, a single vote for an emotion is taken as an annotator's slip and removed first, as FERPlus's own code does.
Contempt is an eighth class, after FER-2013's seven.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

from fernb.errors import DataError, check_choice
from fernb.sources import CLASSES, SYNONYMS, USAGES, Pool
from fernb.sources import read_pool as read_faces

COLUMNS = ("Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
           "contempt", "unknown", "NF")
EMOTIONS = COLUMNS[2:10]  # the eight emotions, in the file's order; unknown and NF follow
FERPLUS_CLASSES = (*CLASSES, "contempt")  # FER-2013's seven by name, then the class of its own
MODES = ("majority", "probability")


def read_pool(source: str | os.PathLike, labels: str | os.PathLike, mode: str = "majority") -> Pool:
    """Kaggle's fer2013.csv (source) with FER+ labels from fer2013new.csv (labels), paired by row, in a label mode."""
    check_choice("label_mode", mode, MODES, error=DataError)
    if not str(source).lower().endswith(".csv"):
        raise DataError(f"--labels {labels}: FER+ labels pair with Kaggle's fer2013.csv row by row, not with "
                        f"{source}; pass --data fer2013.csv")
    faces = read_faces(source)
    votes, usage = read_votes(Path(labels).expanduser())
    check_aligned(faces, usage, source, labels)
    targets, keep = soft_labels(votes, mode)
    pool = Pool(faces.images[keep], targets[keep].argmax(1), faces.usage[keep], faces.source, "csv",
                classes=FERPLUS_CLASSES, soft=targets[keep] if mode == "probability" else None)
    check_every_class_trains(pool, labels, mode)
    print(f"fernb: FER+ labels ({mode}) from {labels}: {int(keep.sum()):,} of {len(keep):,} faces kept, "
          f"{int((~keep).sum()):,} dropped (no majority, unknown or not a face); 8 classes, contempt included",
          file=sys.stderr)
    return pool


def read_votes(path: Path) -> tuple[np.ndarray, list[str]]:
    """The votes [N, 10] (8 emotions, unknown, NF) and the Usage of every row of fer2013new.csv, checked."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; get fer2013new.csv from github.com/microsoft/FERPlus")
    votes, usage = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = tuple(h.strip() for h in next(reader, []))
            if header != COLUMNS:
                raise DataError(f"{path}: columns are {','.join(header) or '(none)'}; expected FER+'s fer2013new.csv "
                                f"({','.join(COLUMNS)})")
            for row_no, row in enumerate(reader, start=2):
                try:
                    counts = [int(v) for v in row[2:12]]
                except ValueError:
                    counts = []
                if len(row) != len(COLUMNS) or len(counts) != 10 or min(counts) < 0:
                    raise DataError(f"{path}:{row_no}: expected a Usage, an image name and 10 vote counts "
                                    "(whole numbers >= 0); fix the row or download the file again")
                votes.append(counts)
                usage.append(row[0].strip())
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; pass FER+'s fer2013new.csv") from None
    return np.array(votes, np.float64).reshape(-1, 10), usage


def check_aligned(faces: Pool, usage: list[str], source, labels) -> None:
    """Refuse a label file that does not pair with the faces row for row: another count, or another Usage."""
    if len(usage) != len(faces.labels):
        raise DataError(f"{labels}: {len(usage):,} rows, but {source} has {len(faces.labels):,}; FER+ pairs the two "
                        "files row by row, so both must be whole and unedited")
    theirs = [USAGES[u] for u in faces.usage]
    wrong = next((i for i, (a, b) in enumerate(zip(usage, theirs)) if a != b), None)
    if wrong is not None:
        raise DataError(f"{labels}:{wrong + 2}: Usage {usage[wrong]}, but row {wrong + 2} of {source} is {theirs[wrong]}"
                        "; the two files are not in the same order (or not FER+'s and Kaggle's own)")


def soft_labels(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per face, a distribution over FERPLUS_CLASSES and whether the face is kept, by the mode's rule."""
    votes = np.where(votes <= 1, 0, votes)  # a single vote: an annotator's slip (FERPlus's outlier removal)
    total, emotions = votes.sum(1), votes[:, :8]
    if mode == "majority":
        top = votes.argmax(1)
        keep = (votes.max(1) > total / 2) & (top < 8)  # more than half agree, on an emotion (not unknown or NF)
        dist = np.eye(8)[np.minimum(top, 7)]
    else:
        keep = (votes.argmax(1) < 8) & (emotions.sum(1) > total / 2)
        dist = emotions / np.maximum(emotions.sum(1, keepdims=True), 1)
    to_ours = [EMOTIONS.index(next(e for e in EMOTIONS if SYNONYMS.get(e, e) == c)) for c in FERPLUS_CLASSES]
    return dist[:, to_ours].astype(np.float32), keep & (total > 0)  # mapped by name, never by position


def check_every_class_trains(pool: Pool, labels, mode: str) -> None:
    """Refuse labels that leave a class without a training face: a model could never learn it."""
    train = pool.labels[pool.usage == USAGES.index("Training")]
    if len(train) == 0:
        return
    empty = [c for k, c in enumerate(pool.classes) if not (train == k).any()]
    if empty:
        raise DataError(f"{labels}: with {mode} labels, no Training face is {', '.join(empty)}; use the whole "
                        "fer2013new.csv, or the other label mode")
