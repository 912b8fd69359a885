"""``--ckpt_path`` with signing: hyper-parameters and weights come from one verified private copy.

LightningCLI reads a checkpoint twice: ``LightningCLI._parse_ckpt_path`` ``torch.load``\\ s
``ckpt_path`` to merge its saved hyper-parameters into the config, right after
``parse_arguments`` and before the Trainer (and so ``SignedCheckpointIO``) exists; then
``Trainer.fit(ckpt_path=...)`` reads the file again for the weights. Verifying the path and
letting both re-read it is a time-of-check/time-of-use race: a file swapped in between
gives its hyper-parameters to the run (issue 11, item 3).

The cut: when the config configures signing (a ``CheckpointSigning`` callback or a
``SignedCheckpointIO`` plugin), :func:`snapshot_ckpt_path` first finishes any save a crash
interrupted (:func:`~secure_train.core.signed_file.recover_signed`), then reads the
sidecar once and the checkpoint once (streamed, in bounded memory) into a private snapshot --
a fresh ``0700`` directory from :func:`tempfile.mkdtemp`, files ``0600``, same file name so
the signature's name binding still holds -- and verifies *the snapshot's* bytes. Nobody
else can write there, so what is verified is what is later parsed. ``SecureTrainCLI`` then
points ``ckpt_path`` at the snapshot, so Lightning's hyper-parameter merge and the Trainer
(whose ``SignedCheckpointIO`` verifies it once more, reading it once) use the very same
bytes. The snapshot is removed by :meth:`CheckpointSnapshot.cleanup`, when the snapshot is
garbage-collected, or at interpreter exit. The Trainer's ``checkpoint.verified`` audit
event names the original file (``snapshot_of``) and the crash recoveries done here.

A checkpoint encrypted at rest is verified and copied the same way; since LightningCLI's
merge cannot parse ciphertext, the snapshot also holds ``hparams.pt``: only the
``hyper_parameters`` of the verified, decrypted bytes (``torch.load(weights_only=True)``),
which ``SecureTrainCLI`` gives the merge before pointing ``ckpt_path`` at the encrypted copy
for the Trainer (``before_instantiate_classes``).

Not covered: a process running as the same user can write the private directory too (it
can also read the signing key from the environment). The snapshot takes the checkpoint's
size again in ``$TMPDIR``.

Example:
    >>> snapshot_ckpt_path({"ckpt_path": None, "trainer": {}}) is None
    True
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secure_train.core.errors import IntegrityError
from secure_train.core.keys import (
    DEFAULT_KEY_ENV,
    DEFAULT_PASSPHRASE_ENV,
    PublicKey,
    load_private_key,
    load_public_key,
)
from secure_train.core.signed_file import (
    Recovery,
    SignedFile,
    recover_signed,
    signature_path,
    signed_target,
    verify_file,
)
from secure_train.integrity.encryption import MAGIC, is_encrypted, load_encryption_key

__all__ = ["CheckpointSnapshot", "snapshot_ckpt_path", "snapshot_origin", "verify_ckpt_path"]

_SIGNING_CLASSES = {"CheckpointSigning", "SignedCheckpointIO"}
_COPY_CHUNK = 8 << 20
_ORIGINS: dict[str, dict[str, Any]] = {}
_ORIGINS_LOCK = threading.Lock()


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _signing_args(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``init_args`` of the config's signing callback or plugin; None when signing is not configured."""
    trainer = config.get("trainer") or {}
    for entry in _entries(trainer.get("callbacks")) + _entries(trainer.get("plugins")):
        if isinstance(entry, Mapping) and str(entry.get("class_path", "")).rsplit(".", 1)[-1] in _SIGNING_CLASSES:
            return entry.get("init_args") or {}
    return None


def _signing_settings(config: Mapping[str, Any]) -> tuple[PublicKey, bool] | None:
    """The verification key and ``require_signature`` of the config's signing callback/plugin."""
    args = _signing_args(config)
    if args is None:
        return None
    public = args.get("public_key")
    if public is None:
        private = args.get("private_key")
        key = load_private_key(
            None if private is None else os.fspath(private),
            env=args.get("key_env") or DEFAULT_KEY_ENV,
            passphrase_env=args.get("passphrase_env", DEFAULT_PASSPHRASE_ENV),
        )
        return key.public_key(), bool(args.get("require_signature", True))
    return load_public_key(public), bool(args.get("require_signature", True))


def _encryption_key(config: Mapping[str, Any]) -> bytes | None:
    """The at-rest key the signing callback/plugin is configured with (as ``SignedCheckpointIO`` reads it)."""
    value = (_signing_args(config) or {}).get("encryption_key")
    if value is None or isinstance(value, bytes):
        return value
    return load_encryption_key() if value == "env" else load_encryption_key(value)


def _hparams_only(copy: Path, public_key: PublicKey, encryption_key: bytes | None, source: Path, signed: bool) -> Path:
    """Write ``hparams.pt`` (0600) next to the encrypted ``copy``: its verified, decrypted hyper-parameters."""
    import io

    import torch

    from secure_train.integrity.loading import load_verified_bytes

    if encryption_key is None:
        raise IntegrityError(source, "is encrypted at rest: an encryption key is needed to load it")
    try:
        data, _ = load_verified_bytes(copy, public_key, require_signature=signed, encryption_key=encryption_key)
    except IntegrityError as err:
        raise IntegrityError(source, err.reason) from None
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    buf = io.BytesIO()
    torch.save({"hyper_parameters": hparams}, buf)
    target = copy.parent / "hparams.pt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, buf.getvalue())
    finally:
        os.close(fd)
    return target


