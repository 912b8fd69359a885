"""Safe export: verified checkpoint in, signed weights-only safetensors out.

:func:`export_checkpoint` verifies the checkpoint (as :func:`~secure_train.integrity.load_checkpoint`
does), keeps only the tensors of its ``state_dict``, runs the caller's ``checks`` (the
deployment gate plugs in here: any check that raises stops the export before a byte is
written), and writes a safetensors file (no code runs when it is loaded) with a signature
sidecar. The export's signed provenance carries the source checkpoint's provenance and
digest, so the chain from training run to deployed file is verifiable.

Example:
    >>> import os, tempfile, io, torch
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.core.signed_file import write_signed, verify_file
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> d = tempfile.mkdtemp()
    >>> buf = io.BytesIO(); torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": 5}, buf)
    >>> _ = write_signed(buf.getvalue(), os.path.join(d, "m.ckpt"), key, provenance={"global_step": 5})
    >>> out = export_checkpoint(os.path.join(d, "m.ckpt"), os.path.join(d, "m.safetensors"),
    ...                         public_key=key.public_key(), private_key=key)
    >>> verify_file(out.path, key.public_key()).provenance["source"]["global_step"]
    5
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save

from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import ConfigError
from secure_train.core.keys import PrivateKey, PublicKeyLike
from secure_train.core.signed_file import SignedFile, write_signed
from secure_train.integrity.encryption import encrypt, encryption_info
from secure_train.integrity.loading import load_verified_bytes

__all__ = ["ExportCheck", "ExportContext", "ExportResult", "export_checkpoint"]


@dataclass(frozen=True)
class ExportContext:
    """What an export check sees: the verified source and the tensors about to be written."""

    checkpoint_path: Path
    out: Path
    checkpoint: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    source: SignedFile | None


ExportCheck = Callable[[ExportContext], None]
"""A check run before anything is written; it raises (e.g. ``ConfigError``) to refuse the export."""


@dataclass(frozen=True)
class ExportResult:
    """The written export: its path, signed record and number of tensors."""

    path: Path
    signed: SignedFile
    tensors: int


def _tensors(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ConfigError(f"{path}: no state_dict of tensors to export")
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"{path}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor")
        t = value.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and key in seen:  # tied weights: safetensors stores each storage once
            t = t.clone()
        seen.add(key)
        out[str(name)] = t
    return out


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    public_key: PublicKeyLike | None,
    private_key: PrivateKey,
    require_signature: bool = True,
    checks: Sequence[ExportCheck] = (),
    encryption_key: bytes | None = None,
    encrypt_output: bool = False,
    audit_log: AuditLog | None = None,
    fsync: bool = True,
) -> ExportResult:
    """Verify ``checkpoint``, run ``checks``, write weights only to ``out`` (safetensors) + ``out.sig``.

    Args:
        checkpoint: signed Lightning checkpoint (or a plain state dict file).
        out: destination ``.safetensors`` file.
        public_key: key that must have signed ``checkpoint``.
        private_key: key that signs the export.
        require_signature: refuse an unsigned checkpoint (default).
        checks: callables run on an :class:`ExportContext` before writing; any exception
            refuses the export (recorded as ``model.export_refused``).
        encryption_key: AES-256 key: decrypts an encrypted checkpoint, and encrypts the
            export when ``encrypt_output`` is True.
        encrypt_output: encrypt the safetensors bytes at rest (the signature covers the
            ciphertext).
        audit_log: where to record ``checkpoint.verified`` / ``model.exported`` / refusals.
        fsync: flush before the signed pair becomes visible.

    Raises:
        IntegrityError: the checkpoint failed verification.
        ConfigError: no tensors to export, or ``encrypt_output`` without a key.
    """
    src, dst = Path(checkpoint), Path(out)
    if encrypt_output and encryption_key is None:
        raise ConfigError("encrypt_output=True needs an encryption_key")
    data, source = load_verified_bytes(
        src,
        public_key,
        require_signature=require_signature,
        encryption_key=encryption_key,
        audit_log=audit_log,
        source="export_checkpoint",
    )
    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    del data
    tensors = _tensors(loaded, src)
    context = ExportContext(src, dst, loaded if isinstance(loaded, dict) else {}, tensors, source)
    for check in checks:
        try:
            check(context)
        except Exception as err:
            if audit_log is not None:
                audit_log.record(
                    "model.export_refused",
                    source="export_checkpoint",
                    checkpoint=str(src),
                    check=getattr(check, "__name__", type(check).__name__),
                    reason=str(err),
                )
            raise
    provenance = {
        "format": "safetensors",
        "source_checkpoint": src.name,
        "source_sha256": source.sha256 if source is not None else None,
        "source_key_fingerprint": source.key_fingerprint if source is not None else None,
        "source": source.provenance if source is not None else {},
    }
    metadata = {"secure_train.provenance": json.dumps(provenance, sort_keys=True, default=str)}
    payload: bytes = safetensors_save(tensors, metadata=metadata)
    encryption = None
    if encrypt_output:
        assert encryption_key is not None
        payload = encrypt(payload, encryption_key)
        encryption = encryption_info(encryption_key)
    signed = write_signed(payload, dst, private_key, provenance=provenance, encryption=encryption, fsync=fsync)
    if audit_log is not None:
        audit_log.record(
            "model.exported",
            source="export_checkpoint",
            checkpoint=str(src),
            out=str(dst),
            sha256=signed.sha256,
            tensors=len(tensors),
            encrypted=encryption is not None,
            key_fingerprint=signed.key_fingerprint,
        )
    return ExportResult(dst, signed, len(tensors))
