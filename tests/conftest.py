"""Shared fixtures: tiny FER-style folders drawn from synthetic faces, and the real FER-2013 when present."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fernb.sources import CLASSES, CSV_CLASSES, IMAGE_SIZE, USAGES, Pool
from fernb.synthetic import synthetic_faces

REAL_DATA = Path(os.environ.get("FERNB_DATA", Path(__file__).resolve().parents[2] / "shared" / "fer2013")).resolve()


def write_folder(root: Path, per_class: int = 4, splits=("train", "test"), seed: int = 0,
                 test_names=("PublicTest", "PrivateTest")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write synthetic faces as PNGs in the public layout; returns the (images, labels) written per split."""
    written = {}
    for s, split in enumerate(splits):
        images, labels = synthetic_faces({c: per_class for c in CLASSES}, seed + s, IMAGE_SIZE)
        for i, (img, lab) in enumerate(zip(images, labels)):
            prefix = "Training" if split == "train" else test_names[i % len(test_names)]
            folder = root / split / CLASSES[lab]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{prefix}_{i:05d}.png")
        written[split] = (images, labels)
    return written


def git_repo_of_faces(repo: Path, per_class: int, extra: dict[str, str] | None = None) -> Path:
    """A local git repository laid out like the dataset repository `fernb download` clones (never the network),
    with extra files {name: text} beside train/ and test/."""
    import subprocess
    write_folder(repo, per_class=per_class)
    for name, text in (extra or {}).items():
        (repo / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "faces"], check=True)
    return repo


def write_csv(pool: Pool, path: Path) -> None:
    """Write a pool as Kaggle's fer2013.csv, in Kaggle's label order."""
    to_kaggle = {CLASSES.index(c): i for i, c in enumerate(CSV_CLASSES)}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, lab, use in zip(pool.images, pool.labels, pool.usage):
            w.writerow([to_kaggle[int(lab)], " ".join(map(str, img.ravel().tolist())), USAGES[min(use, 2)]])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's user cache in a temp dir, so tests never share or leave state."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))  # where notebooks download to
    monkeypatch.delenv("FERNB_CACHE_DIR", raising=False)


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    """A small folder layout with train/ and test/ (both test halves)."""
    write_folder(tmp_path / "fer", per_class=4)
    return tmp_path / "fer"


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real FER-2013 folder; tests using it skip when it is absent."""
    if not (REAL_DATA / "train").is_dir() and not (REAL_DATA / "test").is_dir():
        pytest.skip(f"real FER-2013 not found at {REAL_DATA} (set FERNB_DATA to run these tests)")
    return REAL_DATA

