"""The error raised when a signed artifact fails verification."""

from __future__ import annotations

from secure_train.errors import SecureTrainError

__all__ = ["IntegrityError"]


class IntegrityError(SecureTrainError):
    """A file is unsigned, tampered with, renamed, or signed by another key.

    The message names the file and what did not match; the CLI prints it as one line.
    ``path`` and ``reason`` carry the same facts for programs.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
