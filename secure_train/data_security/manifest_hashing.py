"""Hashing for provenance manifests: per-record leaf hashes, Merkle roots, one pass per file.

Leaves and inner nodes follow RFC 6962 (``0x00`` / ``0x01`` prefixes, an odd node promoted).
A file's records are its non-empty lines (header included); an in-memory record is hashed as
the canonical JSON (:func:`~secure_train.core.envelope.canonical_json`) of
``[sample_id, text, label, completion]``.

Example:
    >>> r = TextRecord("fine", 1, 0, "x:1")
    >>> records_digest([r]) == merkle_root([_leaf(b'[0,"fine",1,null]')])
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from secure_train.core.envelope import canonical_json, json_value
from secure_train.core.errors import DataError
from secure_train.core.records import TextRecord
from secure_train.core.safe_io import iter_raw_lines

__all__ = ["EMPTY_ROOT", "FileState", "data_files", "hash_file", "merkle_root", "record_leaf", "records_digest"]

_LEAF, _NODE = b"\x00", b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
"""The Merkle root of no leaves: SHA-256 of the empty string."""
DATA_SUFFIXES = {".tsv", ".csv", ".jsonl", ".json", ".txt"}
"""Files a directory manifest covers."""
_NOT_DATA = ("manifest.json", ".scan.json")  # manifests and scan reports next to the data


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def merkle_root(leaves: Iterable[bytes]) -> str:
    """Merkle root (hex) over leaf hashes, RFC 6962 style (``0x01`` prefix on inner nodes, an odd
    node is promoted). The empty tree's root is SHA-256 of the empty string.

    Example:
        >>> a, b = _leaf(b"a"), _leaf(b"b")
        >>> merkle_root([a, b]) == hashlib.sha256(b"\\x01" + a + b).hexdigest()
        True
    """
    level = list(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [hashlib.sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


_PLAIN = (int, str, bool, type(None))  # exact types canonical JSON takes as they are


def _record_bytes(record: TextRecord) -> bytes:
    values = [record.sample_id, record.text, record.label, record.completion]
    if not all(type(v) in _PLAIN for v in values):  # a numpy scalar, a float: through json_value
        values = [json_value(v) for v in values]
    return canonical_json(values)


def record_leaf(record: TextRecord) -> bytes:
    """The Merkle leaf hash of one in-memory record."""
    return _leaf(_record_bytes(record))


def records_digest(records: Iterable[TextRecord]) -> str:
    """Merkle root over in-memory records (id, text, label, completion): the input / output digest
    of a chain-of-custody entry.

    Example:
        >>> r = TextRecord("fine", 1, 0, "x:1")
        >>> records_digest([r]) == records_digest([TextRecord("fine", 1, 0, "elsewhere")])
        True
    """
    return merkle_root(record_leaf(r) for r in records)


@dataclass
class FileState:
    """One file's hashes: SHA-256 of its bytes, size, full-length hex leaf hash per record,
    their Merkle root, and the 1-based line number of each record."""

    sha256: str
    size: int
    records: list[str]
    merkle_root: str
    lines: list[int]


def hash_file(path: Path) -> FileState:
    """One streaming pass: SHA-256 of the bytes, and a leaf hash per non-empty line.

    Raises:
        DataError: unreadable file, or a line longer than the bounded reader allows.
    """
    whole = hashlib.sha256()
    leaves: list[bytes] = []
    lines: list[int] = []
    size = 0
    for lineno, raw in iter_raw_lines(path, error=DataError):  # streamed, bounded line length
        whole.update(raw)
        size += len(raw)
        line = raw.rstrip(b"\r\n")
        if line.strip():
            leaves.append(_leaf(line))
            lines.append(lineno)
    return FileState(whole.hexdigest(), size, [x.hex() for x in leaves], merkle_root(leaves), lines)


def data_files(path: Path) -> list[Path]:
    """``path`` itself, or the data files (:data:`DATA_SUFFIXES`) under it, sorted; manifests and
    scan reports excluded.

    Raises:
        DataError: ``path`` does not exist.
    """
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in DATA_SUFFIXES and not p.name.endswith(_NOT_DATA)
        )
    raise DataError(f"{path}: no such file or directory")
