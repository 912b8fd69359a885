"""Checkpoint integrity: keys, signatures, signed checkpoints, verified loading, safe export.

- :func:`generate_keypair`, :func:`load_private_key`, :func:`load_public_key`: EC P-256 keys.
- :class:`CheckpointSigning` (callback) / :class:`SignedCheckpointIO` (plugin): every
  checkpoint Lightning writes gets a ``model_signing``-compatible ``.sig`` sidecar; resume
  verifies before unpickling.
- :func:`load_checkpoint`: verify, then ``torch.load(weights_only=True)``.
- :func:`export_checkpoint`: verified checkpoint to signed safetensors.
- :func:`sign_audit_head` / :func:`verify_audit_head`: truncation-evident audit log.
"""

from secure_train.integrity.audit_head import HeadCheck, sign_audit_head, verify_audit_head
from secure_train.integrity.callback import CheckpointSigning
from secure_train.integrity.checkpoint_io import SignedCheckpointIO
from secure_train.integrity.encryption import decrypt, encrypt, load_encryption_key
from secure_train.integrity.errors import IntegrityError
from secure_train.integrity.export import ExportContext, ExportResult, export_checkpoint
from secure_train.integrity.keys import generate_keypair, key_fingerprint, load_private_key, load_public_key
from secure_train.integrity.loading import load_checkpoint
from secure_train.integrity.provenance import collect_provenance
from secure_train.integrity.signed_file import SignedFile, signature_path, verify_file, write_signed
from secure_train.integrity.signing import sha256_file, sign_bytes, verify_bytes
from secure_train.integrity.sigstore import sign_keyless, verify_keyless

__all__ = [
    "CheckpointSigning",
    "ExportContext",
    "ExportResult",
    "HeadCheck",
    "IntegrityError",
    "SignedCheckpointIO",
    "SignedFile",
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
    "sign_keyless",
    "signature_path",
    "verify_audit_head",
    "verify_bytes",
    "verify_file",
    "verify_keyless",
    "write_signed",
]
