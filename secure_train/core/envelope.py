"""Canonical JSON and signed envelopes: the one way a signed JSON record is written and read.

:func:`canonical_json` is the byte form every hash and signature over JSON is computed on
(audit events, audit heads, gate attestations and approvals, data manifests, incident
bundles). Its rules, fixed here once:

- object keys sorted, compact separators (``,`` and ``:``), no whitespace;
- UTF-8, non-ASCII characters written as themselves (no ``\\u`` escapes);
- only ``dict`` (string keys), ``list``/``tuple``, ``str``, ``int``, finite ``float``,
  ``bool`` and ``None``: ``NaN``, ``Infinity`` and any other type are refused with a
  :class:`~secure_train.core.errors.DataError` naming where the value sits.

Writers that take free-form values (audit event payloads, custody parameters) first pass
them through :func:`json_value`, which turns what JSON cannot hold into strings.

A :class:`SignedEnvelope` is a JSON document::

    {"format": "secure-train-envelope", "version": 2, "kind": "attestation",
     "body": {...}, "key_fingerprint": "<sha256 of the signer's public key PEM>",
     "signature": "<base64 ECDSA over the canonical JSON of every other field>"}

The signature covers the format, version, kind, body and fingerprint, so neither the kind
(an approval passed off as an attestation) nor the version can be changed without breaking
it. Documents written before envelopes existed (``{"body" | "payload": ..., "signature",
"key_fingerprint"}``, ECDSA over the canonical JSON of the body alone) are *version 1*: read
only where the caller allows it (``legacy=``), refused elsewhere with a message naming both
versions.

Example:
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> canonical_json({"b": 1, "a": ["é", 2.5, None]})
    b'{"a":["\\xc3\\xa9",2.5,null],"b":1}'
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> env = SignedEnvelope.sign("attestation", {"passed": True}, key)
    >>> doc = SignedEnvelope.from_bytes(env.to_bytes(), kind="attestation")
    >>> doc.verify(key.public_key()).body
    {'passed': True}
    >>> doc.to_dict()["version"], doc.verifies(ec.generate_private_key(ec.SECP256R1()).public_key())
    (2, False)
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secure_train.core.errors import DataError, IntegrityError
from secure_train.core.keys import PrivateKey, PublicKeyLike, key_fingerprint, load_public_key
from secure_train.core.signing import sign_bytes, verify_bytes

__all__ = [
    "ENVELOPE_FORMAT",
    "ENVELOPE_VERSION",
    "MAX_ENVELOPE_BYTES",
    "SignedEnvelope",
    "canonical_json",
    "json_value",
    "pretty_json",
]

ENVELOPE_FORMAT = "secure-train-envelope"
"""The ``format`` field of every signed envelope."""
ENVELOPE_VERSION = 2
"""The envelope version this release writes and reads (1: the documents written before envelopes)."""
LEGACY_VERSION = 1
MAX_ENVELOPE_BYTES = 16 << 20
"""Largest envelope file :meth:`SignedEnvelope.read` reads (16 MiB)."""

_SIGNED_FIELDS = ("format", "version", "kind", "body", "key_fingerprint")
_FIELDS = frozenset((*_SIGNED_FIELDS, "signature"))


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""The one encoder of :func:`canonical_json` (built once: encoding small records stays cheap)."""
_SCALARS = frozenset((str, int, bool, type(None)))


def _problem(obj: Any) -> tuple[list[str], str] | None:
    """``(path parts, innermost first; reason)`` for the first value canonical JSON refuses, else None.

    The path is only built on failure: checking stays cheap for the common case.
    """
    kind = type(obj)
    if kind in _SCALARS or isinstance(obj, (str, int)):
        return None
    if kind is float or isinstance(obj, float):
        return None if math.isfinite(obj) else ([], f"{obj!r} (NaN and infinities are not JSON)")
    is_map = isinstance(obj, Mapping)
    if not is_map and not isinstance(obj, (list, tuple)):
        return [], f"a {kind.__name__} is not a JSON value"
    for key, value in obj.items() if is_map else enumerate(obj):
        if is_map and type(key) is not str and not isinstance(key, str):
            return [], f"key {key!r} is not a string"
        if type(value) in _SCALARS:
            continue
        found = _problem(value)
        if found is not None:
            found[0].append(f".{key}" if is_map else f"[{key}]")
            return found
    return None


