"""``CheckpointSigning``: one callback that signs every checkpoint and verifies every resume.

Example:
    >>> import lightning.pytorch as pl, tempfile, os
    >>> from secure_train.integrity import generate_keypair
    >>> d = tempfile.mkdtemp()
    >>> priv, pub = generate_keypair(os.path.join(d, "k.pem"), os.path.join(d, "k.pub"), passphrase_env=None)
    >>> trainer = pl.Trainer(callbacks=[CheckpointSigning(private_key=priv, public_key=pub)], logger=False)
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from secure_train.core.audit_head import sign_audit_head
from secure_train.core.audit_log import get_audit_log
from secure_train.core.errors import ConfigError
from secure_train.core.keys import (
    DEFAULT_KEY_ENV,
    DEFAULT_PASSPHRASE_ENV,
    PrivateKeyArg,
    PublicKeyArg,
)
from secure_train.core.signed_file import DEFAULT_SHARD_SIZE
from secure_train.integrity.checkpoint_io import SignedCheckpointIO

__all__ = ["CheckpointSigning"]


class CheckpointSigning(Callback):
    """Install :class:`~secure_train.integrity.SignedCheckpointIO` and sign the audit head at the end of the run.

    At ``setup`` (before Lightning restores ``ckpt_path``) the strategy's ``CheckpointIO`` is
    replaced by a ``SignedCheckpointIO`` bound to this Trainer, so that every checkpoint is
    saved with a signature sidecar covering its bytes and the run's provenance, and every
    resume is verified before a byte is unpickled (``require_signature`` is on). The
    audit log's head is signed after each checkpoint and once more at the end of the run,
    after ``AuditTrail`` has written ``run.end``. Saves are crash-safe: a save killed midway
    is finished or cleaned up (audited) before the next load or first save in its folder,
    so ``last.ckpt`` is always the previous verified pair or the new one. Sharded checkpoint
    directories that ``FSDPStrategy`` / ``ModelParallelStrategy`` write themselves are signed as
    one artifact (``DIR.sig``) and verified on every rank before a shard is read
    (:mod:`~secure_train.integrity.sharded`); a ``save_last="link"`` ``last.ckpt`` verifies
    through its target.

    Args:
        private_key: key object or path; ``None``: ``$SECURE_TRAIN_SIGNING_KEY`` (path or PEM).
        public_key: verification key; default: the private key's public half.
        require_signature: refuse unsigned checkpoints on resume (default).
        encryption_key: see :class:`~secure_train.integrity.SignedCheckpointIO`.
        shard_size: bytes per independently hashed shard.
        fsync: flush to disk before the signed pair becomes visible (durability; off
            by default like Lightning's saves -- integrity does not depend on it).
        async_save: write, hash and sign off the training thread.
        sign_audit_head: sign the audit head at checkpoints and at the end of the run.
        key_env: environment variable read when ``private_key`` is None.
        passphrase_env: environment variable holding the key's passphrase.

    Raises:
        ConfigError: at setup, when the strategy already uses a ``CheckpointIO`` other than
            Lightning's ``TorchCheckpointIO`` (it cannot be wrapped without losing its
            behaviour), or when the key cannot be loaded.
    """

    def __init__(
        self,
        private_key: PrivateKeyArg | None = None,
        public_key: PublicKeyArg | None = None,
        *,
        require_signature: bool = True,
        encryption_key: bytes | str | os.PathLike[str] | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
        fsync: bool = False,
        async_save: bool = False,
        sign_audit_head: bool = True,
        key_env: str = DEFAULT_KEY_ENV,
        passphrase_env: str | None = DEFAULT_PASSPHRASE_ENV,
    ) -> None:
        self.checkpoint_io = SignedCheckpointIO(
            private_key,
            public_key,
            require_signature=require_signature,
            encryption_key=encryption_key,
            shard_size=shard_size,
            fsync=fsync,
            async_save=async_save,
            sign_audit_head=sign_audit_head,
            key_env=key_env,
            passphrase_env=passphrase_env,
        )
        self.sign_audit_head = sign_audit_head

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        current = trainer.strategy.checkpoint_io
        if isinstance(current, SignedCheckpointIO):
            self.checkpoint_io = current
        elif type(current) is not TorchCheckpointIO:
            raise ConfigError(
                f"CheckpointSigning cannot wrap the strategy's {type(current).__name__}; "
                "pass SignedCheckpointIO as the Trainer's plugin instead"
            )
        else:
            trainer.strategy.checkpoint_io = self.checkpoint_io
        self.checkpoint_io.bind(trainer)
        if trainer.is_global_zero:
            _ = self.checkpoint_io.private_key  # fail now, not at the first checkpoint
        get_audit_log(trainer).record(
            "integrity.configured", source=type(self).__name__, **self.checkpoint_io.describe()
        )

    def _sign_head(self, trainer: pl.Trainer) -> None:
        log = get_audit_log(trainer)
        if self.sign_audit_head and log.enabled:
            sign_audit_head(log.path, self.checkpoint_io.private_key, reason="end of run")

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.checkpoint_io.wait()
        # The AuditTrail records ``run.end`` in its own teardown; when it comes after this
        # callback, sign the head right after it so the final head covers ``run.end``.
        callbacks: list[Any] = list(trainer.callbacks)  # type: ignore[attr-defined]
        later = [cb for cb in callbacks[callbacks.index(self) + 1 :] if hasattr(cb, "open_audit_log")]
        if not later:
            self._sign_head(trainer)
            return
        last = later[-1]
        original = last.teardown
        own = "teardown" in vars(last)

        def teardown_then_sign(*args: Any, **kwargs: Any) -> None:
            try:
                original(*args, **kwargs)
            finally:
                if own:
                    last.teardown = original
                else:
                    del last.teardown  # back to the class's method
                self._sign_head(trainer)

        last.teardown = teardown_then_sign
