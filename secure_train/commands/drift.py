"""Entry of `secure-train drift` (registered in :data:`secure_train.cli.COMMANDS`)."""

from secure_train.commands.gate import drift_main as main

__all__ = ["main"]
