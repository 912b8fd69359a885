"""The callback that owns a run's audit log and records the run's own events."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from secure_train.audit import AuditLog

__all__ = ["AuditTrail"]


class AuditTrail(Callback):
    """Open ``<log_dir>/audit.jsonl`` for the run and record ``run.start`` / ``run.end``.

    Other callbacks find the log through :func:`secure_train.audit.get_audit_log`. The
    ``secure-train`` CLI adds this callback to every run; add it yourself in Python when
    you want a fixed path or the config hash recorded.

    Args:
        path: where to write; default ``<trainer.log_dir>/audit.jsonl``.
        config: the run's configuration; its SHA-256 goes into ``run.start``.

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[AuditTrail()], logger=False)
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, config: dict[str, Any] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.config_hash = (
            hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
            if config is not None
            else None
        )
        self.audit_log: AuditLog | None = None

    def open_audit_log(self, trainer: pl.Trainer) -> AuditLog:
        """Open (once) and return this run's log; only global rank zero writes."""
        if self.audit_log is None:
            path = self.path or Path(trainer.log_dir or trainer.default_root_dir) / "audit.jsonl"
            self.audit_log = AuditLog(path, enabled=trainer.is_global_zero)
        return self.audit_log

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        log = self.open_audit_log(trainer)
        log.record(
            "run.start",
            source="AuditTrail",
            stage=stage,
            model=type(pl_module).__name__,
            world_size=trainer.world_size,
            config_sha256=self.config_hash,
        )

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.audit_log is not None:
            self.audit_log.record(
                "run.end",
                source="AuditTrail",
                stage=stage,
                global_step=trainer.global_step,
                interrupted=trainer.interrupted,
            )
