"""Signed audit head: detect truncation, rollback and rewriting of the audit log.

The hash chain of :mod:`secure_train.core.audit_log` shows edits, insertions and reordering, but a
log cut after any event, or rewritten and re-chained, still verifies. Signing the head
(number of events, hash of the last one) at every checkpoint and at the end of the run
closes that gap: a log with fewer events than its signed head, or whose event at the signed
position has another hash, is refused. The head lives next to the log as
``<log>.head.json``, a :class:`~secure_train.core.envelope.SignedEnvelope` of kind
``audit-head`` (envelope version 2), replaced atomically. A head written by an older release
(``{"payload", "signature", "key_fingerprint"}``, envelope version 1) is still read.

A head file can be swapped for an older genuine one. Every signed checkpoint also carries
the head of the log at the time it was saved (``audit_head`` in its signed provenance), so
:func:`verify_audit_head` also reads the signature sidecars of the run's checkpoints (next
to the log, under ``<log dir>/checkpoints/``, the files the log's ``checkpoint.signed``
events name, and any the caller adds), verifies each under the public key, and refuses a
log or a head file older than the newest head a checkpoint pins, or whose event at a pinned
position has another hash. Events after the last signed head are a failure unless
``allow_unsigned_tail=True``: nothing signed vouches for them.

Limit: protection reaches as far as the newest signed checkpoint sidecar that survives; one
who can delete the run's checkpoints and sidecars too can roll back to the newest one left.
Keep copies (a model registry, the exported ``.sig``) where they cannot and pass them as
``checkpoints``.

Example:
    >>> import os, tempfile
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.core.audit_log import AuditLog
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

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from secure_train.core.audit_log import GENESIS_HASH, iter_events, verify
from secure_train.core.envelope import SignedEnvelope
from secure_train.core.errors import ConfigError, DataError, IntegrityError
from secure_train.core.keys import PrivateKey, PublicKeyLike, load_public_key
from secure_train.core.signed_file import SIGNATURE_SUFFIX as _SIG
from secure_train.core.signed_file import open_bundle, signature_path

__all__ = [
    "HEAD_SUFFIX",
    "CheckpointHead",
    "HeadCheck",
    "checkpoint_heads",
    "head_path",
    "sign_audit_head",
    "verify_audit_head",
]

HEAD_SUFFIX = ".head.json"
HEAD_KIND = "audit-head"
"""The envelope kind of a signed head."""
_MAX_SIDECAR = 16 << 20  # a checkpoint sidecar is a few kB; a larger one is refused unread
_MAX_HEAD = 1 << 20


def head_path(log_path: str | os.PathLike[str]) -> Path:
    """Where the signed head of ``log_path`` lives: ``<log_path>.head.json``."""
    return Path(os.fspath(log_path) + HEAD_SUFFIX)


def sign_audit_head(log_path: str | os.PathLike[str], private_key: PrivateKey, *, reason: str = "") -> dict[str, Any]:
    """Sign the current head of a (valid) audit log and write ``<log>.head.json`` atomically.

    Args:
        log_path: the audit log (``audit.jsonl``).
        private_key: EC signing key.
        reason: why the head was signed (``"checkpoint"``, ``"end of run"``), recorded.

    Returns:
        The signed head envelope as written (``payload`` is in its ``body``).

    Raises:
        DataError: the log's own hash chain is broken (a broken log is never signed).
    """
    log_path = Path(log_path)
    result = verify(log_path) if log_path.exists() else None
    if result is not None and not result.ok:
        raise DataError(f"refusing to sign the head of a broken audit log: {result.error}")
    events, head = (result.events, result.head) if result is not None else (0, "0" * 64)
    payload = {
        "log": log_path.name,
        "events": events,
        "head": head,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "reason": reason,
    }
    envelope = SignedEnvelope.sign(HEAD_KIND, payload, private_key)
    envelope.write(head_path(log_path))
    return envelope.to_dict()


@dataclass(frozen=True)
class CheckpointHead:
    """The audit head a signed checkpoint pins: ``events`` in the log, ``head`` the hash of the last."""

    path: Path
    events: int
    head: str


@dataclass(frozen=True)
class HeadCheck:
    """Outcome of :func:`verify_audit_head`.

    Attributes:
        ok: chain valid, head signature valid, the log reaches the signed head and every head
            the run's signed checkpoints pin, the head file is not older than any of them, and
            (unless allowed) no event lies after the signed head.
        events: events in the log (verified part of the chain).
        signed_events: events covered by the signed head file.
        error: the first problem, or None.
        checkpoints: signed checkpoints whose audit heads were checked.
        pinned_events: the newest head those checkpoints pin (events), 0 when none.
    """

    ok: bool
    events: int
    signed_events: int
    error: str | None = None
    checkpoints: int = 0
    pinned_events: int = 0

    @property
    def unsigned_tail(self) -> int:
        """Events recorded after the last signed head (not protected against truncation)."""
        return max(0, self.events - self.signed_events)

    def __bool__(self) -> bool:
        return self.ok


def _sidecars(log_path: Path, extra: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Checkpoint sidecars to read: next to the log, under ``checkpoints/``, named by the log's
    ``checkpoint.signed`` events, and ``extra`` (files, or directories searched recursively)."""
    found: list[Path] = []
    log_dir = log_path.parent
    found += log_dir.glob("*.ckpt" + _SIG)
    if (log_dir / "checkpoints").is_dir():
        found += (log_dir / "checkpoints").rglob("*.ckpt" + _SIG)
    for event in iter_events(log_path):  # the chain was verified; paths are only hints
        payload = event.get("payload") if isinstance(event, dict) else None
        if event.get("type") == "checkpoint.signed" and isinstance(payload, dict) and payload.get("path"):
            sig = signature_path(str(payload["path"]))
            try:
                if sig.is_file():
                    found.append(sig)
            except (OSError, ValueError):  # a name no file system accepts: nothing to read
                continue
    for item in extra:
        p = Path(item)
        if p.is_dir():
            found += p.rglob("*.ckpt" + _SIG)
        elif p.is_file() or signature_path(p).is_file():
            found.append(p if p.name.endswith(_SIG) else signature_path(p))
        else:
            raise ConfigError(f"{p}: no such checkpoint or directory")
    unique: dict[Path, Path] = {}
    for sig in found:
        unique.setdefault(sig.resolve(), sig)
    return sorted(unique.values())


