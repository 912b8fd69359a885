"""LightningCLI behind ``secure-train fit|validate|test|predict``.

Kept apart from :mod:`secure_train.cli` so that the other commands (``audit verify``,
``verify``, ``scan``, ...) start without importing Lightning and torch; ``secure_train.cli``
re-exports :class:`SecureTrainCLI` and :data:`TRAINER_DEFAULTS` lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from secure_train.commands import usage_error
from secure_train.core.errors import SecureTrainError
from secure_train.core.safe_io import install_jsonargparse_limits

__all__ = ["TRAINER_DEFAULTS", "OneLineErrorParser", "RunConfigCallback", "SecureTrainCLI", "secure_train_cause"]

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
}


def secure_train_cause(err: BaseException) -> SecureTrainError | None:
    """The :class:`~secure_train.core.errors.SecureTrainError` behind ``err``: ``err`` itself or one
    in its ``raise ... from`` chain (jsonargparse wraps what a constructor raises into its own
    ``ValueError``, the original as ``__cause__``); ``None`` if there is none.

    Example:
        >>> from secure_train.core.errors import ConfigError
        >>> try:
        ...     try:
        ...         raise ConfigError("LossSpikeMonitor: window must be an integer >= 1, got -1")
        ...     except ConfigError as inner:
        ...         raise ValueError("Does not validate against any of the Union subtypes") from inner
        ... except ValueError as outer:
        ...     print(secure_train_cause(outer))
        LossSpikeMonitor: window must be an integer >= 1, got -1
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, SecureTrainError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


class OneLineErrorParser(LightningArgumentParser):
    """LightningCLI's parser with the other commands' usage errors: one ``secure-train: error:``
    line (:func:`~secure_train.commands.usage_error`) instead of the full usage, exit 2.

    Errors jsonargparse handles itself (``exit_on_error=False``, its debug mode) are raised as before.
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active  # jsonargparse's own test, as in its error()

        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        usage_error(parser.prog.replace(" [options]", ""), message)


class RunConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` in the run's own folder, next to its audit log, whatever the logger
    (:func:`~secure_train.monitors.audit_trail.run_log_dir`), never over another run's."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from secure_train.monitors.audit_trail import run_log_dir

        if self.already_saved:
            return
        if self.save_to_log_dir:
            log_dir = run_log_dir(trainer)  # every rank: the choice is broadcast
            if trainer.is_global_zero:
                log_dir.mkdir(parents=True, exist_ok=True)
                self.parser.save(self.config, str(log_dir / self.config_filename), skip_none=False,
                                 overwrite=self.overwrite, multifile=self.multifile)  # fmt: skip
        if trainer.is_global_zero:
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


class SecureTrainCLI(LightningCLI):
    """LightningCLI for any LightningModule / LightningDataModule, with the audit trail attached.

    Example (Python)::

        SecureTrainCLI(args=["fit", "--config", "recipes/quickstart.yaml"])
    """

    def __init__(self, args: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_callback", RunConfigCallback)
        kwargs.setdefault("save_config_kwargs", {"overwrite": False})  # each run has its own folder
        # --trainer.max_epoch is not max_epochs; a usage error is one line
        kwargs["parser_kwargs"] = {"allow_abbrev": False, "prog": "secure-train", **kwargs.get("parser_kwargs", {})}
        install_jsonargparse_limits()  # YAML bombs in --config / values: one error line, bounded memory
        super().__init__(pl.LightningModule, pl.LightningDataModule, args=args, **kwargs)  # type: ignore[arg-type]

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """The main and every subcommand parser as :class:`OneLineErrorParser` (Lightning's
        ``parser_class`` argument does not exist before lightning 2.5; this works with both)."""
        from jsonargparse import ActionConfigFile

        kwargs.setdefault("dump_header", [f"lightning.pytorch=={pl.__version__}"])
        parser = OneLineErrorParser(**kwargs)
        parser.add_argument(
            "-c", "--config", action=ActionConfigFile, help="Path to a configuration file in json or yaml format."
        )
        return parser

    def instantiate_classes(self) -> None:
        """Build the classes; a ``SecureTrainError`` a constructor raised (a bad setting in the
        recipe) is raised as itself, not as jsonargparse's multi-line ``ValueError`` around it,
        so the CLI prints its one line."""
        try:
            super().instantiate_classes()
        except Exception as err:
            cause = secure_train_cause(err)
            if cause is None:
                raise
            raise cause from None

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
                # encrypted at rest: the merge reads the verified hyper-parameters in plaintext
                self.config[subcommand]["ckpt_path"] = str(snapshot.hparams_path or snapshot.path)

    def before_instantiate_classes(self) -> None:
        """After the hyper-parameter merge: the Trainer loads the verified snapshot (encrypted or not)."""
        super().before_instantiate_classes()
        snapshot = getattr(self, "ckpt_snapshot", None)
        if snapshot is not None and self.subcommand:
            self.config[self.subcommand]["ckpt_path"] = str(snapshot.path)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's merge of the ``--ckpt_path`` hyper-parameters, with the values checked first.

        The file is read once (weights-only); its hyper-parameters are data
        (:meth:`~secure_train.gate.instantiate.ClassAllowList.check_hyper_parameters`): a
        ``_class_path`` outside :mod:`secure_train.models` and the classes the config names, or
        a nested ``class_path``, is refused in one line before jsonargparse imports anything.
        """
        from argparse import ArgumentError
        from pathlib import Path

        import torch

        from secure_train.core.errors import ConfigError
        from secure_train.gate.instantiate import ClassAllowList

        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        try:
            state = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        except Exception as err:  # UnpicklingError, EOFError, ...: not a weights-only checkpoint
            raise ConfigError(f"{ckpt_path}: not a weights-only checkpoint ({type(err).__name__})") from None
        hparams = state.get("hyper_parameters") or {} if isinstance(state, dict) else {}
        model = self.config[subcommand].get("model")
        allow = ClassAllowList(config=model.as_dict() if hasattr(model, "as_dict") else model)
        class_path, values = allow.check_hyper_parameters(hparams, source=str(ckpt_path))
        if not values and class_path is None:
            return
        merged = {"class_path": class_path, "dict_kwargs": values} if class_path is not None else values
        exit_on_error, self.parser.exit_on_error = self.parser.exit_on_error, False
        try:
            self.config = self.parser.parse_object({subcommand: {"model": merged}}, self.config)
        except ArgumentError as err:
            message = " ".join(str(err).split())
            raise ConfigError(f"{ckpt_path}: its hyper-parameters do not fit the model: {message}") from None
        finally:
            self.parser.exit_on_error = exit_on_error

    def after_instantiate_classes(self) -> None:
        """Put ``--ckpt_path`` back as given in the config ``config.yaml`` saves; the Trainer keeps the snapshot."""
        super().after_instantiate_classes()
        snapshot = getattr(self, "ckpt_snapshot", None)
        if snapshot is not None and self.subcommand:
            self.config[self.subcommand]["ckpt_path"] = str(snapshot.source)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        from secure_train.monitors.audit_trail import AuditTrail

        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(cb, AuditTrail) for cb in trainer.callbacks):  # type: ignore[attr-defined]
            config = self.config.get(str(self.subcommand)) if self.subcommand else self.config
            as_dict = config.clone().as_dict() if config is not None else None
            # first, so that its run.start opens the log and its setup runs before ModelCheckpoint's
            trainer.callbacks.insert(0, AuditTrail(config=as_dict))  # type: ignore[attr-defined]
        return trainer
