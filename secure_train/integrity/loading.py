"""Verify before load: no byte of a checkpoint is unpickled before its signature checks out.

:func:`load_checkpoint` reads the file once into memory, verifies those bytes against the
sidecar signature (:mod:`~secure_train.core.signed_file`), decrypts them if they
were encrypted at rest, and only then parses them with ``torch.load(weights_only=True)``,
which refuses arbitrary Python objects even from a correctly signed file.

Example:
    >>> import os, tempfile, io, torch
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.core.signed_file import write_signed
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> buf = io.BytesIO(); torch.save({"state_dict": {"w": torch.ones(2)}}, buf)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> _ = write_signed(buf.getvalue(), path, key)
    >>> load_checkpoint(path, key.public_key())["state_dict"]["w"]
    tensor([1., 1.])
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import IntegrityError
from secure_train.core.keys import PublicKeyLike
from secure_train.core.signed_file import SignedFile, read_verified, signature_path, signed_target
from secure_train.integrity.encryption import decrypt, encryption_info, is_encrypted

__all__ = ["load_checkpoint", "load_verified_bytes"]


def _refuse(audit_log: AuditLog | None, err: IntegrityError, source: str, extra: Mapping[str, Any]) -> None:
    if audit_log is not None:
        audit_log.record("checkpoint.refused", source=source, path=err.path, reason=err.reason, **extra)


def load_verified_bytes(
    path: str | os.PathLike[str],
    public_key: PublicKeyLike | None,
    *,
    require_signature: bool = True,
    encryption_key: bytes | None = None,
    audit_log: AuditLog | None = None,
    source: str = "load_checkpoint",
    audit_fields: Mapping[str, Any] | None = None,
) -> tuple[bytes, SignedFile | None]:
    """The verified (and decrypted) bytes of ``path`` and what their signature commits to.

    With ``require_signature=False`` an *unsigned* file (no sidecar) is returned with a
    warning and ``None``; a sidecar that does not match is refused either way.
    ``audit_fields`` are added to the audit event (e.g. ``snapshot_of``, the file a
    private verified snapshot was taken from).

    Raises:
        IntegrityError: unsigned (when required), tampered, renamed, signed by another
            key, or not decryptable; recorded as ``checkpoint.refused`` in ``audit_log``.
    """
    extra = dict(audit_fields or {})
    try:
        if not require_signature and not signature_path(signed_target(path)).exists():  # a link: its target's
            if not os.path.isfile(path):
                raise IntegrityError(path, "no such file")
            warnings.warn(f"loading UNSIGNED checkpoint {path} (require_signature=False)", stacklevel=3)
            with open(path, "rb") as fh:
                data = fh.read()
            signed = None
            if audit_log is not None:
                audit_log.record("checkpoint.unsigned_loaded", source=source, path=str(path), **extra)
        else:
            if public_key is None:
                raise IntegrityError(path, "a public key is needed to verify it (require_signature is on)")
            data, signed = read_verified(path, public_key)
            if audit_log is not None:
                audit_log.record(
                    "checkpoint.verified",
                    source=source,
                    path=str(path),
                    sha256=signed.sha256,
                    size=signed.size,
                    key_fingerprint=signed.key_fingerprint,
                    global_step=signed.provenance.get("global_step"),
                    **extra,
                )
        if (signed is not None and signed.encryption) or is_encrypted(data):
            if encryption_key is None:
                raise IntegrityError(path, "is encrypted at rest: an encryption key is needed to load it")
            if signed is not None and signed.encryption != encryption_info(encryption_key):
                raise IntegrityError(path, "was encrypted with another key (key id differs)")
            try:
                data = decrypt(data, encryption_key)
            except ValueError as err:
                raise IntegrityError(path, str(err)) from None
        return data, signed
    except IntegrityError as err:
        _refuse(audit_log, err, source, extra)
        raise


def load_checkpoint(
    path: str | os.PathLike[str],
    public_key: PublicKeyLike | None,
    *,
    map_location: Any = "cpu",
    require_signature: bool = True,
    encryption_key: bytes | None = None,
    audit_log: AuditLog | None = None,
) -> Any:
    """Verify ``path`` against ``path.sig`` and ``public_key``, then ``torch.load(weights_only=True)``.

    Args:
        path: checkpoint file.
        public_key: key object, PEM path or PEM text of the signer.
        map_location: passed to :func:`torch.load`.
        require_signature: refuse unsigned files (default). A bad signature is always refused.
        encryption_key: AES-256 key for checkpoints encrypted at rest.
        audit_log: where to record ``checkpoint.verified`` / ``checkpoint.refused``.

    Raises:
        IntegrityError: see :func:`load_verified_bytes`; the message names the file and
            what did not match.
    """
    data, _ = load_verified_bytes(
        path, public_key, require_signature=require_signature, encryption_key=encryption_key, audit_log=audit_log
    )
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
