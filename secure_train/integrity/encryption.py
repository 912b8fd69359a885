"""Encryption at rest: AES-256-GCM in authenticated chunks (``cryptography``'s ``AESGCM``).

The file layout is ``MAGIC | nonce prefix (8 bytes) | chunk size (4 bytes, big endian) |
chunks``; each chunk is encrypted with the nonce ``prefix || counter`` and authenticated
together with the header, its index and whether it is the last one, so chunks cannot be
reordered, dropped or the file truncated without :func:`decrypt` failing. Chunking keeps
each GCM call under the library's 2 GiB limit and memory bounded per call.

The 32-byte key comes from :func:`load_encryption_key`: a path to a 0600 file, or the
environment variable ``SECURE_TRAIN_ENCRYPTION_KEY``, holding the key as 64 hex
characters or base64. Signatures are computed over the ciphertext (the bytes on disk),
so a checkpoint is verified before it is decrypted.

Example:
    >>> import os
    >>> key = os.urandom(32)
    >>> blob = encrypt(b"weights" * 10, key, chunk_size=16)
    >>> decrypt(blob, key) == b"weights" * 10
    True
    >>> is_encrypted(blob), is_encrypted(b"PK\\x03\\x04")
    (True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_int

__all__ = [
    "DEFAULT_ENCRYPTION_KEY_ENV",
    "MAGIC",
    "decrypt",
    "encrypt",
    "encryption_info",
    "is_encrypted",
    "load_encryption_key",
]

MAGIC = b"STAESGCM1\n"
DEFAULT_ENCRYPTION_KEY_ENV = "SECURE_TRAIN_ENCRYPTION_KEY"
_CHUNK = 16 << 20
_TAG = 16


def _header(prefix: bytes, chunk_size: int) -> bytes:
    return MAGIC + prefix + struct.pack(">I", chunk_size)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">IB", index, int(last))


def _check_key(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != 32:
        raise ConfigError(
            f"encryption key must be 32 bytes (AES-256), got {len(key) if isinstance(key, bytes) else key!r}"
        )
    return AESGCM(key)


def is_encrypted(data: bytes | memoryview) -> bool:
    """Whether ``data`` starts with this module's header."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def encryption_info(key: bytes) -> dict[str, Any]:
    """The (non-secret) description recorded in a signature: scheme and a key id."""
    return {"scheme": "AES-256-GCM-chunked", "key_id": hashlib.sha256(b"secure-train key id" + key).hexdigest()[:16]}


def encrypt(data: bytes | memoryview, key: bytes, *, chunk_size: int = _CHUNK) -> bytes:
    """Encrypt ``data`` with AES-256-GCM in authenticated chunks of ``chunk_size`` bytes."""
    aes = _check_key(key)
    require_int("encrypt", "chunk_size", chunk_size, minimum=1, maximum=2**31 - 1)
    prefix = os.urandom(8)
    header = _header(prefix, chunk_size)
    view = memoryview(data).cast("B")
    n = max(1, -(-view.nbytes // chunk_size))
    parts = [header]
    for i in range(n):
        chunk = view[i * chunk_size : (i + 1) * chunk_size]
        parts.append(aes.encrypt(prefix + struct.pack(">I", i), bytes(chunk), _aad(header, i, i == n - 1)))
    return b"".join(parts)


def decrypt(blob: bytes | memoryview, key: bytes) -> bytes:
    """Decrypt :func:`encrypt`'s output.

    Raises:
        ValueError: not encrypted by this module, wrong key, or modified / truncated data.
    """
    aes = _check_key(key)
    view = memoryview(blob).cast("B")
    if not is_encrypted(view):
        raise ValueError("not an AES-256-GCM encrypted secure-train file")
    head_len = len(MAGIC) + 12
    if view.nbytes < head_len + _TAG:
        raise ValueError("encrypted file is truncated")
    header = bytes(view[:head_len])
    prefix = header[len(MAGIC) : len(MAGIC) + 8]
    (chunk_size,) = struct.unpack(">I", header[-4:])
    body = view[head_len:]
    step = chunk_size + _TAG
    n = max(1, -(-body.nbytes // step))
    out = []
    for i in range(n):
        chunk = body[i * step : (i + 1) * step]
        try:
            out.append(aes.decrypt(prefix + struct.pack(">I", i), bytes(chunk), _aad(header, i, i == n - 1)))
        except InvalidTag:
            raise ValueError(f"decryption failed at chunk {i + 1} of {n}: wrong key, or data modified") from None
    return b"".join(out)


def _parse_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise ConfigError(f"encryption key from {source} must be 32 bytes as 64 hex characters or base64")
    return key


def load_encryption_key(
    path: str | os.PathLike[str] | None = None, *, env: str = DEFAULT_ENCRYPTION_KEY_ENV
) -> bytes | None:
    """The AES-256 key from a 0600 key file, else from ``$env``; ``None`` when neither is given."""
    if path is None:
        value = os.environ.get(env)
        return _parse_key(value, f"${env}") if value else None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"encryption key {p}: no such file")
    mode = p.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"encryption key {p} is accessible by group or others ({stat.filemode(mode)}); chmod 600 {p}")
    from secure_train.core.safe_io import read_text  # size-checked, UTF-8: a huge or binary file is one error line

    return _parse_key(read_text(p, what="encryption key", max_bytes=2**16), str(p))
