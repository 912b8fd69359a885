"""Entry of `secure-train diff-train` (registered in :data:`secure_train.cli.COMMANDS`)."""

from secure_train.commands.gate import diff_train_main as main

__all__ = ["main"]
