"""LightningCLI behind ``secure-train fit|validate|test|predict``.

Kept apart from :mod:`secure_train.cli` so that the other commands (``audit verify``,
``verify``, ``scan``, ...) start without importing Lightning and torch; ``secure_train.cli``
re-exports :class:`SecureTrainCLI` and :data:`TRAINER_DEFAULTS` lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

__all__ = ["TRAINER_DEFAULTS", "SecureTrainCLI"]

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
        """Parse, then pin ``--ckpt_path`` to a private verified snapshot when signing is configured.

        LightningCLI merges the checkpoint's hyper-parameters right after this
        (``_parse_ckpt_path``), before the Trainer's verifying ``CheckpointIO`` exists, and the
        Trainer reads the file again for the weights. Both now read one private copy whose
        bytes were verified (:func:`~secure_train.integrity.cli_support.snapshot_ckpt_path`),
        so a file swapped meanwhile is never used. ``config.yaml`` keeps the path as given
        (:meth:`after_instantiate_classes`); the audit log names both.
        """
        from secure_train.integrity.cli_support import snapshot_ckpt_path

        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            snapshot = snapshot_ckpt_path(self.config[subcommand].clone().as_dict())
            if snapshot is not None:
                self.ckpt_snapshot = snapshot  # lives (and keeps its folder) as long as this CLI
                self.config[subcommand]["ckpt_path"] = str(snapshot.path)

    def after_instantiate_classes(self) -> None:
        """Put ``--ckpt_path`` back as given in the config ``config.yaml`` saves; the Trainer keeps the snapshot."""
        super().after_instantiate_classes()
        snapshot = getattr(self, "ckpt_snapshot", None)
        if snapshot is not None and self.subcommand:
            self.config[self.subcommand]["ckpt_path"] = str(snapshot.source)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        from secure_train.callbacks.audit_trail import AuditTrail

        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(cb, AuditTrail) for cb in trainer.callbacks):  # type: ignore[attr-defined]
            config = self.config.get(str(self.subcommand)) if self.subcommand else self.config
            as_dict = config.clone().as_dict() if config is not None else None
            trainer.callbacks.append(AuditTrail(config=as_dict))  # type: ignore[attr-defined]
        return trainer
