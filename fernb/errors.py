"""Every error a user can cause: each is a FernbError whose message is one line naming the culprit and what to do.

The CLI prints such an error without a traceback and exits with status 2; anything else is a bug in fernb.
"""
from __future__ import annotations


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
