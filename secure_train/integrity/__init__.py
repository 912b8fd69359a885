"""Checkpoint integrity: keys, signatures, signed checkpoints, verified loading, safe export."""

from secure_train.integrity.keys import generate_keypair, key_fingerprint, load_private_key, load_public_key
from secure_train.integrity.provenance import collect_provenance
from secure_train.integrity.signing import sha256_file, sign_bytes, verify_bytes

__all__ = [
    "collect_provenance",
    "generate_keypair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "sha256_file",
    "sign_bytes",
    "verify_bytes",
]
