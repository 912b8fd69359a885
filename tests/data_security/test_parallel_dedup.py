"""Duplicates as an on-disk shuffle (secure_train.data_security.parallel_dedup): the same duplicate
rows for any number of partitions or workers, partitions that grow with the corpus, spill files
removed."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_scan_parallel import corpus, write_shards

from secure_train.core.errors import ConfigError
from secure_train.data_security.parallel import ParallelScan, _scan_shard, shard_files
from secure_train.data_security.parallel_dedup import DuplicateShuffle
from secure_train.data_security.parallel_shards import ShardMap


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    folder = write_shards(tmp_path_factory.mktemp("dups"), corpus(300, seed=3), n_shards=4)
    scan = ParallelScan(["duplicate"])
    shards = ShardMap(1, "local", str(tmp_path_factory.mktemp("cache")))
    out = shards.map(_scan_shard, shards.tasks(shard_files(folder)), params=scan.params, text_column="sentence",
                     label_column="label")  # fmt: skip
    return shards, [c["filename"] for c in out.cache_files]


def test_same_rows_for_any_partition_count(stage, tmp_path):
    shards, files = stage
    runs = {parts: sorted(DuplicateShuffle(shards, near=True, parts=parts).run(files)) for parts in (1, 4, 64)}
    kinds = {kind for _, kind, _ in runs[1]}
    assert {"exact_duplicate", "near"} <= kinds, kinds  # the corpus has both: the comparison means something
    assert runs[1] == runs[4] == runs[64]
    exact_only = sorted(DuplicateShuffle(shards, near=False, parts=4).run(files))
    assert exact_only == [r for r in runs[1] if r[1] != "near"]


def test_spill_files_removed_and_kept_where_asked(stage, tmp_path):
    shards, files = stage
    before = set(tmp_path.iterdir())
    list(DuplicateShuffle(shards, near=True, parts=8, spill_dir=str(tmp_path)).run(files))
    spilled = set(tmp_path.iterdir()) - before
    assert spilled and all(p.suffix == ".arrow" for p in spilled)  # one file per (kind, partition, task)
    cache = shards.cache_dir
    leftovers = [p for p in Path(cache).iterdir() if p.name.startswith("dups-")]
    list(DuplicateShuffle(shards, near=True, parts=8).run(files))
    assert [p for p in Path(cache).iterdir() if p.name.startswith("dups-")] == leftovers


def test_partitions_grow_with_the_corpus():
    small = DuplicateShuffle.partitions(records=1_000_000, bands=9, workers=1)
    large = DuplicateShuffle.partitions(records=10_000_000, bands=9, workers=1)
    assert large >= 8 * small // 2 and large & (large - 1) == 0
    assert DuplicateShuffle.partitions(records=10, bands=0, workers=3) == 16  # at least 4 per worker


@pytest.mark.parametrize("parts", [0, 3, 2.0])
def test_bad_partition_count(parts):
    with pytest.raises(ConfigError, match="parts"):
        DuplicateShuffle(None, near=True, parts=parts)


def test_rows_by_record_are_the_same_rows_in_record_order(stage):
    shards, files = stage
    plain = list(DuplicateShuffle(shards, near=True, parts=8).run(files))
    ordered = list(DuplicateShuffle(shards, near=True, parts=8).run(files, by_record=True))
    assert sorted(ordered) == sorted(plain) and len(plain) > 10
    ids = [sid for sid, _, _ in ordered]
    assert ids == sorted(ids) and ids != [sid for sid, _, _ in plain]  # the plain rows were not in order
