"""Writing files safely: through a temp file and a rename, so a killed run never leaves half a file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from fernb.errors import OutputError


def check_output(path: str | Path, folder: bool) -> Path:
    """Refuse, before any work starts, an output that cannot be written: a file where a folder goes or the reverse,
    a path under a file, or a folder without write permission."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, but a folder is needed here; pick another path")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder, but a file is needed here; give a file name inside it")
    existing = next(p for p in (path, *path.parents) if p.exists())  # the deepest part of the path that exists
    if existing != path and not existing.is_dir():
        raise OutputError(f"{path}: {existing} is a file, so nothing can be written under it; pick another path")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise OutputError(f"{path}: {existing} is not writable for you; pick another path")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) on a temp file beside path, then rename it onto path (atomic on one file system)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")  # same suffix: numpy and PIL pick formats by it
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