def _check(obj: Any) -> None:
    """Refuse what canonical JSON cannot hold, naming where it sits (``$.checks[2].value``)."""
    found = _problem(obj)
    if found is not None:
        parts, reason = found
        raise DataError(f"canonical JSON: {reason} at $" + "".join(reversed(parts)))


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of ``obj`` (rules in the module docstring): what is hashed and signed.

    Raises:
        DataError: ``obj`` holds NaN, an infinity, a non-string key or a non-JSON type
            (the message names the place, e.g. ``$.payload.loss``).

    Example:
        >>> canonical_json({"z": [1, True], "a": "x"})
        b'{"a":"x","z":[1,true]}'
        >>> canonical_json({"loss": float("nan")})
        Traceback (most recent call last):
        ...
        secure_train.core.errors.DataError: canonical JSON: nan (NaN and infinities are not JSON) at $.loss
    """
    _check(obj)
    try:
        return _CANONICAL.encode(obj).encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate in a string
        raise DataError(f"canonical JSON: a string is not valid Unicode ({err.reason})") from None


def json_value(obj: Any) -> Any:
    """A copy of ``obj`` that :func:`canonical_json` accepts: for writers of free-form values.

    Mappings and sequences are copied (keys made strings the way ``json`` does), finite
    numbers, strings, booleans and ``None`` kept; a non-finite float becomes ``"nan"`` /
    ``"inf"`` / ``"-inf"`` and any other object its ``str()``.

    Example:
        >>> from pathlib import Path
        >>> json_value({"path": Path("a/b"), "loss": float("inf"), 1: (2, 3)})
        {'path': 'a/b', 'loss': 'inf', '1': [2, 3]}
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, Mapping):
        return {_key(k): json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_value(v) for v in obj]
    return str(obj)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    return str(key)


def pretty_json(obj: Any) -> bytes:
    """The file form of a JSON document: the canonical rules, indented, with a final newline.

    Example:
        >>> pretty_json({"b": 1, "a": 2})
        b'{\\n "a": 2,\\n "b": 1\\n}\\n'
    """
    _check(obj)
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _fingerprint_of(public_key: PublicKeyLike) -> tuple[Any, str]:
    key = load_public_key(public_key)
    return key, key_fingerprint(key)


