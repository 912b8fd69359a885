"""Approver keyring: who may approve a release, with which key, in which roles.

An approval is only as good as the key that signed it. The keyring is a YAML (or JSON) file
that a release policy names (``keyring: approvers.yaml``)::

    approvers:
      alice:
        public_key: keys/alice.pub      # a path (relative to this file) or the PEM text
        roles: [security]
      bob:
        public_key: keys/bob.pub
        roles: [ml-lead, security]

An approval counts when the approver it names is in the keyring, its signature verifies under
*that approver's* key, and its role is one the keyring allows that approver. Two approvers may
not share a key (one person would then be two approvers).

Example:
    >>> from cryptography.hazmat.primitives import serialization
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    ...     serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    >>> ring = ApproverKeyring.from_dict({"approvers": {"alice": {"public_key": pem, "roles": ["security"]}}})
    >>> ring.roles("alice"), ring.roles("mallory")
    (['security'], [])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.core.keys import PublicKey, key_fingerprint, load_public_key

__all__ = ["Approver", "ApproverKeyring"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
"""Approver names, roles and targets: 1-64 letters, digits or `` ._@-``."""


@dataclass(frozen=True)
class Approver:
    """One keyring entry: a name, its public key (and fingerprint) and the roles it may approve in."""

    name: str
    public_key: PublicKey
    fingerprint: str
    roles: tuple[str, ...]


class ApproverKeyring:
    """Approvers mapped to their own public keys and allowed roles.

    Args:
        approvers: the entries; names and key fingerprints must be unique.
        source: where the keyring came from (named in messages).

    Raises:
        ConfigError: an empty keyring, a bad name or role, or two approvers with one key.
    """

    def __init__(self, approvers: list[Approver], *, source: str = "keyring") -> None:
        self.source = source
        if not approvers:
            raise ConfigError(f"{source}: no approvers")
        self._by_name: dict[str, Approver] = {}
        by_key: dict[str, str] = {}
        for a in approvers:
            if a.name in self._by_name:
                raise ConfigError(f"{source}: approver {a.name!r} listed twice")
            if a.fingerprint in by_key:
                raise ConfigError(
                    f"{source}: approvers {by_key[a.fingerprint]!r} and {a.name!r} share one public key; "
                    "every approver needs their own key"
                )
            self._by_name[a.name] = a
            by_key[a.fingerprint] = a.name

    @classmethod
    def from_dict(
        cls, data: Any, *, base_dir: str | os.PathLike[str] | None = None, source: str = "keyring"
    ) -> ApproverKeyring:
        """Build from ``{"approvers": {NAME: {"public_key": PATH_OR_PEM, "roles": [...]}}}``.

        Relative key paths are taken from ``base_dir`` (the keyring file's folder).
        """
        if not isinstance(data, dict) or set(data) != {"approvers"} or not isinstance(data["approvers"], dict):
            raise ConfigError(f"{source}: expected a mapping with one key 'approvers' (name -> public_key, roles)")
        entries = []
        for name, spec in data["approvers"].items():
            where = f"{source}: approvers.{name}"
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise ConfigError(f"{source}: approver name must be 1-64 letters, digits or ' ._@-', got {name!r}")
            if not isinstance(spec, dict) or set(spec) - {"public_key", "roles"} or "public_key" not in spec:
                raise ConfigError(f"{where}: expected {{public_key: PATH_OR_PEM, roles: [ROLE, ...]}}")
            roles = spec.get("roles")
            if (
                not isinstance(roles, list)
                or not roles
                or not all(isinstance(r, str) and NAME_RE.match(r) for r in roles)
            ):
                raise ConfigError(f"{where}.roles must be a non-empty list of role names")
            key_spec = spec["public_key"]
            if not isinstance(key_spec, str) or not key_spec.strip():
                raise ConfigError(f"{where}.public_key must be a path or PEM text")
            if not key_spec.lstrip().startswith("-----BEGIN"):
                path = Path(key_spec).expanduser()
                key_spec = str(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)
            try:
                key = load_public_key(key_spec)
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            entries.append(Approver(name, key, key_fingerprint(key), tuple(roles)))
        return cls(entries, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ApproverKeyring:
        """Read a keyring file (YAML or JSON), size- and alias-bounded."""
        from secure_train.core.safe_io import load_yaml_file

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"keyring {p}: no such file")
        return cls.from_dict(load_yaml_file(p, what="keyring"), base_dir=p.parent, source=f"keyring {p}")

    def get(self, name: str) -> Approver | None:
        """The approver called ``name``, or ``None``."""
        return self._by_name.get(name)

    def roles(self, name: str) -> list[str]:
        """The roles ``name`` may approve in (``[]`` for someone not in the keyring)."""
        a = self._by_name.get(name)
        return list(a.roles) if a is not None else []

    def by_fingerprint(self, fingerprint: str) -> Approver | None:
        """The approver whose public key has this fingerprint, or ``None``."""
        return next((a for a in self._by_name.values() if a.fingerprint == fingerprint), None)

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)
