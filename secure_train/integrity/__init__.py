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

from secure_train import lazy_attribute

if TYPE_CHECKING:
    from secure_train.integrity.audit_head import HeadCheck, sign_audit_head, verify_audit_head
    from secure_train.integrity.callback import CheckpointSigning
    from secure_train.integrity.checkpoint_io import SignedCheckpointIO
    from secure_train.integrity.dcp_reader import VerifiedFileSystemReader
    from secure_train.integrity.encryption import decrypt, encrypt, load_encryption_key
    from secure_train.integrity.errors import IntegrityError
    from secure_train.integrity.export import ExportContext, ExportResult, export_checkpoint
    from secure_train.integrity.keys import generate_keypair, key_fingerprint, load_private_key, load_public_key
    from secure_train.integrity.loading import load_checkpoint
    from secure_train.integrity.provenance import collect_provenance
    from secure_train.integrity.sharded import SignedDirectory, sign_directory, verify_directory
    from secure_train.integrity.signed_file import SignedFile, signature_path, verify_file, write_signed
    from secure_train.integrity.signing import sha256_file, sign_bytes, verify_bytes
    from secure_train.integrity.sigstore import sign_keyless, verify_keyless

_EXPORTS: dict[str, str] = {
    "CheckpointSigning": "secure_train.integrity.callback",
    "ExportContext": "secure_train.integrity.export",
    "ExportResult": "secure_train.integrity.export",
    "HeadCheck": "secure_train.integrity.audit_head",
    "IntegrityError": "secure_train.integrity.errors",
    "SignedCheckpointIO": "secure_train.integrity.checkpoint_io",
    "SignedDirectory": "secure_train.integrity.sharded",
    "SignedFile": "secure_train.integrity.signed_file",
    "VerifiedFileSystemReader": "secure_train.integrity.dcp_reader",
    "collect_provenance": "secure_train.integrity.provenance",
    "decrypt": "secure_train.integrity.encryption",
    "encrypt": "secure_train.integrity.encryption",
    "export_checkpoint": "secure_train.integrity.export",
    "generate_keypair": "secure_train.integrity.keys",
    "key_fingerprint": "secure_train.integrity.keys",
    "load_checkpoint": "secure_train.integrity.loading",
    "load_encryption_key": "secure_train.integrity.encryption",
    "load_private_key": "secure_train.integrity.keys",
    "load_public_key": "secure_train.integrity.keys",
    "sha256_file": "secure_train.integrity.signing",
    "sign_audit_head": "secure_train.integrity.audit_head",
    "sign_bytes": "secure_train.integrity.signing",
    "sign_directory": "secure_train.integrity.sharded",
    "sign_keyless": "secure_train.integrity.sigstore",
    "signature_path": "secure_train.integrity.signed_file",
    "verify_audit_head": "secure_train.integrity.audit_head",
    "verify_bytes": "secure_train.integrity.signing",
    "verify_directory": "secure_train.integrity.sharded",
    "verify_file": "secure_train.integrity.signed_file",
    "verify_keyless": "secure_train.integrity.sigstore",
    "write_signed": "secure_train.integrity.signed_file",
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
