"""Signing keys: generate, load from a path or an environment variable, refuse unsafe files.

Keys are EC (NIST P-256 by default, P-384 / P-521 on request) in PEM, so that signatures
interoperate with OpenSSF ``model_signing`` (``model_signing verify key``). A private key
is encrypted with a passphrase when the environment variable named by ``passphrase_env``
is set; a private key file readable by group or others is refused. Error messages name
files and environment variables, never key material: a value that is not a plain path
(several lines, a PEM marker, or very long) is never echoed. PEM text may carry lines
before the block (``Bag Attributes`` / ``Key Attributes`` from an exported key, a
certificate): the key block is found and parsed.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> priv, pub = generate_keypair(os.path.join(d, "key.pem"), os.path.join(d, "key.pub"), passphrase_env=None)
    >>> oct(os.stat(priv).st_mode & 0o777)
    '0o600'
    >>> key = load_private_key(priv)
    >>> key_fingerprint(load_public_key(pub)) == key_fingerprint(key.public_key())
    True
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.core.errors import ConfigError
from secure_train.core.safe_io import read_bytes

__all__ = [
    "CURVES",
    "DEFAULT_KEY_ENV",
    "DEFAULT_PASSPHRASE_ENV",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
]

MAX_KEY_FILE_BYTES = 2**20
"""Largest key file read (size-checked before reading: a huge or sparse file is refused)."""

DEFAULT_KEY_ENV = "SECURE_TRAIN_SIGNING_KEY"
"""Environment variable holding a private key path or its PEM text."""

DEFAULT_PASSPHRASE_ENV = "SECURE_TRAIN_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
"""Environment variable holding the private key's passphrase (optional)."""

CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
"""Supported curves (those ``model_signing`` accepts), by NIST name."""

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey
PublicKeyLike: TypeAlias = "str | bytes | os.PathLike[str] | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey"

if TYPE_CHECKING:
    PrivateKeyArg: TypeAlias = "PrivateKey | str | os.PathLike[str]"
    PublicKeyArg: TypeAlias = "PublicKey | str | os.PathLike[str]"
else:
    # What jsonargparse (LightningCLI recipes) sees. With a key class in the union it replaces
    # a value naming an existing file by that file's *contents*, which put the PEM private key
    # into the run's config.yaml. A key stays a path or PEM text there; Python callers may
    # still pass key objects.
    PrivateKeyArg = str | os.PathLike
    PublicKeyArg = str | os.PathLike
"""Type of a constructor's key argument: a key object, a path, or PEM text."""


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{40,}")  # a key body pasted where a path goes


def _looks_like_pem(value: str | bytes) -> bool:
    """PEM text (possibly after attribute lines), or anything a path would not be: never treated as a path."""
    text = value.encode(errors="replace") if isinstance(value, str) else value
    return b"-----BEGIN" in text or b"\n" in text or len(text) > 1024


def _pem_bytes(value: str | bytes, kind: bytes) -> bytes:
    """The first PEM block whose label ends with ``kind`` (``PRIVATE KEY`` / ``PUBLIC KEY``).

    Leading lines (``Bag Attributes``, ``localKeyID: ...``) and other blocks are skipped; a
    value with literal ``\\n`` escapes (from a one-line secret store) is unescaped first.
    """
    text = value.encode(errors="replace") if isinstance(value, str) else value
    if b"\n" not in text and b"\\n" in text:
        text = text.replace(b"\\n", b"\n")
    for match in _PEM_BLOCK.finditer(text):
        if match.group(1).endswith(kind):
            return match.group(0) + b"\n"
    return text


def _shown(value: str | os.PathLike[str]) -> str:
    """``value`` as a file name in a message, unless it could be key material."""
    text = os.fspath(value)
    if _looks_like_pem(text) or len(text) > 256 or _BASE64_BLOB.fullmatch(text):
        return "(value not shown)"
    return text


def _passphrase(passphrase_env: str | None) -> bytes | None:
    if not passphrase_env:
        return None
    value = os.environ.get(passphrase_env)
    return value.encode() if value else None


