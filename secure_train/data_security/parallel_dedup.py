"""Exact and near duplicates of a sharded corpus as an on-disk shuffle: memory bounded by one partition.

The parallel scan's map writes, per record, its normalized-text digest and MinHash band keys.
:class:`DuplicateShuffle` groups them on the engine in two passes, like any shuffle:

1. **spill** (one task per map output file): each task reads the file batch by batch, hashes
   every digest and band key to one of ``parts`` partitions and appends the rows to that
   partition's Arrow file (one file per task and partition, so workers never share a file);
2. **reduce** (one task per partition): each task reads only its partition's files and groups
   the keys seen twice (exact duplicates, label conflicts, near-duplicate candidates).

``parts`` grows with the corpus (about ``rows_per_partition`` key rows each), so a reduce task
holds the same amount whether the corpus is 100 MB or 1 TB; the driver receives only the
duplicate rows. The groups, and so the findings, are the same for any number of partitions or
workers (each key lands in exactly one partition; a group is sorted by ``sample_id``).

Example:
    >>> DuplicateShuffle.partitions(records=10_000_000, bands=9, workers=2, rows_per_partition=500_000)
    256
    >>> DuplicateShuffle.partitions(records=1_000, bands=9, workers=2)
    8
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_int

__all__ = ["DuplicateShuffle"]

_SPILL_ROWS = 65_536  # rows of the map output partitioned at once
_DUP_SCHEMA = (("sample_id", "int64"), ("kind", "string"), ("detail", "string"))


class DuplicateShuffle:
    """Group digests and MinHash band keys by hash partition, spilled to disk, on a ``ShardMap``.

    Args:
        shards: the :class:`~secure_train.data_security.parallel_shards.ShardMap` (engine, workers).
        near: also group band keys (near duplicates), not only digests.
        parts: the number of partitions, a power of two (:meth:`partitions` chooses it).
        spill_dir: where the partition files go (default: a temporary folder under the map's
            cache folder, removed when :meth:`run` ends).
    """

    def __init__(self, shards: Any, *, near: bool, parts: int, spill_dir: str | None = None) -> None:
        require_int(self, "parts", parts, minimum=1)
        if parts & (parts - 1):
            raise ConfigError(f"DuplicateShuffle: parts must be a power of two, got {parts}")
        self.shards, self.near, self.parts, self.spill_dir = shards, near, parts, spill_dir

    @staticmethod
    def partitions(records: int, bands: int, workers: int, rows_per_partition: int = 500_000) -> int:
        """A power of two: at least 4 per worker, and about ``rows_per_partition`` key rows
        (one digest and ``bands`` band keys per record) in each."""
        need = max(4 * workers, -(-records * (1 + bands) // rows_per_partition), 1)
        return 1 << (need - 1).bit_length()

    def run(self, files: Sequence[str], *, by_record: bool = False) -> Iterator[tuple[int, str, str]]:
        """``(sample_id, kind, detail JSON)`` of every duplicate row; ``kind`` is ``near`` for a
        near-duplicate candidate (the caller keeps the earliest ``of``), else the finding's kind.
        ``by_record``: sorted by ``sample_id`` (a stable sort of the duplicate rows only; a
        record's rows from one partition keep their order)."""
        root = self.spill_dir or tempfile.mkdtemp(prefix="dups-", dir=getattr(self.shards, "cache_dir", None))
        try:
            tasks = [{"file": f, "task": k} for k, f in enumerate(files)]
            self.shards.map(_spill, tasks, spill_dir=root, parts=self.parts, near=self.near)
            out = self.shards.map(_reduce, [{"part": p} for p in range(self.parts)], spill_dir=root)
            if by_record:  # 8 bytes per duplicate row to order them; the rows stay on disk
                import numpy as np

                cols = [np.asarray(b["sample_id"], dtype=np.int64) for b in self.shards.batches(out, ("sample_id",))]
                ids = np.concatenate(cols) if cols else np.zeros(0, np.int64)
                out = out.select(np.argsort(ids, kind="stable"))
            for b in self.shards.batches(out, ("sample_id", "kind", "detail")):
                yield from zip(b["sample_id"], b["kind"], b["detail"], strict=True)
        finally:
            if self.spill_dir is None:
                shutil.rmtree(root, ignore_errors=True)


def _stage_batches(name: str) -> Iterator[Any]:
    """The map output file's record batches, regrouped into tables of about ``_SPILL_ROWS`` rows."""
    import pyarrow as pa

    pending, rows = [], 0
    with pa.memory_map(name) as source:
        for batch in pa.ipc.open_stream(source):
            pending.append(batch)
            rows += batch.num_rows
            if rows >= _SPILL_ROWS:
                yield pa.Table.from_batches(pending)
                pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


class _PartitionWriters:
    """One Arrow stream per (kind, partition) of one spill task, opened on first use."""

    def __init__(self, root: str, task: int) -> None:
        self.root, self.task, self.open = root, task, {}  # type: ignore[var-annotated]

    def write(self, kind: str, table: Any, parts: Any) -> None:
        """Append ``table``'s rows to the partition named by ``parts`` (same length, int64)."""
        import numpy as np
        import pyarrow as pa

        if table.num_rows == 0:
            return
        order = np.argsort(np.asarray(parts), kind="stable")
        sorted_parts = np.asarray(parts)[order]
        table = table.take(pa.array(order))
        cuts = np.flatnonzero(np.diff(sorted_parts)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(sorted_parts)], strict=True):
            key = (kind, int(sorted_parts[start]))
            if key not in self.open:
                path = os.path.join(self.root, f"{kind}-{key[1]:06d}-{self.task:06d}.arrow")
                self.open[key] = pa.ipc.new_stream(path, table.schema)
            self.open[key].write_table(table.slice(int(start), int(stop - start)))

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()


