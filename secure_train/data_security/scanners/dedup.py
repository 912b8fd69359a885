"""Exact and near-duplicates (MinHash LSH, datasketch) and duplicates with conflicting labels.

Streaming: each record is compared with the records seen before it, so the *later* copy is
the one reported (and dropped by the ``drop`` action); memory holds one 16-byte digest per
record for exact duplicates and the LSH index for near-duplicates, never the texts.

Shingles: character 5-grams of the normalized text (punctuation and case ignored) for texts
up to 200 characters, word 3-grams above, so short phrases still get enough shingles. Hashes
are xxHash (via datasketch's ``hashfunc``), several times faster than its default SHA-1.
"""

from __future__ import annotations

import hashlib
import re

import xxhash

from secure_train.core.require import require_in_range, require_int
from secure_train.data_security.scanners.base import Finding
from secure_train.data_security.scanners.normalize import normalize

__all__ = ["DuplicateScanner"]

_NON_WORD = re.compile(r"[^\w]+")


def _key(text: str) -> str:
    return _NON_WORD.sub(" ", normalize(text)).strip()


def _shingles(key: str) -> list[bytes]:
    if len(key) <= 200:
        if len(key) < 5:
            return [key.encode()]
        return [key[i : i + 5].encode() for i in range(len(key) - 4)]
    words = key.split()
    return [" ".join(words[i : i + 3]).encode() for i in range(max(1, len(words) - 2))]


def _hash32(data: bytes) -> int:
    return xxhash.xxh32_intdigest(data)


class DuplicateScanner:
    """Reports ``exact_duplicate`` (same normalized text as an earlier record),
    ``near_duplicate`` (estimated Jaccard >= ``threshold`` with an earlier record) and
    ``label_conflict`` (an exact or near duplicate whose label differs).

    Args:
        near: also look for near-duplicates (MinHash LSH); exact ones are always found.
        threshold: Jaccard similarity of shingle sets for a near-duplicate.
        num_perm: MinHash permutations (more: better estimates, slower).

    Raises:
        ConfigError: ``threshold`` outside (0, 1], ``num_perm`` below 16.

    Example:
        >>> s = DuplicateScanner()
        >>> s.scan("A fine, fine film.", 0, "x:1", label=1)
        []
        >>> [f.kind for f in s.scan("a fine fine film", 1, "x:2", label=0)]
        ['exact_duplicate', 'label_conflict']
    """

    name = "duplicate"

    def __init__(self, near: bool = True, threshold: float = 0.85, num_perm: int = 64) -> None:
        self.near = near
        self.threshold = require_in_range(self, "threshold", threshold, "(0, 1]")
        self.num_perm = require_int(self, "num_perm", num_perm, minimum=16)
        self.reset()

    def reset(self) -> None:
        """Forget every record seen."""
        from datasketch import MinHash, MinHashLSH  # scipy underneath: imported when a scan starts, not for --help

        self._exact: dict[bytes, tuple[int, int | None]] = {}
        self._labels: dict[int, int | None] = {}
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm) if self.near else None
        self._template = MinHash(num_perm=self.num_perm, hashfunc=_hash32)

    def scan(self, text: str, sample_id: int, source: str, label: int | None = None) -> list[Finding]:
        key = _key(text)
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        first = self._exact.get(digest)
        if first is not None:
            return self._found("exact_duplicate", sample_id, source, text, first[0], first[1], label)
        self._exact[digest] = (sample_id, label)
        if self._lsh is None or not key:
            return []
        mh = self._template.copy()
        mh.update_batch(_shingles(key))
        hits = self._lsh.query(mh)
        if hits:
            other = min(int(h) for h in hits)
            return self._found("near_duplicate", sample_id, source, text, other, self._labels.get(other), label)
        self._lsh.insert(str(sample_id), mh, check_duplication=False)
        self._labels[sample_id] = label
        return []

    def _found(
        self, kind: str, sample_id: int, source: str, text: str, other: int, other_label: int | None, label: int | None
    ) -> list[Finding]:
        """``kind`` (a duplicate of record ``other``), and a ``label_conflict`` when both have
        labels and they differ (``near: True`` in its detail for a near-duplicate)."""
        out = [Finding(sample_id, source, self.name, kind, None, text[:60], {"of": other})]
        if label is not None and other_label is not None and label != other_label:
            detail: dict[str, object] = {"of": other, "labels": [other_label, label]}
            if kind == "near_duplicate":
                detail["near"] = True
            out.append(Finding(sample_id, source, self.name, "label_conflict", None, text[:60], detail))
        return out
