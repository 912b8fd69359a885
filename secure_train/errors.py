"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "SecureTrainError"]


class SecureTrainError(Exception):
    """Base class: bad user input (data, config, key) with a message meant for a person."""


class DataError(SecureTrainError, ValueError):
    """A data file is missing, malformed or inconsistent; the message names the file and line."""


class ConfigError(SecureTrainError, ValueError):
    """A setting is invalid or two settings disagree; the message names them."""
