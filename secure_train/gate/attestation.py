"""Signed gate attestations and approval records, bound to a checkpoint's SHA-256.

An **attestation** says: the checkpoint with digest ``D`` was run through the suite with
digest ``S`` and these checks (name, metric, value, threshold, pass/fail) gave this verdict.
An **approval** says: person ``NAME`` in role ``ROLE`` approved digest ``D`` for ``TARGET``.
Both are JSON files ``{"body": {...}, "signature": <base64 ECDSA over the canonical body>}``
signed with the project key (:mod:`secure_train.integrity.keys`). Files live next to the
checkpoint: ``CKPT.attestation.json`` and ``CKPT.approvals/ROLE-NAME.json``.

:class:`ReleasePolicy` (a YAML file) decides what an export needs: a passing attestation for
the exact digest (default on), optionally a pinned suite digest, and per target (e.g.
``production``) a list of roles that must each have approved. :meth:`ReleasePolicy.export_check`
returns a check for :func:`~secure_train.integrity.export_checkpoint` that enforces it and
records every decision in the audit log.

Example:
    >>> import tempfile, os
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> body = {"kind": "attestation", "checkpoint_sha256": "ab" * 32, "passed": True}
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt.attestation.json")
    >>> write_signed_json(body, path, key)
    >>> read_signed_json(path, key.public_key())["passed"]
    True
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from secure_train.audit import AuditLog
from secure_train.errors import ConfigError, SecureTrainError
from secure_train.integrity.keys import PrivateKey, PublicKeyLike, key_fingerprint, load_public_key
from secure_train.integrity.signing import sha256_file, sign_bytes, verify_bytes

__all__ = [
    "GateRefused",
    "ReleasePolicy",
    "approval_dir",
    "attestation_path",
    "read_signed_json",
    "write_approval",
    "write_signed_json",
]

ATTESTATION_SUFFIX = ".attestation.json"
APPROVALS_SUFFIX = ".approvals"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


class GateRefused(SecureTrainError):
    """An export (or other release step) refused by the gate policy; the message says why."""


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def attestation_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``CKPT.attestation.json``."""
    return Path(os.fspath(checkpoint) + ATTESTATION_SUFFIX)


def approval_dir(checkpoint: str | os.PathLike[str]) -> Path:
    """``CKPT.approvals/``."""
    return Path(os.fspath(checkpoint) + APPROVALS_SUFFIX)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_signed_json(body: dict[str, Any], path: str | os.PathLike[str], private_key: PrivateKey) -> None:
    """Sign the canonical JSON of ``body`` and write ``{"body", "signature", "key_fingerprint"}``."""
    signature = base64.b64encode(sign_bytes(_canonical(body), private_key)).decode()
    doc = {"body": body, "signature": signature, "key_fingerprint": key_fingerprint(private_key.public_key())}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, p)


def read_signed_json(path: str | os.PathLike[str], public_key: PublicKeyLike) -> dict[str, Any]:
    """The body of a signed JSON file after its signature verifies under ``public_key``.

    Raises:
        GateRefused: missing file, not a signed document, or a bad / foreign signature.
    """
    p = Path(path)
    if not p.is_file():
        raise GateRefused(f"{p}: no such file")
    try:
        doc = json.loads(p.read_text())
        body, signature = doc["body"], base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
        raise GateRefused(f"{p}: not a signed secure-train document") from None
    if not isinstance(body, dict) or not verify_bytes(_canonical(body), signature, public_key):
        raise GateRefused(f"{p}: signature does not verify under the given public key (tampered or foreign)")
    return body


def write_approval(
    checkpoint: str | os.PathLike[str],
    *,
    by: str,
    role: str,
    private_key: PrivateKey,
    target: str = "production",
    note: str = "",
    audit_log: AuditLog | None = None,
) -> Path:
    """Write a signed approval of ``checkpoint``'s exact digest by ``by`` in ``role`` for ``target``."""
    for name, value in (("by", by), ("role", role), ("target", target)):
        if not _NAME_RE.match(value):
            raise ConfigError(f"{name} must be 1-64 letters, digits or ' ._@-', got {value!r}")
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ConfigError(f"{ckpt}: no such checkpoint")
    digest = sha256_file(ckpt)
    body = {
        "kind": "approval",
        "checkpoint": ckpt.name,
        "checkpoint_sha256": digest,
        "by": by,
        "role": role,
        "target": target,
        "note": note,
        "time": now(),
    }
    path = approval_dir(ckpt) / f"{role}-{by}.json".replace(" ", "_")
    write_signed_json(body, path, private_key)
    if audit_log is not None:
        audit_log.record(
            "gate.approved", source="approve", checkpoint=str(ckpt), sha256=digest, by=by, role=role, target=target
        )
    return path


