"""Signature and hashing primitives: ECDSA over bytes, SHA-256 of files.

``sign_bytes`` / ``verify_bytes`` are what every other signed artifact of secure-train
(checkpoint sidecars, the audit head, data manifests, gate attestations) is built on.
The hash that goes with ECDSA follows the curve, as ``model_signing`` does: SHA-256 for
P-256, SHA-384 for P-384, SHA-512 for P-521.

Example:
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> sig = sign_bytes(b"hello", key)
    >>> verify_bytes(b"hello", sig, key.public_key()), verify_bytes(b"hellO", sig, key.public_key())
    (True, False)
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.core.keys import PrivateKey, PublicKeyLike, load_public_key
from secure_train.core.safe_io import sha256_file as _sha256_file

__all__ = ["CHUNK_SIZE", "ec_hash_for", "sha256_file", "sign_bytes", "verify_bytes"]

CHUNK_SIZE = 8 << 20
"""Bytes read per call when hashing files (8 MiB)."""


def ec_hash_for(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    """The hash ECDSA uses with ``curve`` (the pairing ``model_signing`` records and expects)."""
    size = curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    raise ValueError(f"unsupported curve {curve.name}")


def sign_bytes(data: bytes, private_key: PrivateKey) -> bytes:
    """DER-encoded ECDSA signature of ``data``.

    Args:
        data: the exact bytes to sign.
        private_key: an EC private key (see :func:`~secure_train.core.keys.load_private_key`).
    """
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"private_key must be an EC private key, got {type(private_key).__name__}")
    return private_key.sign(bytes(data), ec.ECDSA(ec_hash_for(private_key.curve)))


def verify_bytes(data: bytes, signature: bytes, public_key: PublicKeyLike) -> bool:
    """True when ``signature`` is a valid ECDSA signature of ``data`` under ``public_key``.

    ``public_key`` may be a key object, a PEM path or PEM text. Returns False (never
    raises) for a wrong, malformed or foreign signature.
    """
    key = load_public_key(public_key)
    try:
        key.verify(bytes(signature), bytes(data), ec.ECDSA(ec_hash_for(key.curve)))
    except (InvalidSignature, ValueError):
        return False
    return True


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes: :func:`secure_train.core.safe_io.sha256_file`, read in
    :data:`CHUNK_SIZE` chunks."""
    return _sha256_file(path, chunk_size=CHUNK_SIZE)
