"""``SignedCheckpointIO``: every checkpoint Lightning writes is signed; every load is verified.

The cut: signing lives in a :class:`~lightning.pytorch.plugins.io.CheckpointIO` plugin, not
in ``ModelCheckpoint``, because every checkpoint file goes through the strategy's
``CheckpointIO`` (top-k, ``last.ckpt``, ``Trainer.save_checkpoint``, ``OnExceptionCheckpoint``,
rotation through ``remove_checkpoint``) and every resume (``Trainer.fit(ckpt_path=...)``)
goes through its ``load_checkpoint``. Wrapping one ``ModelCheckpoint`` would miss the
others. The :class:`~secure_train.integrity.CheckpointSigning` callback installs this plugin
and gives it the Trainer, which the provenance record and the audit log need.

Sharded checkpoints: ``FSDPStrategy`` and ``ModelParallelStrategy`` write a
``torch.distributed.checkpoint`` directory themselves, past ``CheckpointIO``. When bound to a
Trainer, the plugin therefore also hooks that strategy's ``save_checkpoint`` (global rank 0
signs the finished directory as one artifact, ``DIR.sig``: see
:mod:`~secure_train.integrity.sharded`; the Trainer's own barrier follows) and
``load_checkpoint`` (every rank verifies the whole directory before the strategy reads a
shard; a strategy that reads single files itself has them verified first as well). Removal
(top-k rotation) goes through :meth:`remove_checkpoint` for files and directories alike.

``ModelCheckpoint(save_last="link")``: ``last.ckpt`` is a symbolic link to the newest
checkpoint, made outside ``CheckpointIO``; it verifies through its target, and a link that
points outside its folder is refused
(:func:`~secure_train.core.signed_file.signed_target`). Lightning's fallback where
links are not allowed (a plain copy) has no sidecar and is refused as unsigned.

Example:
    >>> import tempfile, os, torch
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> io_plugin = SignedCheckpointIO(private_key=key)
    >>> path = os.path.join(tempfile.mkdtemp(), "step=1.ckpt")
    >>> io_plugin.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.zeros(1)}}, path)
    >>> os.path.exists(path + ".sig")
    True
    >>> io_plugin.load_checkpoint(path)["global_step"]
    1
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy
from typing_extensions import override

from secure_train.core.audit_head import sign_audit_head
from secure_train.core.audit_log import AuditLog, get_audit_log
from secure_train.core.errors import ConfigError, IntegrityError
from secure_train.core.keys import (
    DEFAULT_KEY_ENV,
    DEFAULT_PASSPHRASE_ENV,
    PrivateKey,
    PrivateKeyArg,
    PublicKey,
    PublicKeyArg,
    key_fingerprint,
    load_private_key,
    load_public_key,
)
from secure_train.core.require import require_int, require_non_empty
from secure_train.core.signed_file import (
    DEFAULT_SHARD_SIZE,
    recover_signed,
    remove_signed,
    signature_path,
    signed_target,
    write_signed,
)
from secure_train.integrity.cli_support import snapshot_origin
from secure_train.integrity.encryption import (
    DEFAULT_ENCRYPTION_KEY_ENV,
    encrypt,
    encryption_info,
    load_encryption_key,
)
from secure_train.integrity.loading import load_verified_bytes
from secure_train.integrity.run_record import code_version, collect_provenance
from secure_train.integrity.sharded import SignedDirectory, sign_directory, verify_directory

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = ["SignedCheckpointIO"]


class SignedCheckpointIO(TorchCheckpointIO):
    """Save checkpoints with a ``model_signing``-compatible signature sidecar; verify on load.

    Args:
        private_key: signing key: an EC key object, a path, or ``None`` to read
            ``$SECURE_TRAIN_SIGNING_KEY`` (path or PEM) when the first checkpoint is saved.
        public_key: verification key (object, path or PEM); default: the private key's.
        require_signature: refuse to load unsigned checkpoints (default). Tampered or
            foreign signatures are refused regardless.
        encryption_key: AES-256 key (32 bytes), a key file path, or ``"env"`` for
            ``$SECURE_TRAIN_ENCRYPTION_KEY``: checkpoints are encrypted at rest
            (AES-256-GCM) and the signature covers the ciphertext. ``None``: plaintext.
        shard_size: bytes per independently hashed shard (parallel verification).
        fsync: flush files and directory to disk before the pair becomes visible
            (durability across power loss). Off by default, like Lightning's own saves:
            integrity does not depend on it, since a partly written file never matches
            its signature and is refused.
        async_save: serialize on the training thread, then write, hash, sign and rename on
            a background thread; at most one save in flight (the next save, a removal, a
            load or teardown waits for it). The pair still only appears once valid. A
            strategy's checkpoint directory is hashed and signed on that thread too (it is
            refused as unsigned until its signature is in place).
        sign_audit_head: sign the audit log's head after each checkpoint.
        key_env: environment variable read when ``private_key`` is None.
        passphrase_env: environment variable holding the private key's passphrase.

    Crash safety: before the first save into a folder and before every load, the saves a
    killed process left unfinished there are completed or cleaned up
    (:func:`~secure_train.core.signed_file.recover_signed`), so ``last.ckpt`` is
    always the previous verified pair or the new one.

    Audit events: ``checkpoint.signed`` (path, sha256, size, global_step, key fingerprint),
    ``checkpoint.removed``, ``checkpoint.verified`` (with ``snapshot_of`` when loading the
    CLI's private verified copy of ``--ckpt_path``), ``checkpoint.refused`` (path, reason),
    ``checkpoint.recovered`` (a signature left in a temporary file by a killed save, renamed
    into place), ``checkpoint.temp_removed`` (an abandoned temporary file).
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
        super().__init__()
        require_int(self, "shard_size", shard_size, minimum=1)
        require_non_empty(self, "key_env", key_env)
        if passphrase_env is not None:
            require_non_empty(self, "passphrase_env", passphrase_env)
        self._private_key_source = private_key
        self._private_key: PrivateKey | None = private_key if isinstance(private_key, PrivateKey) else None
        self._public_key_source = public_key
        self.require_signature = require_signature
        if isinstance(encryption_key, bytes):
            self.encryption_key: bytes | None = encryption_key
        elif encryption_key == "env":
            self.encryption_key = load_encryption_key()
        elif encryption_key is not None:
            self.encryption_key = load_encryption_key(encryption_key)
        else:
            self.encryption_key = None
        if encryption_key is not None and self.encryption_key is None:
            raise ConfigError(
                f"{type(self).__name__}: encryption_key='env' but ${DEFAULT_ENCRYPTION_KEY_ENV} is not set"
            )
        self.shard_size = shard_size
        self.fsync = fsync
        self.async_save = async_save
        self.sign_audit_head = sign_audit_head
        self.key_env = key_env
        self.passphrase_env = passphrase_env
        self.trainer: pl.Trainer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._lock = threading.Lock()
        self._before_signature: Callable[[], None] | None = None  # test hook: crash injection
        self._recovered: set[Path] = set()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state (``ddp_spawn``): no lock, no thread pool, and never a loaded key."""
        if isinstance(self._private_key_source, PrivateKey):
            raise TypeError(
                f"{type(self).__name__} holding a key object cannot be pickled (ddp_spawn); "
                "give private_key as a path or through $SECURE_TRAIN_SIGNING_KEY"
            )
        state = self.__dict__.copy()
        state.update(_private_key=None, _executor=None, _pending=None, _lock=None, trainer=None, _recovered=set())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- keys -------------------------------------------------------------------------
    @property
    def private_key(self) -> PrivateKey:
        """The signing key, loaded on first use (path, ``$key_env``)."""
        if self._private_key is None:
            source = self._private_key_source
            path = None if source is None else os.fspath(source)  # type: ignore[arg-type]
            self._private_key = load_private_key(path, env=self.key_env, passphrase_env=self.passphrase_env)
        return self._private_key

    @property
    def public_key(self) -> PublicKey | None:
        """The verification key: the one given, else the signing key's public half (if any)."""
        if self._public_key_source is not None:
            return load_public_key(self._public_key_source)
        if self._private_key is not None or self._private_key_source is not None or os.environ.get(self.key_env):
            return self.private_key.public_key()
        return None

    def bind(self, trainer: pl.Trainer) -> None:
        """Give the plugin the Trainer (provenance record, audit log) and hook its strategy's directory saves.

        Done by ``CheckpointSigning``.
        """
        self.trainer = trainer
        self._hook_strategy(trainer.strategy)

    def _hook_strategy(self, strategy: Strategy) -> None:
        """Sign what ``strategy`` saves as a directory; verify directories (and files it reads itself) before load."""
        if getattr(strategy, "_secure_train_io", None) is self:
            return
        save, load = strategy.save_checkpoint, strategy.load_checkpoint
        reads_files_itself = type(strategy).load_checkpoint is not Strategy.load_checkpoint

        def save_checkpoint(checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None) -> None:
            step: dict[str, Any] = {key: checkpoint[key] for key in ("global_step", "epoch") if key in checkpoint}
            save(checkpoint, filepath, storage_options=storage_options)
            path = Path(filepath)
            if strategy.is_global_zero and path.is_dir() and not path.is_symlink():
                if self.async_save:  # hashed and signed off the training thread; removal, load, teardown wait
                    self._submit(self.sign_directory, path, step)
                else:
                    self.sign_directory(path, step)  # the Trainer's barrier follows: no rank reads it unsigned

        def load_checkpoint(checkpoint_path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
            self.verify(checkpoint_path, files=reads_files_itself)
            return load(checkpoint_path, *args, **kwargs)

        strategy.save_checkpoint = save_checkpoint  # type: ignore[method-assign]
        strategy.load_checkpoint = load_checkpoint  # type: ignore[method-assign]
        strategy._secure_train_io = self  # type: ignore[attr-defined]

    def _audit_log(self) -> AuditLog | None:
        return get_audit_log(self.trainer) if self.trainer is not None else None

    def recover(self, directory: str | os.PathLike[str]) -> None:
        """Finish or clean up the saves a killed process left in ``directory``; audit each step.

        Done automatically before the first save into a folder and before every load.
        """
        public = self.public_key
        if public is None:
            return
        log = self._audit_log()
        for step in recover_signed(directory, public):
            if log is not None:
                event = "checkpoint.recovered" if step.action == "completed" else "checkpoint.temp_removed"
                log.record(event, source=type(self).__name__, path=str(step.target), temp=str(step.temp))
        self._recovered.add(Path(directory))

    def _record_origin(self, origin: dict[str, Any]) -> None:
        """Audit the recoveries the CLI did before this Trainer (and its audit log) existed."""
        log = self._audit_log()
        for step in origin.pop("recovered", []):
            if log is not None:
                event = "checkpoint.recovered" if step["action"] == "completed" else "checkpoint.temp_removed"
                log.record(event, source="SecureTrainCLI", path=step["target"], temp=step["temp"])

    # -- save -------------------------------------------------------------------------
    def _provenance(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        if self.trainer is not None:
            record = collect_provenance(self.trainer)
        else:
            record = {"code_version": code_version()}
        for key in ("global_step", "epoch"):
            if key in checkpoint:
                record[key] = int(checkpoint[key])
        log = self._audit_log()
        if log is not None and log.enabled:
            events, head = log.head
            record["audit_head"] = {"events": events, "head": head}
        return record

    def _write(self, data: bytes | memoryview, path: Path, provenance: dict[str, Any]) -> None:
        encryption = None
        if self.encryption_key is not None:
            data = encrypt(data, self.encryption_key)
            encryption = encryption_info(self.encryption_key)
        signed = write_signed(
            data,
            path,
            self.private_key,
            provenance=provenance,
            encryption=encryption,
            shard_size=self.shard_size,
            fsync=self.fsync,
            _before_signature=self._before_signature,
        )
        log = self._audit_log()
        if log is not None:
            log.record(
                "checkpoint.signed",
                source=type(self).__name__,
                path=str(path),
                sha256=signed.sha256,
                size=signed.size,
                global_step=provenance.get("global_step"),
                encrypted=encryption is not None,
                key_fingerprint=signed.key_fingerprint,
            )
            if self.sign_audit_head and log.enabled:
                sign_audit_head(log.path, self.private_key, reason=f"checkpoint {path.name}")

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        target = Path(path)
        _ = self.private_key  # fail on a missing or unsafe key before spending time serializing
        if target.parent not in self._recovered:
            self.wait()
            self.recover(target.parent)
        provenance = self._provenance(checkpoint)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # on the training thread: a consistent snapshot
        data = buffer.getbuffer()  # no copy; the buffer lives as long as this view
        if not self.async_save:
            self._write(data, target, provenance)
            return
        self._submit(self._write, data, target, provenance)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the background thread, after the save in flight (at most one at a time)."""
        self.wait()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secure-train-ckpt")
            self._pending = self._executor.submit(fn, *args)

    def wait(self) -> None:
        """Block until the background save in flight (if any) is on disk; re-raise its error."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    # -- remove / load ------------------------------------------------------------------
    @override
    def remove_checkpoint(self, path: Any) -> None:
        self.wait()
        existed = Path(path).exists()
        remove_signed(path)
        log = self._audit_log()
        if existed and log is not None:
            log.record("checkpoint.removed", source=type(self).__name__, path=str(path))

    @override
    def load_checkpoint(
        self, path: Any, map_location: Any | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Verify ``path`` (signature, size, every shard) and only then ``torch.load(weights_only=True)``.

        ``weights_only=False`` is refused: a signature proves who wrote the file, not that
        unpickling it is safe.
        """
        self.wait()
        if weights_only is False:
            raise ConfigError(f"{type(self).__name__} loads with weights_only=True only; got weights_only=False")
        origin = snapshot_origin(path)
        if origin is not None:
            self._record_origin(origin)  # a private verified copy made by the CLI: nothing to recover
        else:
            self.recover(Path(path).parent)
        data, _ = load_verified_bytes(
            path,
            self.public_key,
            require_signature=self.require_signature,
            encryption_key=self.encryption_key,
            audit_log=self._audit_log(),
            source=type(self).__name__,
            audit_fields=origin,
        )
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)

    # -- directories (sharded checkpoints) ----------------------------------------------
    def _refused(self, err: IntegrityError) -> None:
        log = self._audit_log()
        if log is not None:
            log.record("checkpoint.refused", source=type(self).__name__, path=err.path, reason=err.reason)

    def sign_directory(self, path: str | os.PathLike[str], checkpoint: dict[str, Any] | None = None) -> SignedDirectory:
        """Sign a finished checkpoint directory (DCP shards, ``.metadata``, ``meta.pt``) as one artifact.

        Called on global rank zero by the hooked strategy after its save; the audit event is
        ``checkpoint.signed`` with ``kind="directory"``.

        Args:
            path: the checkpoint directory.
            checkpoint: its ``global_step`` / ``epoch`` (for the provenance record).

        Raises:
            ConfigError: ``encryption_key`` is set: shards are written in plaintext by the
                strategy, and signing them would pretend otherwise.
        """
        if self.encryption_key is not None:
            from secure_train.core.errors import ConfigError

            raise ConfigError(
                f"{path}: sharded checkpoints are written by the strategy in plaintext; "
                "encryption_key is not supported with them (drop it, or save full state dicts)"
            )
        target = Path(path)
        provenance = self._provenance(checkpoint or {})
        signed = sign_directory(target, self.private_key, provenance=provenance, fsync=self.fsync)
        log = self._audit_log()
        if log is not None:
            self._directory_event(log, "checkpoint.signed", target, signed, encrypted=False)
            if self.sign_audit_head and log.enabled:
                sign_audit_head(log.path, self.private_key, reason=f"checkpoint {target.name}")
        return signed

    def verify(self, path: str | os.PathLike[str], *, files: bool = True) -> SignedDirectory | None:
        """Verify a checkpoint directory (every file) -- or, with ``files``, a checkpoint file -- without loading it.

        Audited as ``checkpoint.verified`` / ``checkpoint.refused`` (``kind="directory"`` for
        directories). With ``require_signature=False`` an unsigned one passes with a warning.

        Returns:
            What a directory's signature commits to; None for a file or an unsigned directory.

        Raises:
            IntegrityError: unsigned (when required), tampered, renamed, a link pointing
                outside its folder, or signed by another key; the message names the file.
        """
        self.wait()
        log = self._audit_log()
        try:
            target = signed_target(path)  # a ``save_last="link"`` link: its target, if in its folder
        except IntegrityError as err:
            self._refused(err)
            raise
        if not target.is_dir():
            if files:  # audited by load_verified_bytes itself
                load_verified_bytes(
                    path,
                    self.public_key,
                    require_signature=self.require_signature,
                    encryption_key=self.encryption_key,
                    audit_log=log,
                    source=type(self).__name__,
                )
            return None
        if not self.require_signature and not signature_path(target).exists():
            warnings.warn(f"loading UNSIGNED checkpoint directory {path} (require_signature=False)", stacklevel=2)
            if log is not None:
                log.record("checkpoint.unsigned_loaded", source=type(self).__name__, path=str(path), kind="directory")
            return None
        try:
            public = self.public_key
            if public is None:
                raise IntegrityError(path, "a public key is needed to verify it (require_signature is on)")
            signed = verify_directory(target, public)
        except IntegrityError as err:
            self._refused(err)
            raise
        if log is not None:
            self._directory_event(log, "checkpoint.verified", path, signed)
        return signed

    def _directory_event(self, log: Any, event: str, path: Any, signed: SignedDirectory, **extra: Any) -> None:
        """Audit ``event`` for a signed checkpoint directory (its digest, size, file count, key, step)."""
        log.record(
            event,
            source=type(self).__name__,
            path=str(path),
            kind="directory",
            sha256=signed.sha256,
            size=signed.size,
            files=len(signed.digests),
            global_step=signed.provenance.get("global_step"),
            key_fingerprint=signed.key_fingerprint,
            **extra,
        )

    @override
    def teardown(self) -> None:
        self.wait()
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def describe(self) -> dict[str, Any]:
        """Non-secret settings for logs and the audit trail (never key material)."""
        public = self.public_key
        return {
            "key_fingerprint": key_fingerprint(public) if public is not None else None,
            "require_signature": self.require_signature,
            "encrypted": self.encryption_key is not None,
            "async_save": self.async_save,
            "shard_size": self.shard_size,
        }
