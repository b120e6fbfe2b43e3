"""Checkpoints that join one ensemble, and the splits they were carved with: what ensemble.py, distill.py and soup.py
start from; a checkpoint or data they cannot use is one line on stderr and exit code 2, as in fernb's own commands."""
from __future__ import annotations

import sys

from fernb.checkpoint import load_members
from fernb.data import FERData
from fernb.errors import FernbError
from fernb.evaluate import load_split


def members_and_splits(paths: list[str], data: str | None, splits: tuple[str, ...]) -> tuple[list, list[FERData]]:
    """(model, meta) of each checkpoint, and each split of data as their training run carved it."""
    try:
        loaded = load_members(paths)
        return loaded, [load_split(loaded[0][1], data, split) for split in splits]  # refuses other data
    except FernbError as e:
        print(e, file=sys.stderr)
        raise SystemExit(2) from None