@dataclass
class ReleasePolicy:
    """What a checkpoint needs before export.

    Args:
        require_attestation: a passing, signed attestation for the exact digest.
        suite_sha256: when set, the attestation must come from this exact suite file.
        targets: per target name, ``{"require_roles": [...]}``: every listed role must have a
            signed approval of the exact digest for that target.

    Example:
        >>> policy = ReleasePolicy.from_dict({"targets": {"production": {"require_roles": ["security"]}}})
        >>> policy.required_roles("production"), policy.required_roles("staging")
        (['security'], [])
    """

    require_attestation: bool = True
    suite_sha256: str | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleasePolicy:
        unknown = set(data) - {"require_attestation", "suite_sha256", "targets"}
        if unknown:
            raise ConfigError(f"unknown release policy keys: {sorted(unknown)}")
        targets = data.get("targets") or {}
        if not isinstance(targets, dict):
            raise ConfigError(f"policy targets must be a mapping, got {type(targets).__name__}")
        for name, spec in targets.items():
            roles = (spec or {}).get("require_roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise ConfigError(f"policy targets.{name}.require_roles must be a list of role names")
        return cls(bool(data.get("require_attestation", True)), data.get("suite_sha256"), dict(targets))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReleasePolicy:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"release policy {p}: no such file")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"release policy {p}: bad YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"release policy {p}: expected a mapping")
        return cls.from_dict(data.get("release", data))

    def required_roles(self, target: str | None) -> list[str]:
        if target is None:
            return []
        return list((self.targets.get(target) or {}).get("require_roles", []))

    # -- enforcement ----------------------------------------------------------------------
    def check(
        self,
        checkpoint: str | os.PathLike[str],
        public_key: PublicKeyLike,
        *,
        digest: str | None = None,
        target: str | None = None,
        attestation: str | os.PathLike[str] | None = None,
        audit_log: AuditLog | None = None,
    ) -> dict[str, Any]:
        """Enforce the policy for ``checkpoint``; return the attestation body (or ``{}``).

        Raises:
            GateRefused: no / tampered / foreign / failing attestation, a different digest or
                suite, or a missing approval. The refusal is recorded in ``audit_log``.
        """
        ckpt = Path(checkpoint)
        digest = digest or sha256_file(ckpt)
        key = load_public_key(public_key)
        try:
            body = self._check(ckpt, key, digest, target, attestation)
        except GateRefused as err:
            if audit_log is not None:
                audit_log.record(
                    "gate.release_refused", source="ReleasePolicy", checkpoint=str(ckpt), sha256=digest,
                    target=target, reason=str(err),
                )  # fmt: skip
            raise
        if audit_log is not None:
            audit_log.record(
                "gate.release_allowed", source="ReleasePolicy", checkpoint=str(ckpt), sha256=digest,
                target=target, suite_sha256=body.get("suite_sha256"), approvals=body.get("_approvals", []),
            )  # fmt: skip
        return body

    def _check(
        self,
        ckpt: Path,
        key: Any,
        digest: str,
        target: str | None,
        attestation: str | os.PathLike[str] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.require_attestation:
            path = Path(attestation) if attestation is not None else attestation_path(ckpt)
            if not path.is_file():
                raise GateRefused(f"{ckpt}: no gate attestation ({path}); run `secure-train gate` first")
            body = read_signed_json(path, key)
            if body.get("kind") != "attestation":
                raise GateRefused(f"{path}: not a gate attestation")
            if body.get("checkpoint_sha256") != digest:
                raise GateRefused(
                    f"{path}: attests digest {str(body.get('checkpoint_sha256'))[:16]}..., "
                    f"but {ckpt.name} has {digest[:16]}... (another or modified checkpoint)"
                )
            if body.get("passed") is not True:
                failed = [c.get("name") for c in body.get("checks", []) if not c.get("passed")]
                raise GateRefused(f"{path}: the gate failed for {ckpt.name} (failed checks: {', '.join(failed)})")
            if self.suite_sha256 and body.get("suite_sha256") != self.suite_sha256:
                raise GateRefused(
                    f"{path}: made with suite {body.get('suite_sha256')}, policy pins {self.suite_sha256}"
                )
        roles = self.required_roles(target)
        found: list[dict[str, Any]] = []
        if roles:
            have: dict[str, dict[str, Any]] = {}
            folder = approval_dir(ckpt)
            for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                try:
                    appr = read_signed_json(file, key)
                except GateRefused:
                    continue  # a bad record counts as no approval; the missing role is reported
                if (
                    appr.get("kind") == "approval"
                    and appr.get("checkpoint_sha256") == digest
                    and appr.get("target") == target
                ):
                    have.setdefault(str(appr.get("role")), appr)
            missing = [r for r in roles if r not in have]
            if missing:
                raise GateRefused(
                    f"{ckpt.name}: target {target!r} needs approvals from roles {roles}; missing {missing} "
                    f"(`secure-train approve {ckpt} --by NAME --role ROLE --target {target}`)"
                )
            found = [{"by": have[r]["by"], "role": r} for r in roles]
        return {**body, "_approvals": found}

    def export_check(
        self,
        public_key: PublicKeyLike,
        *,
        target: str | None = None,
        attestation: str | os.PathLike[str] | None = None,
        audit_log: AuditLog | None = None,
    ) -> Any:
        """A check for :func:`~secure_train.integrity.export_checkpoint` enforcing this policy."""

        def gate_policy(context: Any) -> None:
            source = getattr(context, "source", None)
            digest = source.sha256 if source is not None else sha256_file(context.checkpoint_path)
            self.check(
                context.checkpoint_path,
                public_key,
                digest=digest,
                target=target,
                attestation=attestation,
                audit_log=audit_log,
            )

        return gate_policy


def failed_checks(checks: Sequence[dict[str, Any]]) -> list[str]:
    return [str(c["name"]) for c in checks if not c.get("passed")]
