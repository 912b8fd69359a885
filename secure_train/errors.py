"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "InputError", "SecureTrainError"]


class SecureTrainError(Exception):
    """Base class: bad user input (data, config, key) with a message meant for a person."""


class DataError(SecureTrainError, ValueError):
    """A data file is missing, malformed or inconsistent; the message names the file and line."""


class ConfigError(SecureTrainError, ValueError):
    """A setting is invalid or two settings disagree; the message names them."""


class InputError(SecureTrainError):
    """A file cannot be taken as input at all: missing, too large, not UTF-8, a YAML bomb, a line
    too long. Raised by :mod:`secure_train.safe_io`; the message names the file.

    Not a ``ValueError``, so that no ``except ValueError`` on the way (jsonargparse's included)
    turns it into something else.
    """
