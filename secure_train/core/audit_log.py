"""Hash-chained, append-only audit log of security events.

Every defense in secure-train writes its events here: one JSON object per line, each
carrying the SHA-256 of the previous one, so that an edited, deleted, inserted or
reordered event breaks the chain at a point :func:`verify` names.

Event fields: ``seq`` (0, 1, 2, ...), ``time`` (UTC, ISO 8601), ``type``, ``source``,
``payload``, ``prev`` (hash of the previous event, 64 zeros for the first) and ``hash``
(SHA-256 over the canonical JSON of every other field,
:func:`~secure_train.core.envelope.canonical_json`). Payload values JSON cannot hold are
stored as strings (:func:`~secure_train.core.envelope.json_value`: ``NaN`` as ``"nan"``, a
path as its text), so every event hashes under the one canonical rule set. A log written by
an older release verifies unchanged, unless one of its events holds a bare ``NaN`` or
``Infinity``: :func:`verify` then names that event.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "audit.jsonl")
    >>> log = AuditLog(path)
    >>> _ = log.record("data.verified", source="docs", files=2)
    >>> _ = log.record("checkpoint.saved", source="docs", step=10)
    >>> verify(path).ok
    True
    >>> [e["type"] for e in read_events(path)]
    ['data.verified', 'checkpoint.saved']
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secure_train.core.envelope import canonical_json, json_value
from secure_train.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = ["GENESIS_HASH", "AuditLog", "VerifyResult", "get_audit_log", "iter_events", "read_events", "verify"]

GENESIS_HASH = "0" * 64
_FIELDS = ("seq", "time", "type", "source", "payload", "prev", "hash")


def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an event without its ``hash`` field.

    Raises:
        DataError: the event holds a value canonical JSON refuses (a bare ``NaN``).
    """
    body = {k: event[k] for k in _FIELDS if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, the number of good events and the first problem."""

    ok: bool
    events: int
    head: str
    error: str | None = None
    bad_seq: int | None = None

    def __bool__(self) -> bool:
        return self.ok


class AuditLog:
    """Append-only JSONL audit log; reopening an existing file continues its chain.

    Several processes (or several ``AuditLog`` objects) may append to one file: each append
    holds an exclusive ``flock`` and, when the file grew since this object last wrote, chains
    to the event another writer appended last.

    Args:
        path: file to append to (parents are created).
        enabled: when False (non-zero DDP ranks), :meth:`record` writes nothing.

    Raises:
        DataError: the existing file fails verification (the chain is never extended
            past a broken event).
    """

    def __init__(self, path: str | os.PathLike[str], *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS_HASH
        self._size = 0
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > 0:
                result = verify(self.path)
                if not result.ok:
                    raise DataError(f"audit log {self.path} is corrupt: {result.error}")
                self._seq = result.events
                self._prev = result.head
                self._size = self.path.stat().st_size

    @property
    def head(self) -> tuple[int, str]:
        """``(number of events, hash of the last event)``: what a signed head commits to."""
        return self._seq, self._prev

    def record(self, event_type: str, *, source: str = "secure_train", **payload: Any) -> dict[str, Any] | None:
        """Append one event and return it (``None`` when this log is disabled).

        Raises:
            ConfigError: ``event_type`` is not a non-empty string.
        """
        if not event_type or not isinstance(event_type, str):
            raise ConfigError(f"event_type must be a non-empty string, got {event_type!r}")
        if not self.enabled:
            return None
        with self._lock, self.path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes
            size = os.fstat(fh.fileno()).st_size
            if size != self._size:  # another writer appended: chain to its last event
                self._seq, self._prev = _last_event_head(self.path)
            event: dict[str, Any] = {
                "seq": self._seq,
                "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "type": event_type,
                "source": source,
                "payload": json_value(payload),
                "prev": self._prev,
            }
            event["hash"] = event_hash(event)
            fh.write(canonical_json(event).decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            self._size = os.fstat(fh.fileno()).st_size
            self._seq += 1
            self._prev = event["hash"]
            return event


def _last_event_head(path: Path) -> tuple[int, str]:
    """``(seq + 1, hash)`` of the file's last event, read from its tail."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        block = b""
        while end > 0 and block.count(b"\n") < 2:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start) + block
            end = start
    lines = [line for line in block.splitlines() if line.strip()]
    if not lines:
        return 0, GENESIS_HASH
    last = json.loads(lines[-1])
    return int(last["seq"]) + 1, str(last["hash"])


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    from secure_train.core.safe_io import iter_lines  # streamed, bounded line length, UTF-8 errors name the line

    yield from iter_lines(path, what="audit log")


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of a log, in file order (no verification: use :func:`verify`)."""
    return list(iter_events(path))


def iter_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of a log one at a time, in file order (streamed; no verification)."""
    for _, line in _iter_lines(Path(path)):
        if line.strip():
            yield json.loads(line)


def verify(path: str | os.PathLike[str]) -> VerifyResult:
    """Check the whole chain; the result names the first bad event and why."""
    path = Path(path)
    if not path.exists():
        return VerifyResult(False, 0, GENESIS_HASH, f"{path}: no such file")
    prev, count = GENESIS_HASH, 0
    for lineno, line in _iter_lines(path):
        where = f"{path}:{lineno}"
        try:
            event = json.loads(line)
        except json.JSONDecodeError as err:
            return VerifyResult(False, count, prev, f"{where}: not valid JSON ({err.msg})", count)
        if not isinstance(event, dict) or set(event) != set(_FIELDS):
            return VerifyResult(False, count, prev, f"{where}: event does not have the fields {_FIELDS}", count)
        if event["seq"] != count:
            kind = "deleted or reordered" if event["seq"] > count else "inserted or reordered"
            return VerifyResult(
                False, count, prev, f"{where}: expected seq {count}, found {event['seq']} (event {kind})", count
            )
        if event["prev"] != prev:
            return VerifyResult(False, count, prev, f"{where}: seq {count} does not chain to the previous event", count)
        try:
            digest = event_hash(event)
        except DataError as err:
            return VerifyResult(False, count, prev, f"{where}: seq {count} cannot be hashed: {err}", count)
        if digest != event["hash"]:
            return VerifyResult(False, count, prev, f"{where}: seq {count} was edited (hash mismatch)", count)
        prev, count = event["hash"], count + 1
    return VerifyResult(True, count, prev)


_LOGS: weakref.WeakKeyDictionary[Any, AuditLog] = weakref.WeakKeyDictionary()


def get_audit_log(trainer: pl.Trainer) -> AuditLog:
    """The run's audit log: the :class:`~secure_train.monitors.AuditTrail` callback's, else one
    opened at ``<trainer.log_dir>/audit.jsonl`` (global rank zero writes, others no-op).

    Example:
        >>> import lightning.pytorch as pl, tempfile
        >>> trainer = pl.Trainer(default_root_dir=tempfile.mkdtemp(), logger=False)
        >>> get_audit_log(trainer).path.name
        'audit.jsonl'
    """
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        opener = getattr(callback, "open_audit_log", None)
        if callable(opener):
            log = opener(trainer)
            if isinstance(log, AuditLog):
                return log
    if trainer not in _LOGS:
        log_dir = trainer.log_dir or trainer.default_root_dir
        _LOGS[trainer] = AuditLog(Path(log_dir) / "audit.jsonl", enabled=trainer.is_global_zero)
    return _LOGS[trainer]