def _local_file(config: Mapping[str, Any]) -> Path | None:
    ckpt_path = config.get("ckpt_path")
    if not ckpt_path or not Path(str(ckpt_path)).is_file():  # None, "last", "best", URLs: not ours to read
        return None
    return Path(str(ckpt_path))


def verify_ckpt_path(config: Mapping[str, Any]) -> SignedFile | None:
    """Verify ``config["ckpt_path"]`` in place when ``config["trainer"]`` configures checkpoint signing.

    A check only: the file can change after it. ``SecureTrainCLI`` uses
    :func:`snapshot_ckpt_path`, which pins the verified bytes.

    Returns:
        The signed record, or None when no checkpoint is given, signing is not configured,
        or the file is unsigned and ``require_signature`` is off.

    Raises:
        IntegrityError: the checkpoint is unsigned (and a signature is required) or does
            not match its signature.
    """
    path = _local_file(config)
    settings = None if path is None else _signing_settings(config)
    if path is None or settings is None:
        return None
    public_key, require_signature = settings
    if not require_signature and not signature_path(path).exists():
        return None
    return verify_file(path, public_key)


@dataclass
class CheckpointSnapshot:
    """A private, verified copy of a checkpoint (and its sidecar), removed on :meth:`cleanup`.

    Attributes:
        path: the copy: ``<private dir>/<original name>``, next to its ``.sig``.
        source: the file it was copied from.
        signed: what the signature commits to; ``None`` for an unsigned file taken with
            ``require_signature=False``.
        recoveries: interrupted saves finished or cleaned up in ``source``'s folder first.
        hparams_path: for a checkpoint encrypted at rest, a plaintext file holding only its
            verified ``hyper_parameters``, for LightningCLI's merge; else None (``path`` serves).
    """

    path: Path
    source: Path
    signed: SignedFile | None
    recoveries: tuple[Recovery, ...] = ()
    hparams_path: Path | None = None
    _finalizer: weakref.finalize | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        directory, key = str(self.path.parent), str(self.path)
        self._finalizer = weakref.finalize(self, _remove, directory, key)

    def cleanup(self) -> None:
        """Remove the private directory (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()


def _remove(directory: str, key: str) -> None:
    with _ORIGINS_LOCK:
        _ORIGINS.pop(key, None)
    shutil.rmtree(directory, ignore_errors=True)


def snapshot_origin(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Audit fields for a live snapshot: ``snapshot_of`` (the original) and ``recovered`` steps; else None."""
    with _ORIGINS_LOCK:
        origin = _ORIGINS.get(os.fspath(path))
    return None if origin is None else dict(origin)


def _copy_private(fd_in: int, target: Path) -> None:
    fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        while chunk := os.read(fd_in, _COPY_CHUNK):
            view = memoryview(chunk)
            while view.nbytes:
                view = view[os.write(fd_out, view) :]
    finally:
        os.close(fd_out)


def _take(source: Path, directory: Path, with_sidecar: bool) -> Path:
    """Copy ``source`` (each file opened once) into ``directory``; return the copy's path."""
    copy = directory / source.name
    if with_sidecar:
        sig_fd = os.open(signature_path(source), os.O_RDONLY)
        try:
            _copy_private(sig_fd, signature_path(copy))
        finally:
            os.close(sig_fd)
    fd = os.open(source, os.O_RDONLY)
    try:
        _copy_private(fd, copy)
    finally:
        os.close(fd)
    return copy


def snapshot_ckpt_path(config: Mapping[str, Any]) -> CheckpointSnapshot | None:
    """Copy ``config["ckpt_path"]`` to a private folder and verify the copy, when signing is configured.

    Args:
        config: one subcommand's config as a dict (``ckpt_path``, ``trainer``).

    Returns:
        The snapshot to load instead of ``ckpt_path``; None when no local checkpoint file
        is given or the config does not configure signing (nothing is pinned then).

    Raises:
        IntegrityError: the checkpoint is unsigned (and a signature is required) or its
            bytes, as read, do not match its signature; the message names the original file.
    """
    source = _local_file(config)
    settings = None if source is None else _signing_settings(config)
    if source is None or settings is None:
        return None
    public_key, require_signature = settings
    source = signed_target(source)  # a save_last="link" last.ckpt: its signed target (a link elsewhere: refused)
    recoveries = tuple(recover_signed(source.parent, public_key))
    with_sidecar = require_signature or signature_path(source).exists()
    directory = Path(tempfile.mkdtemp(prefix="secure-train-ckpt-"))  # 0700, ours alone
    try:
        try:
            copy = _take(source, directory, with_sidecar)
        except FileNotFoundError as err:
            sig = signature_path(source)
            what = f"unsigned: no signature file {sig.name} next to it" if str(err.filename) == str(sig) else None
            raise IntegrityError(source, what or "no such file") from None
        if with_sidecar:
            try:
                signed: SignedFile | None = verify_file(copy, public_key)
            except IntegrityError as err:
                raise IntegrityError(source, err.reason) from None
        else:
            signed = None
        with copy.open("rb") as fh:
            encrypted = is_encrypted(fh.read(len(MAGIC))) or bool(signed is not None and signed.encryption)
        key = _encryption_key(config) if encrypted else None
        hparams = _hparams_only(copy, public_key, key, source, signed is not None) if encrypted else None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    snapshot = CheckpointSnapshot(copy, source, signed, recoveries, hparams)
    origin: dict[str, Any] = {"snapshot_of": str(source)}
    if recoveries:
        origin["recovered"] = [{"action": r.action, "temp": str(r.temp), "target": str(r.target)} for r in recoveries]
    with _ORIGINS_LOCK:
        _ORIGINS[str(copy)] = origin
    return snapshot
