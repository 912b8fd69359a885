"""``secure-train scan PATH``: content scanners over a data file (see :mod:`secure_train.commands.data`)."""

from __future__ import annotations

from secure_train.commands.data import main_scan as main

__all__ = ["main"]
