"""Every error a user can cause: each is a FernbError whose message is one line naming the culprit and what to do.

The CLI prints such an error without a traceback and exits with status 2; anything else is a bug in fernb.
"""
from __future__ import annotations

import math


class FernbError(Exception):
    """A user-facing error: the message names the culprit and what to do."""


class DataError(FernbError, ValueError):
    """Bad input data: a missing path, a wrong layout, a corrupt image or a malformed CSV row."""


class ModelError(FernbError, ValueError):
    """An unknown model name, a model that cannot take 48x48 input, or pretrained weights that cannot be had."""


class ConfigError(FernbError, ValueError):
    """A training option out of range, of the wrong type, or that cannot work with another."""


class BudgetError(ConfigError):
    """A time budget too short to train even one step."""


class CheckpointError(FernbError, ValueError):
    """A checkpoint that is missing, truncated, unsafe (a pickle) or does not fit its model."""


class PhotoError(FernbError, ValueError):
    """A photo that cannot be read."""


class OutputError(FernbError, ValueError):
    """An output path that cannot be written, or that holds something a run must not overwrite."""


def check_number(name: str, value, lo: float, hi: float | None = None, *, whole: bool = False, lo_open: bool = False,
                 hi_open: bool = True, optional: bool = False, error: type[FernbError] = ConfigError) -> None:
    """Refuse, in one line naming the option, a value that is not a number (bools are not) within [lo, hi)."""
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(value, int) or not whole)
    if not (ok and math.isfinite(value) and (value > lo if lo_open else value >= lo)
            and (hi is None or (value < hi if hi_open else value <= hi))):
        bound = f"{'>' if lo_open else '>='} {lo}" + (f" and {'<' if hi_open else '<='} {hi}" if hi is not None else "")
        raise error(f"{name}={value!r}: must be {'a whole number' if whole else 'a number'} {bound}")


def check_type(name: str, value, kind: type | tuple[type, ...], error: type[FernbError] = ConfigError) -> None:
    """Refuse, in one line naming the option, a value of the wrong type (a bool is not a number, nor a number a bool)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        wanted = " or ".join("True or False" if k is bool else k.__name__ for k in kinds)
        raise error(f"{name}={value!r}: must be {wanted}, not {type(value).__name__}")


def check_choice(name: str, value, choices, error: type[FernbError] = ConfigError) -> None:
    """Refuse, in one line naming the option, a value that is not one of choices."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name}={value!r}: must be one of {', '.join(choices)}")
