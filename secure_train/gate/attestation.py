"""Signed gate attestations and approval records, bound to a checkpoint's SHA-256.

An **attestation** says: the checkpoint with digest ``D`` was run through the suite with
digest ``S`` and these checks (name, metric, value, threshold, pass/fail) gave this verdict.
It is signed with the project key (:mod:`secure_train.core.keys`), written next to the
checkpoint (``CKPT.attestation.json``) and filed by digest in the
:class:`~secure_train.gate.verdicts.VerdictStore`, so that it follows every copy of the bytes.

An **approval** says: approver ``NAME`` in role ``ROLE`` approved digest ``D`` for ``TARGET``.
It is signed with *the approver's own key* and written to ``CKPT.approvals/ROLE-NAME.json``;
:func:`write_approval` verifies the checkpoint's signature (streaming, bounded memory) before
it signs anything. Both are :class:`~secure_train.core.envelope.SignedEnvelope` files (kind
``attestation`` / ``approval``, envelope version 2: ``{"format", "version", "kind", "body",
"key_fingerprint", "signature"}``). Files written by an older release (``{"body", "signature",
"key_fingerprint"}``, envelope version 1) still verify; an envelope of another version is
refused with a message naming it.

:class:`ReleasePolicy` (a YAML file) decides what an export needs: a passing attestation for
the exact digest (default on) from a pinned suite (``suite_sha256``) and/or with a minimum set
of checks no looser than given (``required_checks``), no failing verdict for the digest
anywhere, and per target (e.g. ``production``) roles that must each be filled by a *different*
approver of the policy's keyring (:class:`~secure_train.gate.keyring.ApproverKeyring`).
:meth:`ReleasePolicy.export_check` returns a check for
:func:`~secure_train.integrity.export_checkpoint` that enforces it and records every decision
in the audit log.

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

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from secure_train.core.audit_log import AuditLog
from secure_train.core.envelope import SignedEnvelope, json_value
from secure_train.core.errors import ConfigError, DataError, IntegrityError, SecureTrainError
from secure_train.core.keys import PrivateKey, PublicKeyLike, key_fingerprint, load_public_key
from secure_train.core.signed_file import SignedFile, open_bundle, signature_path
from secure_train.core.signing import CHUNK_SIZE, sha256_file
from secure_train.gate.keyring import NAME_RE, ApproverKeyring
from secure_train.gate.verdicts import VerdictStore, check_verdict_format

__all__ = [
    "GateRefused",
    "ReleasePolicy",
    "approval_dir",
    "attestation_path",
    "read_signed_json",
    "verify_streaming",
    "write_approval",
    "write_signed_json",
]

ATTESTATION_SUFFIX = ".attestation.json"
APPROVALS_SUFFIX = ".approvals"
POLICY_ENV = "SECURE_TRAIN_RELEASE_POLICY"
"""Environment variable naming the release policy YAML ``export`` enforces and ``approve`` checks against."""
MAX_DOCUMENT_BYTES = 16 << 20
"""Largest attestation / approval / verdict document read (16 MiB)."""
MAX_SIDECAR_BYTES = 64 << 20
"""Largest signature sidecar read by :func:`verify_streaming` (64 MiB: ~1 PB of 32 MiB shards)."""


CHECK_NAMES = (
    "clean_accuracy",
    "trojan_scan",
    "injection_resistance",
    "privacy_leakage",
    "integrity",
    "injection_detector",
)
"""The gate's checks, defined here so that a policy loads without torch (``suite.KNOWN_CHECKS`` is this)."""


class GateRefused(SecureTrainError):
    """An export (or other release step) refused by the gate policy; the message says why."""


