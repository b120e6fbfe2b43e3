"""Fetch FER-2013 in the public folder layout (the git repository the original notebook clones) and verify it."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

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
        git_clone(url, clone)
        verify(clone, expected)
        dest.mkdir(exist_ok=True)
        for split in ("train", "test"):
            if (clone / split).is_dir():
                shutil.move(str(clone / split), str(dest / split))
    return dest


def git_clone(url: str, dest: Path) -> None:
    """git clone --depth 1, with git's own progress shown as a bar; one line naming the URL when it fails."""
    proc = subprocess.Popen(["git", "clone", "--depth", "1", "--progress", url, str(dest)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    lines, buf = [], ""
    with tqdm(total=100, desc="downloading FER-2013", unit="%", leave=False) as bar:
        for chunk in iter(lambda: proc.stderr.read(256), ""):  # git redraws its progress with carriage returns
            *done, buf = re.split(r"[\r\n]", buf + chunk)
            for line in done:
                if m := re.match(r"(Receiving objects|Updating files):\s+(\d+)%", line):
                    bar.set_description(f"downloading FER-2013 ({m.group(1).split()[0].lower()})")
                    bar.update(int(m.group(2)) - bar.n)
                elif line.strip():
                    lines.append(line.strip())
    if proc.wait() != 0:
        last = (lines + [buf.strip()] if buf.strip() else lines or ["no output"])[-1]
        raise DataError(f"{url}: git clone failed ({last}); check the network or the URL")


def verify(root: str | Path, expected: dict[str, int] | None = EXPECTED) -> dict[str, int]:
    """Count images per split folder and compare with the expected counts; returns the counts."""
    files, _ = scan_folder(Path(root))
    counts = {"train": 0, "test": 0}
    for usage, *_ in files:
        counts["train" if usage == "Training" else "test"] += 1
    for split, want in (expected or {}).items():
        if counts[split] != want:
            raise DataError(f"{root}: {split}/ holds {counts[split]} images, expected {want}; "
                            "the download is incomplete: run it again")
    return counts