@dataclass(frozen=True)
class SignedEnvelope:
    """A JSON body signed with an EC key, with its format, version and kind (module docstring).

    Build one with :meth:`sign`; read one with :meth:`read` / :meth:`from_bytes` /
    :meth:`from_dict`, then check it with :meth:`verify` (raises) or :meth:`verifies` (bool).
    Reading checks the shape, format, version and kind; only verifying checks the signature.

    Attributes:
        kind: what the body is (``attestation``, ``approval``, ``audit-head``, ...).
        body: the signed JSON object.
        key_fingerprint: SHA-256 of the signer's public key PEM (a hint: the verifier brings the key).
        signature: DER ECDSA signature over :meth:`signed_bytes`.
        version: :data:`ENVELOPE_VERSION`, or 1 for a document written before envelopes.
        source: where it was read from (named in errors).
    """

    kind: str
    body: dict[str, Any]
    key_fingerprint: str
    signature: bytes
    version: int = ENVELOPE_VERSION
    source: str = field(default="envelope", compare=False)

    @classmethod
    def sign(cls, kind: str, body: Mapping[str, Any], private_key: PrivateKey) -> SignedEnvelope:
        """Sign ``body`` (canonical JSON values only: see :func:`json_value`) as a ``kind`` envelope.

        Raises:
            DataError: ``body`` is not a mapping of canonical JSON values, or ``kind`` is empty.
        """
        if not isinstance(kind, str) or not kind:
            raise DataError(f"an envelope kind must be a non-empty string, got {kind!r}")
        if not isinstance(body, Mapping):
            raise DataError(f"an envelope body must be a JSON object, got {type(body).__name__}")
        plain = json.loads(canonical_json(dict(body)))  # a detached, checked copy
        unsigned = cls(kind, plain, key_fingerprint(private_key.public_key()), b"")
        return cls(kind, plain, unsigned.key_fingerprint, sign_bytes(unsigned.signed_bytes(), private_key))

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        if self.version == LEGACY_VERSION:
            return canonical_json(self.body)
        return canonical_json(
            {
                "format": ENVELOPE_FORMAT,
                "version": self.version,
                "kind": self.kind,
                "body": self.body,
                "key_fingerprint": self.key_fingerprint,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (version 2 layout)."""
        if self.version == LEGACY_VERSION:
            raise DataError(f"{self.source}: a version-1 document is read, never written; sign its body again")
        return {
            "format": ENVELOPE_FORMAT,
            "version": self.version,
            "kind": self.kind,
            "body": self.body,
            "key_fingerprint": self.key_fingerprint,
            "signature": base64.b64encode(self.signature).decode(),
        }

    def to_bytes(self) -> bytes:
        """The file bytes: :func:`pretty_json` of :meth:`to_dict`."""
        return pretty_json(self.to_dict())

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_bytes` to ``path`` atomically (a temporary file, then a rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        try:
            tmp.write_bytes(self.to_bytes())
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        return p

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls, doc: Any, *, kind: str | None = None, legacy: str | None = None, source: object = "envelope"
    ) -> SignedEnvelope:
        """Parse a document (unverified): shape, format, version and kind are checked.

        Args:
            doc: the parsed JSON.
            kind: the kind expected (``None``: any).
            legacy: accept a version-1 document whose body sits under this field (``"body"``
                for attestations and approvals, ``"payload"`` for audit heads); ``None``
                refuses version 1.
            source: named in errors (a path).

        Raises:
            IntegrityError: not an envelope, another format or version, another kind, or a
                malformed field; one line naming ``source``.
        """
        where = str(source)
        if not isinstance(doc, dict):
            raise IntegrityError(where, "not a signed secure-train document (not a JSON object)")
        if "format" not in doc and "version" not in doc and isinstance(doc.get("body", doc.get("payload")), dict):
            return cls._legacy(doc, kind, legacy, where)
        if doc.get("format") != ENVELOPE_FORMAT:
            raise IntegrityError(where, f"format {doc.get('format')!r}, expected {ENVELOPE_FORMAT!r}")
        version = doc.get("version")
        if version != ENVELOPE_VERSION:
            raise IntegrityError(
                where, f"envelope version {version!r}, this release reads version {ENVELOPE_VERSION} (newer writer?)"
            )
        if set(doc) != _FIELDS:
            raise IntegrityError(where, f"envelope fields {sorted(doc)}, expected {sorted(_FIELDS)}")
        if not isinstance(doc["kind"], str) or not isinstance(doc["body"], dict):
            raise IntegrityError(where, "malformed envelope (kind must be a string, body an object)")
        if kind is not None and doc["kind"] != kind:
            raise IntegrityError(where, f"is a {doc['kind']!r} envelope, expected {kind!r}")
        return cls(doc["kind"], doc["body"], str(doc["key_fingerprint"]), _b64(doc["signature"], where), version, where)

    @classmethod
    def _legacy(cls, doc: dict[str, Any], kind: str | None, legacy: str | None, where: str) -> SignedEnvelope:
        field_name = "body" if isinstance(doc.get("body"), dict) else "payload"
        if legacy != field_name:
            raise IntegrityError(
                where,
                f"envelope version {LEGACY_VERSION} (no format field: written before signed envelopes), "
                f"expected version {ENVELOPE_VERSION}; sign it again",
            )
        if not isinstance(doc.get("signature"), str):
            raise IntegrityError(where, "not a signed secure-train document (no signature)")
        body = doc[field_name]
        if body.get("format") == ENVELOPE_FORMAT:  # an envelope's signed fields passed off as a v1 body
            raise IntegrityError(where, "a version-1 body may not itself be an envelope")
        return cls(
            kind or "", body, str(doc.get("key_fingerprint", "")), _b64(doc["signature"], where), LEGACY_VERSION, where
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, kind: str | None = None, legacy: str | None = None, source: object = "envelope"
    ) -> SignedEnvelope:
        """Parse envelope file bytes (unverified); see :meth:`from_dict`."""
        try:
            doc = json.loads(bytes(data).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise IntegrityError(str(source), "not a signed secure-train document (not UTF-8 JSON)") from None
        return cls.from_dict(doc, kind=kind, legacy=legacy, source=source)

    @classmethod
    def read(
        cls,
        path: str | os.PathLike[str],
        *,
        kind: str | None = None,
        legacy: str | None = None,
        max_bytes: int = MAX_ENVELOPE_BYTES,
    ) -> SignedEnvelope:
        """Read an envelope file (size-bounded, unverified); see :meth:`from_dict`.

        Raises:
            IntegrityError: missing, too large, or not an envelope of that kind and version.
        """
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as err:
            raise IntegrityError(p, f"cannot be read ({err.strerror or 'no such file'})") from None
        if len(data) > max_bytes:
            raise IntegrityError(p, f"larger than {max_bytes} bytes, not a signed secure-train document")
        return cls.from_bytes(data, kind=kind, legacy=legacy, source=p)

    # -- verifying -------------------------------------------------------------------------
    def verifies(self, public_key: PublicKeyLike) -> bool:
        """Whether the signature is valid under ``public_key`` (never raises for a bad signature)."""
        try:
            data = self.signed_bytes()
        except DataError:
            return False
        return verify_bytes(data, self.signature, load_public_key(public_key))

    def verify(self, public_key: PublicKeyLike) -> SignedEnvelope:
        """Return ``self`` when the signature is valid under ``public_key``.

        Raises:
            IntegrityError: tampered with, or signed by another key (the key the envelope names,
                when it is not the given one, is named too).
        """
        key, fingerprint = _fingerprint_of(public_key)
        if not self.verifies(key):
            named = self.key_fingerprint
            hint = f": it names key {named[:16]}..." if named and named != fingerprint else ""
            given = f"the given key {fingerprint[:16]}..."
            raise IntegrityError(self.source, f"signature does not verify under {given} (tampered or foreign{hint})")
        return self


def _b64(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise IntegrityError(where, "malformed signature (not base64)") from None