def _spill(task: Mapping[str, Any], spill_dir: str, parts: int, near: bool) -> dict[str, list[Any]]:
    """Spill task: one map output file's digests and band keys, appended to their partitions."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = parts - 1
    writers = _PartitionWriters(spill_dir, int(task["task"]))
    rows = 0
    try:
        for t in _stage_batches(str(task["file"])):
            rows += t.num_rows
            exact = t.select(["digest", "sample_id", "label"])
            writers.write("e", exact, pc.bit_wise_and(t.column("dkey"), mask).to_numpy())
            if near:
                bands = t.column("bands").combine_chunks()
                parent = pc.list_parent_indices(bands)
                flat = pc.list_flatten(bands)
                cols = {"band": flat, **{c: pc.take(t.column(c), parent) for c in ("sample_id", "label", "digest")}}
                writers.write("n", pa.table(cols), pc.bit_wise_and(flat, mask).to_numpy(zero_copy_only=False))
    finally:
        writers.close()
    return {"rows": [rows]}


def _read_partition(spill_dir: str, kind: str, part: int) -> Any:
    import pyarrow as pa

    tables = []
    for path in sorted(glob.glob(os.path.join(spill_dir, f"{kind}-{part:06d}-*.arrow"))):
        tables.append(pa.ipc.open_stream(pa.memory_map(path)).read_all())  # the map lives as long as the table
    return pa.concat_tables(tables) if tables else None


def _reduce(task: Mapping[str, Any], spill_dir: str) -> Any:
    """Reduce task: the duplicate rows of one partition (its files only)."""
    import json

    import pyarrow as pa

    from secure_train.data_security.parallel import _exact_group, _near_group, _repeated, _table_groups

    part = int(task["part"])
    out: dict[str, list[Any]] = {name: [] for name, _ in _DUP_SCHEMA}
    exact = _read_partition(spill_dir, "e", part)
    if exact is not None:
        for _, ids, labels in _table_groups(_repeated(exact, "digest"), "digest", "label"):
            for sid, kind, detail in _exact_group(ids, labels):
                out["sample_id"].append(sid)
                out["kind"].append(kind)
                out["detail"].append(json.dumps(detail))
    del exact
    bands = _read_partition(spill_dir, "n", part)
    if bands is not None:
        for _, ids, rest in _table_groups(_repeated(bands, "band"), "band", "label", "digest"):
            for sid, other, other_label, label in _near_group(ids, rest[0], rest[1]):
                out["sample_id"].append(sid)
                out["kind"].append("near")
                out["detail"].append(json.dumps({"of": other, "other_label": other_label, "label": label}))
    # typed even when empty: a partition without a duplicate must not write null columns
    return pa.table(out, schema=pa.schema([(name, getattr(pa, typ)()) for name, typ in _DUP_SCHEMA]))
