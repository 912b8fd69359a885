"""The callback that owns a run's audit log and records the run's own events.

Every run gets its own folder for its audit log (and, under the ``secure-train`` CLI, its
``config.yaml``), whatever the logger: :func:`run_log_dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from typing_extensions import override

from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import ConfigError

__all__ = ["AuditTrail", "run_log_dir"]

RUN_FILES = ("audit.jsonl", "config.yaml")
"""Files that belong to one run; a folder already holding one is not reused."""

_RUN_DIRS: weakref.WeakKeyDictionary[pl.Trainer, Path] = weakref.WeakKeyDictionary()


def _new_run_id() -> str:
    return f"run-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def run_log_dir(trainer: pl.Trainer) -> Path:
    """This run's own folder, for its audit log and config; the same for every call on ``trainer``.

    - A versioned logger (``CSVLogger``, ``TensorBoardLogger``): its ``log_dir``
      (``<save_dir>/<name>/version_<n>``), as Lightning uses it.
    - Any other logger (``WandbLogger``, ``MLFlowLogger``, ...) writes to a shared ``save_dir``;
      the run gets ``<save_dir>/<name>/<version>``, the folder whose ``checkpoints/`` Lightning's
      ``ModelCheckpoint`` already uses for that run.
    - No logger: ``<default_root_dir>/run-<UTC time>-<random>`` (an :class:`AuditTrail` without a
      ``path`` also puts ``ModelCheckpoint``'s files there when no ``dirpath`` was given, if it
      runs first: the CLI puts it first).

    A folder that already holds a run's ``audit.jsonl`` or ``config.yaml`` (a fixed logger
    version, a logger whose version is not unique) is not reused: the run gets a fresh
    ``run-<UTC time>-<random>`` folder inside it. Global rank zero decides; the choice is
    broadcast, so call this from a hook every rank runs.

    Example:
        >>> import tempfile, lightning.pytorch as pl
        >>> root = tempfile.mkdtemp()
        >>> a, b = (run_log_dir(pl.Trainer(default_root_dir=root, logger=False)) for _ in range(2))
        >>> a != b and a.parent == b.parent
        True
    """
    cached = _RUN_DIRS.get(trainer)
    if cached is not None:
        return cached
    base = trainer.log_dir or trainer.default_root_dir  # broadcast by Lightning
    logger = trainer.loggers[0] if trainer.loggers else None
    chosen: str | None = None
    if trainer.is_global_zero:
        if logger is None:
            path = Path(base) / _new_run_id()
        elif isinstance(logger, (CSVLogger, TensorBoardLogger)):
            path = Path(base)
        else:
            version = logger.version
            if version is None or version == "":
                path = Path(base) / _new_run_id()
            else:
                version = version if isinstance(version, str) else f"version_{version}"
                path = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version
        if any((path / name).exists() for name in RUN_FILES):
            path = path / _new_run_id()
        chosen = str(path)
    chosen = trainer.strategy.broadcast(chosen)
    assert chosen is not None
    _RUN_DIRS[trainer] = Path(chosen)
    return _RUN_DIRS[trainer]


class AuditTrail(Callback):
    """Open ``<run dir>/audit.jsonl`` for the run and record ``run.start`` / ``run.end``.

    Other callbacks find the log through :func:`secure_train.core.audit_log.get_audit_log`. The
    ``secure-train`` CLI adds this callback to every run (and saves the run's ``config.yaml``
    in the same folder); add it yourself in Python when you want a fixed path or the config
    hash recorded.

    Args:
        path: where to write; default ``<run_log_dir(trainer)>/audit.jsonl``: one log per run,
            whatever the logger (see :func:`run_log_dir`).
        config: the run's configuration; its SHA-256 goes into ``run.start``.

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[AuditTrail()], logger=False)
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, config: dict[str, Any] | None = None) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"{type(self).__name__}: path must be a file path or None, got {path!r}")
        if config is not None and not isinstance(config, dict):
            raise ConfigError(f"{type(self).__name__}: config must be a mapping or None, got {type(config).__name__}")
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
            path = self.path or run_log_dir(trainer) / "audit.jsonl"
            self.audit_log = AuditLog(path, enabled=trainer.is_global_zero)
        return self.audit_log

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        log = self.open_audit_log(trainer)
        if self.path is None and not trainer.loggers:
            # No logger: Lightning would put every run's checkpoints in one <default_root_dir>/checkpoints,
            # the next run overwriting last.ckpt. Keep them with this run's log, as loggers do.
            for cb in trainer.checkpoint_callbacks:
                if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                    cb.dirpath = os.path.realpath(log.path.parent / "checkpoints")
        log.record(
            "run.start",
            source="AuditTrail",
            stage=stage,
            model=type(pl_module).__name__,
            world_size=trainer.world_size,
            config_sha256=self.config_hash,
            run_dir=str(log.path.parent),
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
