"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "InputError", "IntegrityError", "SecureTrainError"]


class SecureTrainError(Exception):
    """Base class: bad user input (data, config, key) with a message meant for a person."""


class DataError(SecureTrainError, ValueError):
    """A data file is missing, malformed or inconsistent; the message names the file and line."""


class ConfigError(SecureTrainError, ValueError):
    """A setting is invalid or two settings disagree; the message names them."""


class InputError(SecureTrainError):
    """A file cannot be taken as input at all: missing, too large, not UTF-8, a YAML bomb, a line
    too long. Raised by :mod:`secure_train.core.safe_io`; the message names the file.

    Not a ``ValueError``, so that no ``except ValueError`` on the way (jsonargparse's included)
    turns it into something else.
    """


class IntegrityError(SecureTrainError):
    """A file is unsigned, tampered with, renamed, or signed by another key.

    The message names the file and what did not match; the CLI prints it as one line.
    ``path`` and ``reason`` carry the same facts for programs.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
