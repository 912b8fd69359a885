"""Checkpoint integrity: keys, signatures, signed checkpoints, verified loading, safe export.

- :func:`generate_keypair`, :func:`load_private_key`, :func:`load_public_key`: EC P-256 keys.
- :class:`CheckpointSigning` (callback) / :class:`SignedCheckpointIO` (plugin): every
  checkpoint Lightning writes gets a ``model_signing``-compatible ``.sig`` sidecar; resume
  verifies before unpickling.
- :func:`load_checkpoint`: verify, then ``torch.load(weights_only=True)``.
- :func:`sign_directory` / :func:`verify_directory` / :class:`VerifiedFileSystemReader`: sharded
  (``torch.distributed.checkpoint``) checkpoint directories signed and verified as one artifact.
- :func:`export_checkpoint`: verified checkpoint to signed safetensors.
- :func:`sign_audit_head` / :func:`verify_audit_head`: truncation-evident audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_train.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from secure_train.core.audit_head import HeadCheck, sign_audit_head, verify_audit_head
    from secure_train.core.errors import IntegrityError
    from secure_train.core.keys import generate_keypair, key_fingerprint, load_private_key, load_public_key
    from secure_train.core.signed_file import SignedFile, signature_path, verify_file, write_signed
    from secure_train.core.signing import sha256_file, sign_bytes, verify_bytes
    from secure_train.core.sigstore import sign_keyless, verify_keyless
    from secure_train.integrity.callback import CheckpointSigning
    from secure_train.integrity.checkpoint_io import SignedCheckpointIO
    from secure_train.integrity.dcp_reader import VerifiedFileSystemReader
    from secure_train.integrity.encryption import decrypt, encrypt, load_encryption_key
    from secure_train.integrity.loading import load_checkpoint
    from secure_train.integrity.run_record import collect_provenance
    from secure_train.integrity.safetensors_export import ExportContext, ExportResult, export_checkpoint
    from secure_train.integrity.sharded import SignedDirectory, sign_directory, verify_directory

_EXPORTS: dict[str, str] = {
    "CheckpointSigning": "secure_train.integrity.callback",
    "ExportContext": "secure_train.integrity.safetensors_export",
    "ExportResult": "secure_train.integrity.safetensors_export",
    "HeadCheck": "secure_train.core.audit_head",
    "IntegrityError": "secure_train.core.errors",
    "SignedCheckpointIO": "secure_train.integrity.checkpoint_io",
    "SignedDirectory": "secure_train.integrity.sharded",
    "SignedFile": "secure_train.core.signed_file",
    "VerifiedFileSystemReader": "secure_train.integrity.dcp_reader",
    "collect_provenance": "secure_train.integrity.run_record",
    "decrypt": "secure_train.integrity.encryption",
    "encrypt": "secure_train.integrity.encryption",
    "export_checkpoint": "secure_train.integrity.safetensors_export",
    "generate_keypair": "secure_train.core.keys",
    "key_fingerprint": "secure_train.core.keys",
    "load_checkpoint": "secure_train.integrity.loading",
    "load_encryption_key": "secure_train.integrity.encryption",
    "load_private_key": "secure_train.core.keys",
    "load_public_key": "secure_train.core.keys",
    "sha256_file": "secure_train.core.signing",
    "sign_audit_head": "secure_train.core.audit_head",
    "sign_bytes": "secure_train.core.signing",
    "sign_directory": "secure_train.integrity.sharded",
    "sign_keyless": "secure_train.core.sigstore",
    "signature_path": "secure_train.core.signed_file",
    "verify_audit_head": "secure_train.core.audit_head",
    "verify_bytes": "secure_train.core.signing",
    "verify_directory": "secure_train.integrity.sharded",
    "verify_file": "secure_train.core.signed_file",
    "verify_keyless": "secure_train.core.sigstore",
    "write_signed": "secure_train.core.signed_file",
}
"""Public name -> defining module, imported on first access (PEP 562)."""


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "CheckpointSigning",
    "ExportContext",
    "ExportResult",
    "HeadCheck",
    "IntegrityError",
    "SignedCheckpointIO",
    "SignedDirectory",
    "SignedFile",
    "VerifiedFileSystemReader",
    "collect_provenance",
    "decrypt",
    "encrypt",
    "export_checkpoint",
    "generate_keypair",
    "key_fingerprint",
    "load_checkpoint",
    "load_encryption_key",
    "load_private_key",
    "load_public_key",
    "sha256_file",
    "sign_audit_head",
    "sign_bytes",
    "sign_directory",
    "sign_keyless",
    "signature_path",
    "verify_audit_head",
    "verify_bytes",
    "verify_directory",
    "verify_file",
    "verify_keyless",
    "write_signed",
]