def key_fingerprint(public_key: PublicKey) -> str:
    """SHA-256 of the public key's PEM (SubjectPublicKeyInfo): the ``model_signing`` key hint."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def generate_keypair(
    private_path: str | os.PathLike[str],
    public_path: str | os.PathLike[str],
    passphrase_env: str | None = DEFAULT_PASSPHRASE_ENV,
    *,
    curve: str = "P-256",
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write a new EC private key (mode 0600) and its public key, both PEM.

    Args:
        private_path: where to write the private key (PKCS#8 PEM, created with mode 0600).
        public_path: where to write the public key (SubjectPublicKeyInfo PEM).
        passphrase_env: name of the environment variable holding a passphrase; when that
            variable is set and non-empty the private key is encrypted with it. ``None``:
            never encrypt.
        curve: ``"P-256"`` (default), ``"P-384"`` or ``"P-521"``.
        overwrite: replace existing files instead of refusing.

    Returns:
        ``(private_path, public_path)`` as paths.

    Raises:
        ConfigError: unknown curve, a file exists and ``overwrite`` is False, or a file
            cannot be written (one line naming the paths).
    """
    if curve not in CURVES:
        raise ConfigError(f"curve must be one of {sorted(CURVES)}, got {curve!r}")
    priv, pub = Path(private_path), Path(public_path)
    if priv.resolve() == pub.resolve():
        raise ConfigError(f"private_path and public_path must differ, both are {priv}")
    for p in (priv, pub):
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} already exists; remove it or pass overwrite=True (--force)")
    key = ec.generate_private_key(CURVES[curve])
    password = _passphrase(passphrase_env)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        priv.parent.mkdir(parents=True, exist_ok=True)
        pub.parent.mkdir(parents=True, exist_ok=True)
        if priv.exists():
            priv.unlink()
        fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(priv, 0o600)  # in case the umask or filesystem widened it
        pub.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    except OSError as err:
        raise ConfigError(f"cannot write the key pair to {priv} / {pub}: {err.strerror or err}") from None
    return priv, pub


def _check_permissions(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - POSIX permission bits only
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"private key {path} is accessible by group or others (mode {stat.filemode(mode)}); run: chmod 600 {path}"
        )


def load_private_key(
    path: str | os.PathLike[str] | None = None,
    *,
    env: str = DEFAULT_KEY_ENV,
    passphrase_env: str | None = DEFAULT_PASSPHRASE_ENV,
) -> PrivateKey:
    """Load an EC private key from ``path``, else from the environment variable ``env``.

    ``env`` (or ``path``) may hold a file path or the PEM text itself, with or without
    attribute lines before the ``-----BEGIN`` line. A key file readable, writable or
    executable by group or others is refused. The passphrase (if the key is encrypted)
    comes from the environment variable ``passphrase_env``.

    Raises:
        ConfigError: no key given, file missing or too permissive, wrong or missing
            passphrase, not a PEM private key, or not a supported EC key. The message names
            the file or variable, never the key.
    """
    source: str
    if path is None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"no signing key: give a private key path or set ${env} (a path or PEM text)")
        if _looks_like_pem(value):
            pem, source = value.encode(errors="replace"), f"from ${env}"
        else:
            p = Path(value).expanduser()
            if not p.is_file():  # the value is not echoed: it could be a mangled key
                raise ConfigError(f"${env} is neither PEM private key text nor the path of an existing file")
            _check_permissions(p)
            pem, source = read_bytes(p, what="key file", max_bytes=MAX_KEY_FILE_BYTES), str(p)
    elif _looks_like_pem(os.fspath(path)):
        pem, source = os.fspath(path).encode(errors="replace"), "(PEM text given as the key path)"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"private key {_shown(p)}: no such file")
        _check_permissions(p)
        pem, source = read_bytes(p, what="key file", max_bytes=MAX_KEY_FILE_BYTES), str(p)
    pem = _pem_bytes(pem, b"PRIVATE KEY")
    password = _passphrase(passphrase_env)
    try:
        key = serialization.load_pem_private_key(pem, password)
    except TypeError:
        if password is None:
            raise ConfigError(f"private key {source} is encrypted: set ${passphrase_env} to its passphrase") from None
        raise ConfigError(f"private key {source} is not encrypted but ${passphrase_env} is set; unset it") from None
    except ValueError:
        raise ConfigError(f"private key {source}: not a PEM private key, or wrong passphrase") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in {c.name for c in CURVES.values()}:
        raise ConfigError(f"private key {source}: must be an EC key on {sorted(CURVES)}, got {type(key).__name__}")
    return key


def load_public_key(path_or_pem: PublicKeyLike) -> PublicKey:
    """Load an EC public key from a PEM path, PEM text/bytes, or a key object.

    A private key object is accepted and its public half returned.

    Raises:
        ConfigError: missing file, not a PEM public key, or not a supported EC key.
    """
    if isinstance(path_or_pem, ec.EllipticCurvePrivateKey):
        return path_or_pem.public_key()
    if isinstance(path_or_pem, ec.EllipticCurvePublicKey):
        return path_or_pem
    if isinstance(path_or_pem, (str, bytes)) and _looks_like_pem(path_or_pem):
        pem, source = _pem_bytes(path_or_pem, b"PUBLIC KEY"), "<PEM text>"
    else:
        p = Path(os.fsdecode(path_or_pem)).expanduser()
        if not p.is_file():
            raise ConfigError(f"public key {_shown(p)}: no such file")
        pem, source = _pem_bytes(read_bytes(p, what="key file", max_bytes=MAX_KEY_FILE_BYTES), b"PUBLIC KEY"), str(p)
    if b"PRIVATE KEY-----" in pem and b"PUBLIC KEY-----" not in pem:
        raise ConfigError(f"public key {source}: this is a PRIVATE key; give the public key (.pub)")
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ConfigError(f"public key {source}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in {c.name for c in CURVES.values()}:
        raise ConfigError(f"public key {source}: must be an EC key on {sorted(CURVES)}, got {type(key).__name__}")
    return key
