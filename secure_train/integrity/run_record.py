"""The provenance record a checkpoint signature covers.

:func:`collect_provenance` gathers, from a running :class:`~lightning.pytorch.Trainer`:

- ``run_id``: ``$SECURE_TRAIN_RUN_ID`` if set, else ``<logger name>/<logger version>``, else
  a random id fixed for the life of the Trainer object;
- ``global_step`` and ``epoch``;
- ``code_version``: the git commit of the working directory (``+dirty`` when it has
  uncommitted changes), or ``None`` outside a git checkout; ``secure_train_version``;
- ``config_sha256``: from an :class:`~secure_train.monitors.AuditTrail` callback, when
  it was given the run's config (the CLI always does);
- the merged dicts returned by a ``provenance()`` method of any trainer callback and of
  ``trainer.datamodule`` (the data manifest digest, the DP-SGD epsilon, ...). A method
  that returns something other than a dict, or raises, is an error: the record must not
  silently lose a field a defense meant to sign.

Example:
    >>> import lightning.pytorch as pl
    >>> from lightning.pytorch.callbacks import Callback
    >>> class Eps(Callback):
    ...     def provenance(self):
    ...         return {"dp_epsilon": 3.0}
    >>> trainer = pl.Trainer(callbacks=[Eps()], logger=False)
    >>> record = collect_provenance(trainer)
    >>> record["dp_epsilon"], record["global_step"]
    (3.0, 0)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess  # noqa: S404 - fixed argv, no shell
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from secure_train.core.errors import ConfigError

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = ["RUN_ID_ENV", "code_version", "collect_provenance", "run_id"]

RUN_ID_ENV = "SECURE_TRAIN_RUN_ID"
_RUN_IDS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=8)
def code_version(cwd: str | None = None) -> str | None:
    """Git commit of ``cwd`` (default: the current directory), ``+dirty`` if modified; None without git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run(  # noqa: S603 - fixed argv
            [git, "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(  # noqa: S603 - fixed argv
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if status.returncode == 0 and status.stdout.strip() else "")


def run_id(trainer: pl.Trainer) -> str:
    """The run's id: ``$SECURE_TRAIN_RUN_ID``, else ``<logger name>/<version>``, else random (per Trainer)."""
    env = os.environ.get(RUN_ID_ENV)
    if env:
        return env
    logger = trainer.logger
    if logger is not None and logger.version is not None:
        return f"{logger.name}/{logger.version}"
    if trainer not in _RUN_IDS:
        _RUN_IDS[trainer] = uuid.uuid4().hex
    return _RUN_IDS[trainer]


def _config_hash(trainer: pl.Trainer) -> str | None:
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        value = getattr(callback, "config_hash", None)
        if isinstance(value, str):
            return value
    return None


def collect_provenance(trainer: pl.Trainer) -> dict[str, Any]:
    """The provenance record of the run at this moment (JSON-serializable dict).

    Raises:
        ConfigError: a ``provenance()`` method returned something other than a dict.
    """
    from secure_train.core.version import __version__

    record: dict[str, Any] = {
        "run_id": run_id(trainer),
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "code_version": code_version(),
        "secure_train_version": __version__,
        "config_sha256": _config_hash(trainer),
    }
    sources: list[Any] = list(trainer.callbacks)  # type: ignore[attr-defined]
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        sources.append(datamodule)
    for source in sources:
        method = getattr(source, "provenance", None)
        if not callable(method):
            continue
        extra = method()
        if not isinstance(extra, dict):
            raise ConfigError(f"{type(source).__name__}.provenance() must return a dict, got {type(extra).__name__}")
        record.update(extra)
    return json.loads(json.dumps(record, sort_keys=True, default=str))