def checkpoint_heads(
    log_path: str | os.PathLike[str], public_key: PublicKeyLike, extra: Iterable[str | os.PathLike[str]] = ()
) -> tuple[list[CheckpointHead], list[str]]:
    """The audit heads pinned by the run's signed checkpoints, each sidecar verified under ``public_key``.

    Only the signature sidecar is read: the head is part of the signed statement, so it is
    authentic whatever became of the checkpoint's bytes. Sidecars without an ``audit_head``
    (exports, attestations) are skipped.

    Returns:
        ``(heads, problems)``: a sidecar that does not verify under ``public_key`` is a problem
        (it may hide a newer head), named by its path.

    Raises:
        ConfigError: a checkpoint in ``extra`` does not exist.
    """
    log_path = Path(log_path)
    key = load_public_key(public_key)
    heads: list[CheckpointHead] = []
    problems: list[str] = []
    for sig in _sidecars(log_path, extra):
        ckpt = Path(os.fspath(sig)[: -len(_SIG)])
        if not sig.is_file():  # a named checkpoint without its sidecar, or a FIFO / device: never opened
            problems.append(f"{sig}: missing or not a regular file")
            continue
        try:
            with sig.open("rb") as fh:
                raw = fh.read(_MAX_SIDECAR + 1)
        except OSError as err:
            problems.append(f"{sig}: cannot be read ({err.strerror})")
            continue
        if len(raw) > _MAX_SIDECAR:
            problems.append(f"{sig}: larger than {_MAX_SIDECAR} bytes, not a checkpoint signature")
            continue
        try:
            signed = open_bundle(raw, key, ckpt)
        except IntegrityError as err:
            problems.append(f"{sig}: {err.reason} (cannot check the audit head it carries)")
            continue
        pin = signed.provenance.get("audit_head")
        if not isinstance(pin, dict):
            continue
        try:
            heads.append(CheckpointHead(ckpt, int(pin["events"]), str(pin["head"])))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{sig}: the signed audit_head is malformed")
    return heads, problems


def _hashes_at(log_path: Path, positions: set[int]) -> dict[int, str]:
    """Hashes of the events at the given 0-based positions, in one streaming pass."""
    out: dict[int, str] = {}
    if not positions:
        return out
    last = max(positions)
    for i, event in enumerate(iter_events(log_path)):
        if i in positions:
            out[i] = str(event["hash"])
        if i >= last:
            break
    return out


def _fail(chain_events: int, signed: int, error: str, n: int = 0, pinned: int = 0) -> HeadCheck:
    return HeadCheck(False, chain_events, signed, error, n, pinned)


