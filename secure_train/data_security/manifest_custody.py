"""Chain of custody: one hash-chained entry per transformation of a data set.

Every transformation (filter, dedup, redaction, poison removal, augmentation) appends an entry
with its name, parameters, the digests of its input and output records and the ids of the
samples it touched. ``hash`` covers every other field (canonical JSON,
:func:`~secure_train.core.envelope.canonical_json`) and ``prev`` links to the entry before, as
in the audit log.

Example:
    >>> from secure_train.core.records import TextRecord
    >>> recs = [TextRecord("a", 1, 0, "x"), TextRecord("b", 0, 1, "x")]
    >>> first = CustodyEntry.create("dedup", {"threshold": 0.8}, recs, recs[:1], {"dropped": [1]}).chained("0" * 64)
    >>> first.hash == first.body_hash(), first.affected
    (True, {'dropped': [1]})
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from secure_train.core.envelope import canonical_json, json_value
from secure_train.core.records import TextRecord
from secure_train.data_security.manifest_hashing import records_digest

__all__ = ["CustodyEntry", "iter_custody"]


@dataclass(frozen=True)
class CustodyEntry:
    """One transformation in the chain of custody.

    ``affected`` maps an action (``dropped``, ``redacted``, ``quarantined``, ``relabeled``...) to the
    sample ids it touched; ``prev`` / ``hash`` chain the entries (``hash`` covers every other field).
    """

    name: str
    params: dict[str, Any]
    input_digest: str
    output_digest: str
    n_in: int
    n_out: int
    affected: dict[str, list[int]] = field(default_factory=dict)
    time: str = ""
    prev: str = "0" * 64
    hash: str = ""

    @classmethod
    def create(
        cls,
        name: str,
        params: dict[str, Any],
        records_in: Sequence[TextRecord],
        records_out: Sequence[TextRecord],
        affected: dict[str, Iterable[int]] | None = None,
    ) -> CustodyEntry:
        """An (unchained) entry for a transform from ``records_in`` to ``records_out``.

        ``params`` values JSON cannot hold are recorded as strings (:func:`~secure_train.core.envelope.json_value`).
        """
        return cls(
            name=name,
            params=json_value(params),
            input_digest=records_digest(records_in),
            output_digest=records_digest(records_out),
            n_in=len(records_in),
            n_out=len(records_out),
            affected={k: sorted(set(v)) for k, v in (affected or {}).items()},
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "affected": self.affected,
            "time": self.time,
            "prev": self.prev,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> CustodyEntry:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})

    def body_hash(self) -> str:
        """SHA-256 over the canonical JSON of every field but ``hash``."""
        body = self.to_dict()
        body.pop("hash")
        return hashlib.sha256(canonical_json(body)).hexdigest()

    def chained(self, prev: str) -> CustodyEntry:
        """This entry linked after an entry whose hash is ``prev``."""
        linked = CustodyEntry(**{**self.to_dict(), "prev": prev, "hash": ""})
        return CustodyEntry(**{**linked.to_dict(), "hash": linked.body_hash()})


def iter_custody(transforms: Iterable[Any]) -> Iterator[CustodyEntry]:
    """Custody entries recorded by record transforms (those with a ``custody`` list)."""
    for t in transforms:
        yield from getattr(t, "custody", [])
