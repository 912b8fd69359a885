"""Signed audit head: detect truncation of the audit log's tail.

The hash chain of :mod:`secure_train.audit` shows edits, insertions and reordering, but a
log cut after any event still verifies. Signing the head (number of events, hash of the
last one) at every checkpoint and at the end of the run closes that gap: a log with fewer
events than its signed head, or whose event at the signed position has another hash, is
refused. The head lives next to the log as ``<log>.head.json`` and is replaced atomically.

Limits: events appended after the last signed head are reported as not covered; an
attacker holding an *older* genuine head file can roll the log back to that point. The
head at each checkpoint is also part of that checkpoint's signed provenance
(``audit_head``), which pins the log's state at that step.

Example:
    >>> import os, tempfile
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.audit import AuditLog
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> log = AuditLog(os.path.join(tempfile.mkdtemp(), "audit.jsonl"))
    >>> _ = log.record("run.start")
    >>> _ = log.record("checkpoint.signed", step=1)
    >>> _ = sign_audit_head(log.path, key, reason="checkpoint")
    >>> verify_audit_head(log.path, key.public_key()).ok
    True
    >>> lines = log.path.read_text().splitlines(keepends=True)
    >>> _ = log.path.write_text(lines[0])  # cut the tail
    >>> verify_audit_head(log.path, key.public_key()).error
    'log has 1 events but the signed head covers 2 (truncated)'
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from secure_train.audit import read_events, verify
from secure_train.integrity.keys import PrivateKey, PublicKeyLike, key_fingerprint, load_public_key
from secure_train.integrity.signing import sign_bytes, verify_bytes

__all__ = ["HEAD_SUFFIX", "HeadCheck", "head_path", "sign_audit_head", "verify_audit_head"]

HEAD_SUFFIX = ".head.json"


def head_path(log_path: str | os.PathLike[str]) -> Path:
    """Where the signed head of ``log_path`` lives: ``<log_path>.head.json``."""
    return Path(os.fspath(log_path) + HEAD_SUFFIX)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sign_audit_head(log_path: str | os.PathLike[str], private_key: PrivateKey, *, reason: str = "") -> dict[str, Any]:
    """Sign the current head of a (valid) audit log and write ``<log>.head.json`` atomically.

    Args:
        log_path: the audit log (``audit.jsonl``).
        private_key: EC signing key.
        reason: why the head was signed (``"checkpoint"``, ``"end of run"``), recorded.

    Returns:
        The signed head record.

    Raises:
        ValueError: the log's own hash chain is broken (a broken log is never signed).
    """
    log_path = Path(log_path)
    result = verify(log_path) if log_path.exists() else None
    if result is not None and not result.ok:
        raise ValueError(f"refusing to sign the head of a broken audit log: {result.error}")
    events, head = (result.events, result.head) if result is not None else (0, "0" * 64)
    payload = {
        "log": log_path.name,
        "events": events,
        "head": head,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "reason": reason,
    }
    record = {
        "payload": payload,
        "signature": base64.b64encode(sign_bytes(_canonical(payload), private_key)).decode(),
        "key_fingerprint": key_fingerprint(private_key.public_key()),
    }
    target = head_path(log_path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return record


@dataclass(frozen=True)
class HeadCheck:
    """Outcome of :func:`verify_audit_head`.

    Attributes:
        ok: chain valid, head signature valid, and the log reaches the signed head.
        events: events in the log (verified part of the chain).
        signed_events: events covered by the signed head.
        error: the first problem, or None.
    """

    ok: bool
    events: int
    signed_events: int
    error: str | None = None

    @property
    def unsigned_tail(self) -> int:
        """Events recorded after the last signed head (not protected against truncation)."""
        return max(0, self.events - self.signed_events)

    def __bool__(self) -> bool:
        return self.ok


def verify_audit_head(log_path: str | os.PathLike[str], public_key: PublicKeyLike) -> HeadCheck:
    """Check an audit log's chain and its signed head.

    Never raises for a bad log or head; the result names the problem.
    """
    log_path = Path(log_path)
    chain = verify(log_path)
    if not chain.ok:
        return HeadCheck(False, chain.events, 0, chain.error)
    target = head_path(log_path)
    if not target.is_file():
        return HeadCheck(False, chain.events, 0, f"no signed head {target.name} next to the log")
    try:
        record = json.loads(target.read_text(encoding="utf-8"))
        payload = record["payload"]
        signature = base64.b64decode(record["signature"], validate=True)
        signed_events, signed_hash, name = int(payload["events"]), str(payload["head"]), payload["log"]
    except (ValueError, KeyError, TypeError):
        return HeadCheck(False, chain.events, 0, f"signed head {target.name} is malformed")
    key = load_public_key(public_key)
    if not verify_bytes(_canonical(payload), signature, key):
        return HeadCheck(False, chain.events, 0, f"signature of {target.name} is not valid for the given public key")
    if name != log_path.name:
        return HeadCheck(
            False, chain.events, signed_events, f"signed head was made for {name!r}, not {log_path.name!r}"
        )
    if chain.events < signed_events:
        return HeadCheck(
            False,
            chain.events,
            signed_events,
            f"log has {chain.events} events but the signed head covers {signed_events} (truncated)",
        )
    if signed_events > 0:
        actual = read_events(log_path)[signed_events - 1]["hash"]
        if actual != signed_hash:
            return HeadCheck(
                False,
                chain.events,
                signed_events,
                f"event {signed_events - 1} does not match the signed head (log rewritten)",
            )
    return HeadCheck(True, chain.events, signed_events)
