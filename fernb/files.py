"""Writing files safely: one place decides whether an output may be written, and every write goes through a temp
file and a rename, so a killed run never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fernb.errors import OutputError

LOCK = ".fernb-run.lock"  # in a run folder while a run writes it: {"pid": ...}
RUN_FILES = ("weights.safetensors", "config.json", "resume.pt")  # what a run writes into its folder
NAME_MAX = 255  # bytes in one file name, on Linux, macOS and Windows file systems alike


def check_output(path: str | Path, folder: bool, inputs: Iterable[str | Path] = (), force: bool = False) -> Path:
    """Refuse, before any work starts, an output that must not or cannot be written: an input, or a path inside an
    input folder; an existing file (unless force); a file where a folder goes or the reverse; a path under a
    file; a folder without write permission."""
    path = Path(path).expanduser()
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise OutputError(f"{path.name[:40]}...: a name of {len(os.fsencode(path.name))} bytes, longer than the "
                          f"{NAME_MAX} a file system allows; pick a shorter name")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, but a folder is needed here; pick another path")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder, but a file is needed here; give a file name inside it")
    for given in inputs:
        check_not_input(path, Path(given).expanduser())
    if not folder and path.exists() and not force:
        raise OutputError(f"{path}: exists already; pass --force to overwrite it, or pick another name")
    existing = next(p for p in (path, *path.parents) if p.exists())  # the deepest part of the path that exists
    if existing != path and not existing.is_dir():
        raise OutputError(f"{path}: {existing} is a file, so nothing can be written under it; pick another path")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise OutputError(f"{path}: {existing} is not writable for you; pick another path")
    return path


def check_not_input(path: Path, given: Path) -> None:
    """Refuse an output that is the input given, or lies inside it when it is a folder (the data, a checkpoint)."""
    out, source = path.resolve(), given.resolve()
    if out == source or (source.is_dir() and out.is_relative_to(source)):
        what = "is" if out == source else f"lies inside {given}, which is"
        raise OutputError(f"{path}: {what} an input of this command, and writing there would destroy it; "
                          "pick another path")


def check_run_folder(out: Path, resume: bool = False, force: bool = False) -> None:
    """Refuse a run folder that holds what a new run must not overwrite: another run's checkpoint (unless resume
    or force), files that no fernb run wrote (unless force), or a run that is writing it now."""
    if not out.is_dir():
        return
    holder = lock_holder(out)
    if holder is not None:
        raise OutputError(f"{out}: another run (process {holder}) is writing it now; wait for it, or pick another "
                          "--out")
    names = {p.name for p in out.iterdir() if not p.name.startswith(".fernb-")}  # our lock and temp files aside
    checkpoint = set(RUN_FILES[:2])  # weights.safetensors and config.json: both, or neither, of a fernb run
    ours = checkpoint <= names or not names & checkpoint
    if not ours and not force:
        raise OutputError(f"{out}: holds {', '.join(sorted(names & set(RUN_FILES)))} but no complete fernb checkpoint"
                          "; pick another --out (or pass --force to overwrite it)")
    if "config.json" in names and not (resume or force):
        raise OutputError(f"{out}: holds the checkpoint of another run; pass --resume to continue it, --force to "
                          "overwrite it, or another --out")
    if resume and not force and "config.json" in names and "resume.pt" not in names:
        raise OutputError(f"{out}: holds a checkpoint but no resume state (resume.pt), so there is no run to "
                          "continue; pick another --out, or pass --force to overwrite it")
    if names - set(RUN_FILES) - {".ipynb_checkpoints"} and not (resume or force):
        raise OutputError(f"{out}: holds files no fernb run wrote ({', '.join(sorted(names - set(RUN_FILES))[:3])}); "
                          "pick an empty or new --out (or pass --force to write beside them)")


def lock_holder(out: Path) -> int | None:
    """The process that holds out's run lock, if it is alive; a lock left by a killed run counts as free."""
    try:
        pid = int(json.loads((out / LOCK).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid if pid != os.getpid() else None


@contextlib.contextmanager
def claim_run_folder(out: Path | None, resume: bool = False, force: bool = False,
                     inputs: Iterable[str | Path] = ()) -> Iterator[None]:
    """Check out as a run folder (not inside an input, such as the training data), then hold its lock while the
    run writes it (nothing to do for out=None)."""
    if out is None:
        yield
        return
    check_output(out, folder=True, inputs=inputs)
    check_run_folder(out, resume, force)
    out.mkdir(parents=True, exist_ok=True)
    take_lock(out)
    try:
        yield
    finally:
        (out / LOCK).unlink(missing_ok=True)


def take_lock(out: Path) -> None:
    """Create out's lock with this process's id in one step (a link of a finished file: never seen half-written);
    a lock whose process is gone is taken over, a live one is refused."""
    tmp = out / f".fernb-lock-{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid()}))
    try:
        for _ in range(2):
            try:
                os.link(tmp, out / LOCK)
                return
            except FileExistsError:
                holder = lock_holder(out)
                if holder is not None:
                    raise OutputError(f"{out}: another run (process {holder}) is writing it now; wait for it, or "
                                      "pick another --out") from None
                (out / LOCK).unlink(missing_ok=True)  # stale: its process is gone
        raise OutputError(f"{out}: another run took its lock just now; pick another --out")
    finally:
        tmp.unlink(missing_ok=True)


def unique_names(paths: Iterable[str | Path], suffix: str) -> list[str]:
    """One output name per input, `<stem><suffix>`, made unique when inputs from two folders share a stem."""
    names: list[str] = []
    for p in paths:
        stem, n = Path(p).stem, 1
        while (name := f"{stem}{suffix}" if n == 1 else f"{stem}_{n}{suffix}") in names:
            n += 1
        names.append(name)
    return names


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) on a temp file beside path, then rename it onto path (atomic on one file system)."""
    return atomic_writes({Path(path): write})[0]


def atomic_writes(writes: dict[Path, Callable[[Path], object]]) -> list[Path]:
    """Write every file to a temp file first, then rename them all into place, in order: files that belong
    together (weights and their config) are never left half old, half new by an error or a kill while writing."""
    # same suffix: numpy and PIL pick formats by it; a short name: a long one would not fit the file system's limit
    tmps = {path: path.with_name(f".fernb-{os.getpid()}-{abs(hash(path.name)) % 10**8}.tmp{path.suffix[:16]}")
            for path in writes}
    try:
        for path, write in writes.items():
            write(tmps[path])
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    except OSError as e:
        if e.errno is None:  # not the file system's: the writer's own error, raised as it is
            raise
        raise OutputError(f"{path}: cannot be written ({e.strerror}); pick another path, or free some space") from None
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return list(writes)
