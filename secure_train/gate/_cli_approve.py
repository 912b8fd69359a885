"""Entry of `secure-train approve` (registered in :data:`secure_train.cli.COMMANDS`)."""

from secure_train.commands.gate import approve_main as main

__all__ = ["main"]
