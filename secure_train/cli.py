"""The ``secure-train`` command line.

``fit`` / ``validate`` / ``test`` / ``predict`` run LightningCLI with YAML recipes
(``class_path`` / ``init_args``); every run gets an :class:`~secure_train.callbacks.AuditTrail`
writing ``<log_dir>/audit.jsonl``. The other commands (``audit verify``, ...) are small
programs registered in :data:`COMMANDS`.

Bad user input (a data file, a config value, a key) ends with one ``secure-train: error:``
line and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from secure_train.errors import SecureTrainError

__all__ = ["COMMANDS", "SecureTrainCLI", "main"]

COMMANDS: dict[str, str] = {
    "audit": "secure_train.commands.audit",
    "data": "secure_train.commands.data",
    "scan": "secure_train.commands.scan",
    "keygen": "secure_train.commands.keygen",
    "verify": "secure_train.commands.verify",
    "export": "secure_train.commands.export",
    "gate": "secure_train.commands.gate",
    "approve": "secure_train.gate._cli_approve",
    "drift": "secure_train.gate._cli_drift",
    "diff-train": "secure_train.gate._cli_diff_train",
}
"""Command name -> module with ``main(argv: list[str]) -> int``."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
}


class SecureTrainCLI(LightningCLI):
    """LightningCLI for any LightningModule / LightningDataModule, with the audit trail attached.

    Example (Python)::

        SecureTrainCLI(args=["fit", "--config", "recipes/quickstart.yaml"])
    """

    def __init__(self, args: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(pl.LightningModule, pl.LightningDataModule, args=args, **kwargs)  # type: ignore[arg-type]

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then verify ``--ckpt_path`` when signing is configured: LightningCLI loads the
        checkpoint's hyperparameters next, before the Trainer's verified ``CheckpointIO`` exists."""
        from secure_train.integrity.cli_support import verify_ckpt_path

        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            verify_ckpt_path(self.config[subcommand].clone().as_dict())

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        from secure_train.callbacks.audit_trail import AuditTrail

        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(cb, AuditTrail) for cb in trainer.callbacks):  # type: ignore[attr-defined]
            config = self.config.get(str(self.subcommand)) if self.subcommand else self.config
            as_dict = config.clone().as_dict() if config is not None else None
            trainer.callbacks.append(AuditTrail(config=as_dict))  # type: ignore[attr-defined]
        return trainer


def _error(message: str) -> int:
    print(f"secure-train: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secure-train`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    cli_args = None if argv is None else args
    if "WANDB_API_KEY" not in os.environ:
        os.environ.setdefault("WANDB_MODE", "offline")
    try:
        if args and args[0] in COMMANDS:
            module = importlib.import_module(COMMANDS[args[0]])
            return int(module.main(args[1:]))
        if not args or args[0] in ("-h", "--help"):
            print(
                "secure-train commands: fit, validate, test, predict (LightningCLI, below); "
                f"{', '.join(COMMANDS)} (`secure-train COMMAND --help`)\n"
            )
        SecureTrainCLI(args=cli_args)
        return 0
    except SecureTrainError as err:
        return _error(str(err))
    except KeyboardInterrupt:
        return _error("interrupted")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
