"""Fetch FER-2013 in the public folder layout (the git repository the original notebook clones) and verify it."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from fernb.sources import scan_folder
from fernb.errors import DataError
from fernb.files import check_output

REPO_URL = "https://github.com/kemalkilicaslan/Facial_Expression_Recognition"
EXPECTED = {"train": 28709, "test": 7178}


def download(dest: str | Path, url: str = REPO_URL, expected: dict[str, int] | None = EXPECTED) -> Path:
    """Clone the dataset repository into DEST/{train,test} and check its image counts; returns DEST.

    The clone goes to a temporary folder beside DEST and moves into place only when its counts check out,
    so a failed download leaves nothing behind and never touches what DEST already held.
    """
    dest = check_output(dest, folder=True)
    if (dest / "train").exists() or (dest / "test").exists():
        raise DataError(f"{dest}: already holds train/ or test/; use it as it is (fernb info --data {dest}) "
                        "or pick another DEST")
    if shutil.which("git") is None:
        raise DataError("git is not installed; install git, or download the folder layout by hand into DEST")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fernb-download-", dir=dest.parent) as tmp:
        clone = Path(tmp) / "repo"
        run = subprocess.run(["git", "clone", "--depth", "1", "--quiet", url, str(clone)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"{url}: git clone failed ({last}); check the network or the URL")
        verify(clone, expected)
        dest.mkdir(exist_ok=True)
        for split in ("train", "test"):
            if (clone / split).is_dir():
                shutil.move(str(clone / split), str(dest / split))
    return dest


def verify(root: str | Path, expected: dict[str, int] | None = EXPECTED) -> dict[str, int]:
    """Count images per split folder and compare with the expected counts; returns the counts."""
    files = scan_folder(Path(root))
    counts = {"train": 0, "test": 0}
    for usage, *_ in files:
        counts["train" if usage == "Training" else "test"] += 1
    for split, want in (expected or {}).items():
        if counts[split] != want:
            raise DataError(f"{root}: {split}/ holds {counts[split]} images, expected {want}; "
                            "the download is incomplete: run it again")
    return counts
