"""Batch MinHash (secure_train.data_security.scanners.minhash): the same signatures as one datasketch
MinHash per text, for short (character 5-gram) and long (word 3-gram) texts, and the fallback."""

from __future__ import annotations

import random

import numpy as np
import pytest

from secure_train.data_security.scanners import minhash
from secure_train.data_security.scanners.dedup import DuplicateScanner, _key, _shingles
from secure_train.data_security.scanners.minhash import BatchMinHash

WORDS = "a fine film with dull moments and a great cast that never quite lands its jokes ünïcode".split()


def _reference(template, shingles):
    rows = []
    for s in shingles:
        mh = template.copy()
        mh.update_batch(s)
        rows.append(np.asarray(mh.hashvalues))
    return np.stack(rows)


@pytest.fixture(scope="module")
def shingles():
    rng = random.Random(7)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 80))) for _ in range(600)] + ["ab", "x" * 300]
    return [_shingles(_key(t)) for t in texts if _key(t)]


@pytest.mark.parametrize("num_perm", [16, 64, 128])
def test_equal_to_one_minhash_per_text(shingles, num_perm, monkeypatch):
    template = DuplicateScanner(num_perm=num_perm)._template
    monkeypatch.setattr(minhash, "_CHUNK_CELLS", 997)  # many chunks, boundaries inside the batch
    got = BatchMinHash(template).signatures(shingles)
    assert got.shape == (len(shingles), num_perm)
    assert np.array_equal(got, _reference(template, shingles))
    assert not np.array_equal(got[0], got[1])  # real signatures, not a constant


def test_different_arithmetic_falls_back_to_datasketch(shingles, monkeypatch):
    template = DuplicateScanner()._template
    batch = BatchMinHash(template)
    monkeypatch.setattr(batch, "_permuted", lambda hv: np.zeros((len(hv), 64), dtype=np.uint32))
    assert np.array_equal(batch.signatures(shingles[:20]), _reference(template, shingles[:20]))


def test_empty_batch():
    assert BatchMinHash(DuplicateScanner(num_perm=16)._template).signatures([]).shape == (0, 16)