def attestation_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``CKPT.attestation.json``."""
    return Path(os.fspath(checkpoint) + ATTESTATION_SUFFIX)


def approval_dir(checkpoint: str | os.PathLike[str]) -> Path:
    """``CKPT.approvals/``."""
    return Path(os.fspath(checkpoint) + APPROVALS_SUFFIX)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_signed_json(
    body: dict[str, Any], path: str | os.PathLike[str], private_key: PrivateKey, *, kind: str | None = None
) -> None:
    """Write ``body`` as a signed envelope of ``kind`` (default: the body's ``kind`` field).

    Values JSON cannot hold are stored as strings first (:func:`~secure_train.core.envelope.json_value`).
    """
    SignedEnvelope.sign(kind or str(body.get("kind") or "document"), json_value(body), private_key).write(path)


def _read_document(path: Path) -> dict[str, Any]:
    """A signed-document-shaped JSON object from ``path``, size-bounded; GateRefused otherwise."""
    try:
        size = path.stat().st_size
    except OSError:
        raise GateRefused(f"{path}: no such file") from None
    if size > MAX_DOCUMENT_BYTES:
        raise GateRefused(f"{path}: {size} bytes, larger than any signed secure-train document")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, OSError):
        raise GateRefused(f"{path}: not a signed secure-train document") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
        raise GateRefused(f"{path}: not a signed secure-train document")
    return doc


def _signature_ok(doc: dict[str, Any], key: Any, kind: str | None = None) -> bool:
    """Whether ``doc`` is an envelope (of ``kind``; version 1 allowed) whose signature verifies under ``key``."""
    try:
        return SignedEnvelope.from_dict(doc, kind=kind, legacy="body").verifies(key)
    except IntegrityError:
        return False


def read_signed_json(
    path: str | os.PathLike[str], public_key: PublicKeyLike, *, kind: str | None = None
) -> dict[str, Any]:
    """The body of a signed envelope file after its signature verifies under ``public_key``.

    Args:
        path: the file.
        public_key: the key it must be signed with.
        kind: the envelope kind expected (``None``: any). Version-1 files (written before
            envelopes) carry no kind and are accepted.

    Raises:
        GateRefused: missing file, not a signed document, another envelope version or kind,
            or a bad / foreign signature (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise GateRefused(f"{p}: no such file")
    try:
        envelope = SignedEnvelope.read(p, kind=kind, legacy="body", max_bytes=MAX_DOCUMENT_BYTES)
        return envelope.verify(load_public_key(public_key)).body
    except IntegrityError as err:
        raise GateRefused(str(err)) from None


def verify_streaming(path: str | os.PathLike[str], public_key: PublicKeyLike) -> SignedFile:
    """Verify ``path`` against ``path.sig`` reading it in fixed-size chunks (bounded memory).

    The sidecar is checked first, so an unsigned, foreign or mis-sized file is refused
    before a byte of it is read; then every shard digest and the whole-file SHA-256 are
    compared while streaming. The returned record's ``sha256`` is the digest of the very
    bytes read.

    Raises:
        IntegrityError: missing file or sidecar, another key, or any mismatch.

    Example:
        >>> import os, tempfile
        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> from secure_train.core.signed_file import write_signed
        >>> key = ec.generate_private_key(ec.SECP256R1())
        >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
        >>> signed = write_signed(b"x" * 100, path, key, shard_size=64)
        >>> verify_streaming(path, key.public_key()).sha256 == signed.sha256
        True
    """
    p = Path(path)
    if not p.is_file():
        raise IntegrityError(p, "no such file")
    sig = signature_path(p)
    if not sig.is_file():
        raise IntegrityError(p, f"unsigned: no signature file {sig.name} next to it")
    if sig.stat().st_size > MAX_SIDECAR_BYTES:
        raise IntegrityError(p, f"signature file {sig.name} is larger than {MAX_SIDECAR_BYTES} bytes")
    signed = open_bundle(sig.read_bytes(), public_key, p)
    sharded = signed.size >= 0
    if sharded and signed.shard_size <= 0:
        raise IntegrityError(p, f"signed shard size {signed.shard_size} is not positive")
    with p.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if sharded and size != signed.size:
            how = "truncated" if size < signed.size else "bytes appended"
            raise IntegrityError(p, f"size is {size} bytes but {signed.size} were signed ({how})")
        expected_shards = max(1, math.ceil(signed.size / signed.shard_size)) if sharded else 0
        if sharded and len(signed.shards) != expected_shards:
            raise IntegrityError(p, f"signed shard list has {len(signed.shards)} entries, expected {expected_shards}")
        whole, shard = hashlib.sha256(), hashlib.sha256()
        filled = index = total = 0

        def close_shard() -> None:
            nonlocal shard, filled, index
            if shard.hexdigest() != signed.shards[index]:
                a = index * signed.shard_size
                raise IntegrityError(
                    p,
                    f"content does not match its signature: bytes {a}..{a + filled} differ "
                    f"(shard {index + 1} of {expected_shards})",
                )
            shard, filled, index = hashlib.sha256(), 0, index + 1

        while chunk := fh.read(CHUNK_SIZE):
            total += len(chunk)
            if sharded and total > signed.size:
                raise IntegrityError(p, "the file grew while it was being verified")
            whole.update(chunk)
            view = memoryview(chunk)
            while sharded and view.nbytes:
                take = min(view.nbytes, signed.shard_size - filled)
                shard.update(view[:take])
                filled, view = filled + take, view[take:]
                if filled == signed.shard_size:
                    close_shard()
        if sharded and (filled or index == 0):
            close_shard()
        if sharded and total != signed.size:
            raise IntegrityError(p, "the file shrank while it was being verified")
    if whole.hexdigest() != signed.sha256:
        raise IntegrityError(p, "content does not match its signature (SHA-256 differs)")
    return signed


def write_approval(
    checkpoint: str | os.PathLike[str],
    *,
    by: str,
    role: str,
    private_key: PrivateKey,
    public_key: PublicKeyLike,
    target: str = "production",
    note: str = "",
    keyring: ApproverKeyring | None = None,
    audit_log: AuditLog | None = None,
) -> Path:
    """Verify ``checkpoint``'s signature, then write ``by``'s signed approval of its digest.

    Args:
        checkpoint: the signed checkpoint; it is verified against ``public_key`` first, by
            streaming (a huge or unsigned file is refused without being read into memory).
        by: the approver's name (as in the keyring).
        role: the role approved in (e.g. ``security``, ``ml-lead``).
        private_key: *the approver's own* key; the key that signed the checkpoint is refused.
        public_key: the key the checkpoint must be signed with (the project key).
        target: deployment target the approval is for.
        note: free text recorded in the approval.
        keyring: when given, ``by`` must be in it with this very key and may approve in ``role``.
        audit_log: records ``gate.approved`` / ``gate.approval_refused``.

    Raises:
        ConfigError: a bad name, an approver not in the keyring, a key or role the keyring
            does not give them, or the checkpoint signer's key used to approve.
        IntegrityError: the checkpoint is missing, unsigned, tampered or signed by another key.
    """
    for name, value in (("by", by), ("role", role), ("target", target)):
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise ConfigError(f"{name} must be 1-64 letters, digits or ' ._@-', got {value!r}")
    ckpt = Path(checkpoint)
    fingerprint = key_fingerprint(private_key.public_key())
    try:
        if keyring is not None:
            approver = keyring.get(by)
            if approver is None:
                raise ConfigError(f"{by!r} is not an approver in {keyring.source}")
            if approver.fingerprint != fingerprint:
                raise ConfigError(f"the signing key is not {by}'s key in {keyring.source}")
            if role not in approver.roles:
                raise ConfigError(f"{by} may not approve as {role!r}; {keyring.source} allows {list(approver.roles)}")
        signed = verify_streaming(ckpt, public_key)
        if signed.key_fingerprint == fingerprint:
            raise ConfigError(
                "an approval must be signed with the approver's own key, not the key that signed the checkpoint"
            )
    except (ConfigError, IntegrityError) as err:
        if audit_log is not None:
            audit_log.record(
                "gate.approval_refused", source="approve", checkpoint=str(ckpt), by=by, role=role, target=target,
                reason=str(err),
            )  # fmt: skip
        raise
    body = {
        "kind": "approval",
        "checkpoint": ckpt.name,
        "checkpoint_sha256": signed.sha256,
        "checkpoint_key_fingerprint": signed.key_fingerprint,
        "by": by,
        "role": role,
        "target": target,
        "note": note,
        "approver_key_fingerprint": fingerprint,
        "time": now(),
    }
    path = approval_dir(ckpt) / f"{role}-{by}.json".replace(" ", "_")
    write_signed_json(body, path, private_key)
    if audit_log is not None:
        audit_log.record(
            "gate.approved", source="approve", checkpoint=str(ckpt), sha256=signed.sha256, by=by, role=role,
            target=target, approver_key_fingerprint=fingerprint,
        )  # fmt: skip
    return path


@dataclass(frozen=True)
class _Verdict:
    path: Path
    body: dict[str, Any]
    signed: bool  # the signature verifies under the project key

    @property
    def passed(self) -> bool:
        return self.body.get("passed") is True

    @property
    def time(self) -> datetime:
        try:
            t = datetime.fromisoformat(str(self.body.get("time")))
        except ValueError:
            return datetime.min.replace(tzinfo=timezone.utc)
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _threshold_problem(check: dict[str, Any] | None, name: str, spec: dict[str, float]) -> str | None:
    """Why an attested check does not meet a policy's ``{min: x}`` / ``{max: x}``, or None."""
    if not isinstance(check, dict):
        return f"has no {name} check"
    op, threshold = check.get("op"), check.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        return f"check {name} has no numeric threshold"
    if "min" in spec and not (op in (">=", ">") and threshold >= spec["min"]):
        return f"check {name} requires {op} {threshold}, looser than the policy's min {spec['min']}"
    if "max" in spec and not (op in ("<=", "<") and threshold <= spec["max"]):
        return f"check {name} allows {op} {threshold}, looser than the policy's max {spec['max']}"
    return None


def _assign_roles(roles: Sequence[str], candidates: dict[str, list[str]]) -> dict[str, str]:
    """Role -> approver with every approver used at most once (a maximum bipartite matching)."""
    owner: dict[str, str] = {}  # approver -> role

    def place(role: str, seen: set[str]) -> bool:
        for person in candidates.get(role, []):
            if person in seen:
                continue
            seen.add(person)
            if person not in owner or place(owner[person], seen):
                owner[person] = role
                return True
        return False

    for role in roles:
        place(role, set())
    return {role: person for person, role in owner.items()}


@dataclass
class ReleasePolicy:
    """What a checkpoint needs before export.

    Args:
        require_attestation: a passing attestation, signed with the project key, for the exact
            digest. Failing verdicts block export whatever this says.
        suite_sha256: when set, the attestation must come from this exact suite file.
        required_checks: check name -> ``{}``, ``{"min": x}`` or ``{"max": x}``: the attestation
            must hold each of these checks with a threshold no looser than given.
        targets: per target name, ``{"require_roles": [...]}``: every listed role must have a
            signed approval of the exact digest for that target, each by a different approver.
        keyring: the approvers, their own public keys and allowed roles, or the path of a
            keyring file (read when an approval is checked); required when a target requires roles.
        verdicts: where verdicts are filed by digest (default :class:`VerdictStore`).

    Example:
        >>> policy = ReleasePolicy.from_dict({"required_checks": {"clean_accuracy": {"min": 0.85}}})
        >>> policy.required_roles("production"), policy.required_checks
        ([], {'clean_accuracy': {'min': 0.85}})
    """

    require_attestation: bool = True
    suite_sha256: str | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_checks: dict[str, dict[str, float]] = field(default_factory=dict)
    keyring: ApproverKeyring | Path | None = None
    verdicts: VerdictStore = field(default_factory=VerdictStore)

    def __post_init__(self) -> None:
        needs = [t for t in self.targets if self.required_roles(t)]
        if needs and self.keyring is None:
            raise ConfigError(
                f"release policy targets {needs} require approvals, so the policy needs a keyring "
                "(keyring: approvers.yaml mapping each approver to their own public key and roles)"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> ReleasePolicy:
        """Build from the ``release:`` mapping; a relative ``keyring`` path is taken from ``base_dir``."""
        if not isinstance(data, dict):
            raise ConfigError("a release policy must be a mapping")
        unknown = set(data) - {"require_attestation", "suite_sha256", "required_checks", "keyring", "targets"}
        if unknown:
            raise ConfigError(f"unknown release policy keys: {sorted(unknown)}")
        targets = data.get("targets") or {}
        if not isinstance(targets, dict):
            raise ConfigError(f"policy targets must be a mapping, got {type(targets).__name__}")
        for name, spec in targets.items():
            if spec is not None and not isinstance(spec, dict):
                raise ConfigError(f"policy targets.{name} must be a mapping")
            roles = (spec or {}).get("require_roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) and NAME_RE.match(r) for r in roles):
                raise ConfigError(f"policy targets.{name}.require_roles must be a list of role names")
            if len(set(roles)) != len(roles):
                raise ConfigError(f"policy targets.{name}.require_roles lists a role twice")
        suite = data.get("suite_sha256")
        if suite is not None and not (
            isinstance(suite, str) and len(suite) == 64 and all(c in "0123456789abcdef" for c in suite)
        ):
            raise ConfigError("policy suite_sha256 must be 64 lowercase hex digits (sha256sum SUITE.yaml)")
        required = data.get("required_checks") or {}
        if not isinstance(required, dict):
            raise ConfigError("policy required_checks must map check names to {min: x} or {max: x}")
        checks: dict[str, dict[str, float]] = {}
        for name, spec in required.items():
            if name not in CHECK_NAMES:
                raise ConfigError(f"policy required_checks: unknown check {name!r}; known: {list(CHECK_NAMES)}")
            spec = spec or {}
            if (
                not isinstance(spec, dict)
                or set(spec) - {"min", "max"}
                or len(spec) > 1
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec.values())
            ):
                raise ConfigError(f"policy required_checks.{name} must be {{}}, {{min: NUMBER}} or {{max: NUMBER}}")
            checks[name] = {k: float(v) for k, v in spec.items()}
        keyring_spec = data.get("keyring")
        keyring: ApproverKeyring | Path | None = None
        if isinstance(keyring_spec, str):
            path = Path(keyring_spec).expanduser()
            keyring = path if path.is_absolute() or base_dir is None else Path(base_dir) / path
        elif isinstance(keyring_spec, dict):
            keyring = ApproverKeyring.from_dict(keyring_spec, base_dir=base_dir, source="policy keyring")
        elif keyring_spec is not None:
            raise ConfigError("policy keyring must be a file path or an {approvers: ...} mapping")
        return cls(
            require_attestation=bool(data.get("require_attestation", True)),
            suite_sha256=suite,
            targets=dict(targets),
            required_checks=checks,
            keyring=keyring,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReleasePolicy:
        """Read a policy file (YAML, size- and alias-bounded); relative paths in it are from its folder."""
        from secure_train.core.safe_io import load_yaml_file

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"release policy {p}: no such file")
        data = load_yaml_file(p, what="release policy") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"release policy {p}: expected a mapping")
        try:
            return cls.from_dict(data.get("release", data), base_dir=p.parent)
        except ConfigError as err:
            raise ConfigError(f"release policy {p}: {err}") from None

    def approver_keyring(self) -> ApproverKeyring:
        """The keyring, read from its file on first use.

        Raises:
            ConfigError: no keyring configured, or a bad keyring file.
        """
        if self.keyring is None:
            raise ConfigError("the release policy names no keyring (keyring: approvers.yaml)")
        if not isinstance(self.keyring, ApproverKeyring):
            self.keyring = ApproverKeyring.load(self.keyring)
        return self.keyring

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
            GateRefused: no / tampered / foreign / failing attestation, a failing verdict for
                the digest anywhere, a different digest or suite, looser checks, or missing
                approvals. The refusal is recorded in ``audit_log``.
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
                gated=bool(body.get("checks")),
            )  # fmt: skip
        return body

    def _verdicts(
        self, ckpt: Path, key: Any, digest: str, attestation: str | os.PathLike[str] | None
    ) -> list[_Verdict]:
        """Every verdict about ``digest``: the given / adjacent attestation (which must verify and
        match) and the store's records (kept even when unsigned: a failing one still blocks)."""
        found: list[_Verdict] = []
        strict = [Path(attestation)] if attestation is not None else []
        if attestation_path(ckpt) not in strict and attestation_path(ckpt).is_file():
            strict.append(attestation_path(ckpt))
        for path in strict:
            if not path.is_file():
                raise GateRefused(f"{ckpt}: no gate attestation ({path}); run `secure-train gate` first")
            body = read_signed_json(path, key, kind="attestation")
            if body.get("kind") != "attestation":
                raise GateRefused(f"{path}: not a gate attestation")
            if body.get("checkpoint_sha256") != digest:
                raise GateRefused(
                    f"{path}: attests digest {str(body.get('checkpoint_sha256'))[:16]}..., "
                    f"but {ckpt.name} has {digest[:16]}... (another or modified checkpoint)"
                )
            found.append(_Verdict(path, body, True))
        for path in self.verdicts.paths(digest):
            try:
                doc = _read_document(path)
            except GateRefused:
                continue  # unreadable: no verdict at all
            try:
                check_verdict_format(doc, path)
            except DataError as err:  # a verdict this release cannot read may be a failing one
                raise GateRefused(f"{err}; refusing the release of {ckpt.name}") from None
            body = doc["body"]
            if body.get("kind") == "attestation" and body.get("checkpoint_sha256") == digest:
                found.append(_Verdict(path, body, _signature_ok(doc, key, "attestation")))
        return found

    def _suite_problem(self, body: dict[str, Any]) -> str | None:
        if self.suite_sha256 and body.get("suite_sha256") != self.suite_sha256:
            return f"made with suite {body.get('suite_sha256')}, policy pins {self.suite_sha256}"
        checks = {c.get("name"): c for c in body.get("checks", []) if isinstance(c, dict)}
        for name, spec in self.required_checks.items():
            problem = _threshold_problem(checks.get(name), name, spec)
            if problem:
                return f"{problem} (policy required_checks)"
        return None

    def _check(
        self,
        ckpt: Path,
        key: Any,
        digest: str,
        target: str | None,
        attestation: str | os.PathLike[str] | None,
    ) -> dict[str, Any]:
        verdicts = self._verdicts(ckpt, key, digest, attestation)
        passing = sorted((v for v in verdicts if v.signed and v.passed), key=lambda v: v.time, reverse=True)
        # A failing verdict stands unless the *same* suite later passed the same bytes (signed).
        for v in verdicts:
            if v.passed:
                continue
            suite = v.body.get("suite_sha256")
            if any(p.body.get("suite_sha256") == suite and p.time > v.time for p in passing):
                continue
            failed = [
                str(c.get("name")) for c in v.body.get("checks", []) if isinstance(c, dict) and not c.get("passed")
            ]
            raise GateRefused(
                f"{v.path}: the gate failed for {ckpt.name} (failed checks: {', '.join(failed) or '?'}); "
                f"a failing verdict for sha256 {digest[:16]}... blocks every copy of these bytes"
            )
        body: dict[str, Any] = {}
        if self.require_attestation:
            if not passing:
                raise GateRefused(
                    f"{ckpt}: no gate attestation ({attestation or attestation_path(ckpt)}, nor in "
                    f"{self.verdicts.root}); run `secure-train gate` first"
                )
            problems = [(v, self._suite_problem(v.body)) for v in passing]
            ok = [v for v, problem in problems if problem is None]
            if not ok:
                v, problem = problems[0]
                raise GateRefused(f"{v.path}: {problem}")
            body = ok[0].body
        return {**body, "_approvals": self._approvals(ckpt, key, digest, target)}

    def _approvals(self, ckpt: Path, key: Any, digest: str, target: str | None) -> list[dict[str, Any]]:
        roles = self.required_roles(target)
        if not roles:
            return []
        ring = self.approver_keyring()
        shared = ring.by_fingerprint(key_fingerprint(key))
        if shared is not None:
            raise GateRefused(
                f"{ring.source}: approver {shared.name!r} has the project signing key; "
                "approvals need each approver's own key"
            )
        candidates: dict[str, list[str]] = {}
        rejected: list[str] = []
        folder = approval_dir(ckpt)
        for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                by, role = self._approval(file, ring, digest, target)
            except GateRefused as err:
                rejected.append(str(err))
                continue
            if by not in candidates.setdefault(role, []):
                candidates[role].append(by)
        assigned = _assign_roles(roles, candidates)
        missing = [r for r in roles if r not in assigned]
        if missing:
            who = sorted({p for r in roles for p in candidates.get(r, [])})
            hint = ""
            if who and len(who) < len(roles):
                hint = f"; each role needs a different approver, and only {who} approved"
            dropped = f"; {len(rejected)} record(s) did not count, e.g. {rejected[0]}" if rejected else ""
            raise GateRefused(
                f"{ckpt.name}: target {target!r} needs approvals from roles {roles}; missing {missing}{hint}{dropped} "
                f"(`secure-train approve {ckpt} --by NAME --role ROLE --target {target}` with NAME's own key)"
            )
        return [{"by": assigned[r], "role": r} for r in roles]

    @staticmethod
    def _approval(file: Path, ring: ApproverKeyring, digest: str, target: str | None) -> tuple[str, str]:
        doc = _read_document(file)
        body = doc["body"]
        by, role = str(body.get("by")), str(body.get("role"))
        approver = ring.get(by)
        if approver is None:
            raise GateRefused(f"{file.name}: approver {by!r} is not in {ring.source}")
        if not _signature_ok(doc, approver.public_key, "approval"):
            raise GateRefused(f"{file.name}: not signed with {by}'s key in {ring.source} (tampered or forged)")
        if body.get("kind") != "approval" or body.get("checkpoint_sha256") != digest:
            raise GateRefused(f"{file.name}: approves another checkpoint")
        if body.get("target") != target:
            raise GateRefused(f"{file.name}: approves target {body.get('target')!r}, not {target!r}")
        if role not in approver.roles:
            raise GateRefused(
                f"{file.name}: {by} may not approve as {role!r} ({ring.source} allows {list(approver.roles)})"
            )
        return by, role

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