def verify_audit_head(
    log_path: str | os.PathLike[str],
    public_key: PublicKeyLike,
    *,
    checkpoints: Iterable[str | os.PathLike[str]] = (),
    allow_unsigned_tail: bool = False,
) -> HeadCheck:
    """Check an audit log's chain, its signed head, and the heads its run's signed checkpoints pin.

    Args:
        log_path: the audit log.
        public_key: the project key that signed the head and the checkpoints.
        checkpoints: more checkpoints (files or directories) whose signed heads to check, on
            top of those found next to the log, under ``<log dir>/checkpoints/`` and named by
            the log's ``checkpoint.signed`` events.
        allow_unsigned_tail: accept events after the last signed head (they are still counted
            in ``unsigned_tail``).

    Never raises for a bad log, head or sidecar; the result names the problem.
    """
    log_path = Path(log_path)
    chain = verify(log_path)
    if not chain.ok:
        return HeadCheck(False, chain.events, 0, chain.error)
    target = head_path(log_path)
    if not target.is_file():
        return HeadCheck(False, chain.events, 0, f"no signed head {target.name} next to the log")
    key = load_public_key(public_key)
    try:
        envelope = SignedEnvelope.read(target, kind=HEAD_KIND, legacy="payload", max_bytes=_MAX_HEAD)
    except IntegrityError as err:
        return HeadCheck(False, chain.events, 0, f"signed head {target.name}: {err.reason}")
    if not envelope.verifies(key):
        return HeadCheck(False, chain.events, 0, f"signature of {target.name} is not valid for the given public key")
    payload = envelope.body
    try:
        signed_events, signed_hash, name = int(payload["events"]), str(payload["head"]), payload["log"]
    except (ValueError, KeyError, TypeError):
        return HeadCheck(False, chain.events, 0, f"signed head {target.name} is malformed")
    if name != log_path.name:
        return HeadCheck(
            False, chain.events, signed_events, f"signed head was made for {name!r}, not {log_path.name!r}"
        )
    try:
        pins, problems = checkpoint_heads(log_path, key, checkpoints)
    except ConfigError as err:
        return _fail(chain.events, signed_events, str(err))
    newest = max(pins, key=lambda h: h.events, default=None)
    n, pinned = len(pins), newest.events if newest is not None else 0
    if problems:
        return _fail(chain.events, signed_events, problems[0], n, pinned)
    if chain.events < signed_events:
        return _fail(
            chain.events,
            signed_events,
            f"log has {chain.events} events but the signed head covers {signed_events} (truncated)",
            n,
            pinned,
        )
    if newest is not None and chain.events < newest.events:
        return _fail(
            chain.events,
            signed_events,
            f"log has {chain.events} events but signed checkpoint {newest.path} pins {newest.events} "
            "(truncated or rolled back)",
            n,
            pinned,
        )
    positions = {signed_events - 1} | {p.events - 1 for p in pins}
    actual = _hashes_at(log_path, {i for i in positions if i >= 0})
    if signed_events > 0 and actual[signed_events - 1] != signed_hash:
        return _fail(
            chain.events,
            signed_events,
            f"event {signed_events - 1} does not match the signed head (log rewritten)",
            n,
            pinned,
        )
    for pin in sorted(pins, key=lambda h: h.events):
        expected = actual.get(pin.events - 1) if pin.events > 0 else GENESIS_HASH
        if expected != pin.head:
            return _fail(
                chain.events,
                signed_events,
                f"event {pin.events - 1} does not match the audit head signed into checkpoint {pin.path} "
                "(log rewritten, or the checkpoint belongs to another log)",
                n,
                pinned,
            )
    if newest is not None and signed_events < newest.events:
        return _fail(
            chain.events,
            signed_events,
            f"the signed head covers {signed_events} events but signed checkpoint {newest.path} pins "
            f"{newest.events}: {target.name} is older than the checkpoint (head file rolled back)",
            n,
            pinned,
        )
    if chain.events > signed_events and not allow_unsigned_tail:
        return _fail(
            chain.events,
            signed_events,
            f"{chain.events - signed_events} event(s) after the last signed head (events {signed_events}.."
            f"{chain.events - 1}) are not covered by any signature: appended later, or the head file was "
            "rolled back (allow_unsigned_tail / --allow-unsigned-tail accepts them)",
            n,
            pinned,
        )
    return HeadCheck(True, chain.events, signed_events, None, n, pinned)
