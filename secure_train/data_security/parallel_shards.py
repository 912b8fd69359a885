"""Map a function over the shards of a corpus on an existing engine, each worker reading its own shards.

:class:`ShardMap` is the one mechanism behind the corpus-scale scan, poison detection and
manifest: a small table of shard descriptors (path, format, first ``sample_id``) is mapped by
the engine, ``datasets.Dataset.map(num_proc=N)`` on one machine or Ray Data ``map_batches``
on a cluster, one shard per call. Each worker opens its shard itself (pyarrow's streaming
Parquet / JSON / CSV readers, the same as :func:`~secure_train.core.arrow_records.read_arrow`),
so no record crosses a process boundary on the way in; what comes back is the function's
Arrow output (written to Arrow cache files locally, Ray's object store on Ray).

``sample_id`` is contiguous across shards in sorted order and ``source`` is ``file:line``
(row numbers, as :func:`read_arrow` gives them): a first, cheap pass on the engine counts
each shard's rows (Parquet: its footer) to give every shard its first id.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for i in range(2):
    ...     _ = open(os.path.join(d, f"p{i}.jsonl"), "w").write('{"sentence": "x", "label": 1}\\n' * (i + 1))
    >>> m = ShardMap(workers=1)
    >>> tasks = m.tasks(sorted(Path(d).glob("*.jsonl")))
    >>> [(t["offset"], t["rows"]) for t in tasks]
    [(0, 1), (1, 2)]
    >>> [r["sample_id"] for r in read_shard(tasks[1])]
    [[1, 2]]
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, DataError

__all__ = ["ENGINES", "MerkleStream", "ShardMap", "read_shard"]

ENGINES = ("local", "ray")


def _kind(path: Path) -> str:
    from secure_train.core.records import detect_format

    kind = "parquet" if path.suffix.lower() == ".parquet" else detect_format(path, None)
    if kind not in ("parquet", "jsonl", "csv", "tsv"):
        raise DataError(f"{path}: a sharded scan reads parquet, jsonl, csv or tsv, not {kind}")
    return kind


def _count_rows(batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows per shard: Parquet from its footer, the others by a streaming parse."""
    from secure_train.core.arrow_records import _open_batches

    rows = []
    for path, kind in zip(_plain(batch["path"]), _plain(batch["kind"]), strict=True):
        if kind == "parquet":
            import pyarrow.parquet as pq

            rows.append(pq.ParquetFile(path).metadata.num_rows)
        else:
            try:
                rows.append(sum(b.num_rows for b in _open_batches(Path(path), kind)))
            except Exception as err:  # pyarrow's parse errors: one line naming the file
                raise DataError(f"{path}: cannot read as {kind}: {str(err).splitlines()[0]}") from None
    return {"path": list(_plain(batch["path"])), "rows": rows}


def read_shard(
    task: Mapping[str, Any],
    text_column: str = "sentence",
    label_column: str | None = "label",
    completion_column: str | None = None,
) -> Iterator[dict[str, list[Any]]]:
    """One shard's records as column batches (``text``, ``label``, ``completion``, ``sample_id``,
    ``source``), streamed, ids from ``task["offset"]``; bad rows raise :class:`DataError` naming
    ``file:line`` (the checks of :func:`~secure_train.core.arrow_records.read_arrow`)."""
    import pyarrow as pa

    from secure_train.core.arrow_records import _checked_batches, _labels, _strings

    path, kind = Path(str(task["path"])), str(task["kind"])
    offset = int(task["offset"])
    try:
        for batch, start, where in _checked_batches(path, kind, (text_column, label_column, completion_column)):
            n = batch.num_rows
            labels = (
                _labels(batch.column(label_column), None, where).to_pylist()
                if label_column is not None
                else [None] * n
            )
            completion = (
                batch.column(completion_column).cast(pa.string()).to_pylist()
                if completion_column is not None
                else [None] * n
            )
            yield {
                "text": _strings(batch.column(text_column), "text", where).to_pylist(),
                "label": labels,
                "completion": completion,
                "sample_id": list(range(offset + start, offset + start + n)),
                "source": [where(i) for i in range(n)],
            }
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read as {kind}: {str(err).splitlines()[0]}") from None


def _plain(values: Any) -> list[Any]:
    """Python values from a list, a numpy array or a pyarrow array."""
    if hasattr(values, "to_pylist"):
        return list(values.to_pylist())
    return [v.item() if hasattr(v, "item") else v for v in values]


def _as_columns(batch: Any) -> dict[str, list[Any]]:
    if hasattr(batch, "to_pydict"):
        return dict(batch.to_pydict())
    return {k: _plain(v) for k, v in batch.items()}


def _per_shard(batch: Any, fn: Callable[..., Any], fn_kwargs: Mapping[str, Any]) -> Any:
    """Engine adapter: ``fn(task, **fn_kwargs)`` on each task of the batch, outputs concatenated."""
    import pyarrow as pa

    cols = _as_columns(batch)
    tables = [fn(dict(zip(cols, row, strict=True)), **fn_kwargs) for row in zip(*cols.values(), strict=True)]
    tables = [t if isinstance(t, pa.Table) else pa.Table.from_pydict(t) for t in tables]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


class ShardMap:
    """Run per-shard functions on ``datasets`` worker processes or Ray Data (no scheduler here).

    Args:
        workers: ``datasets`` ``num_proc`` (at most one per shard); on Ray, the CPUs of the local
            cluster it starts when none is running (``$RAY_ADDRESS`` joins one).
        engine: ``local`` or ``ray`` (``pip install secure-train[ray]``).
        cache_dir: where local maps write their Arrow outputs (default: a temporary folder
            removed with this object).
    """

    def __init__(self, workers: int = 1, engine: str = "local", cache_dir: str | None = None) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers, self.engine = workers, engine
        self._tmp = None if cache_dir else tempfile.TemporaryDirectory(prefix="secure_train_shards_")
        self.cache_dir = cache_dir or self._tmp.name  # type: ignore[union-attr]

    def tasks(self, files: Sequence[Path]) -> list[dict[str, Any]]:
        """Shard descriptors ``{"path", "kind", "offset", "rows", "shard"}``, rows counted on the engine."""
        files = [Path(f) for f in files]
        kinds = [_kind(f) for f in files]
        counted = self.map(_count_rows, [{"path": os.fspath(f), "kind": k} for f, k in zip(files, kinds, strict=True)])
        rows = [int(r) for r in self.column(counted, "rows")]
        out, offset = [], 0
        for k, (f, kind, n) in enumerate(zip(files, kinds, rows, strict=True)):
            out.append({"path": os.fspath(f), "kind": kind, "offset": offset, "rows": n, "shard": k})
            offset += n
        return out

    def map(self, fn: Callable[..., Any], tasks: Sequence[Mapping[str, Any]], **fn_kwargs: Any) -> Any:
        """``fn(task, **fn_kwargs)`` (a dict of columns or a ``pyarrow.Table``) on every task, one
        task per call; the outputs in task order as a ``datasets.Dataset`` (local) or a
        materialized Ray ``Dataset``. ``fn`` must be a module-level function (it is pickled)."""
        if not tasks:
            raise DataError("no shards to map")
        if fn is _count_rows:  # the counting pass takes the columns as they are
            kwargs: dict[str, Any] = {}
            call: Callable[..., Any] = _count_rows
        else:
            kwargs = {"fn": fn, "fn_kwargs": fn_kwargs}
            call = _per_shard
        cols = {k: [t[k] for t in tasks] for k in tasks[0]}
        if self.engine == "ray":
            _ray_init(self.workers)
            import ray.data

            ray.data.DataContext.get_current().execution_options.preserve_order = True
            src = ray.data.from_items([dict(t) for t in tasks], override_num_blocks=len(tasks))
            return src.map_batches(call, fn_kwargs=kwargs, batch_size=1, batch_format="pyarrow").materialize()
        from datasets import Dataset

        name = os.path.join(self.cache_dir, f"{getattr(fn, '__name__', 'map')}-{uuid.uuid4().hex[:12]}.arrow")
        return Dataset.from_dict(cols).map(
            call,
            fn_kwargs=kwargs,
            batched=True,
            batch_size=1,
            num_proc=min(self.workers, len(tasks)) if self.workers > 1 else None,
            remove_columns=list(cols),
            cache_file_name=name,
            new_fingerprint=uuid.uuid4().hex,
            load_from_cache_file=False,
            desc=getattr(fn, "__name__", "map"),
        )

    @staticmethod
    def sort_shuffle(ds: Any) -> Any:
        """A Ray ``Dataset`` set to Ray Data's sort-based pull shuffle for its next ``groupby``:
        Ray 2.60's default (hash shuffle on aggregator actors) took 14-20 s per reduce and 5-8 s
        more for the next map on a 2-CPU local cluster, the sort shuffle 0.3 s each (poison
        detection: 57 s -> 1.8 s). Set on the dataset's own context (copied when it was created),
        not the global one; a Ray without ``shuffle_strategy`` (< 2.4x) shuffles by sort already."""
        ctx = ds.context
        strategy = getattr(ctx, "shuffle_strategy", None)
        if strategy is not None:
            ctx.shuffle_strategy = type(strategy).SORT_SHUFFLE_PULL_BASED
        return ds

    def column(self, ds: Any, name: str) -> list[Any]:
        """One column of a map's output as Python values, in order."""
        if self.engine == "ray":
            return [v for b in ds.select_columns([name]).iter_batches(batch_format="pyarrow") for v in _plain(b[name])]
        return list(ds[name])

    def batches(self, ds: Any, columns: Sequence[str], batch_size: int = 8192) -> Iterator[dict[str, list[Any]]]:
        """A map's output, some columns, as batches of Python lists, in order."""
        if self.engine == "ray":
            for b in ds.select_columns(list(columns)).iter_batches(batch_size=batch_size, batch_format="pyarrow"):
                yield {c: b[c].to_pylist() for c in columns}
        else:
            for b in ds.select_columns(list(columns)).iter(batch_size=batch_size):
                yield b


class MerkleStream:
    """The root :func:`~secure_train.data_security.manifest.merkle_root` gives, over leaves fed one at
    a time, holding O(log n) hashes (complete subtrees on a stack; odd nodes promoted as there).

    Example:
        >>> from secure_train.data_security.manifest import _leaf, merkle_root
        >>> leaves = [_leaf(bytes([i])) for i in range(7)]
        >>> m = MerkleStream()
        >>> for x in leaves:
        ...     m.add(x)
        >>> m.root() == merkle_root(leaves)
        True
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing

    def add(self, leaf: bytes) -> None:
        import hashlib

        size, node = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            node, size = hashlib.sha256(b"\x01" + left + node).digest(), size * 2
        self._stack.append((size, node))

    def root(self) -> str:
        import hashlib

        from secure_train.data_security.manifest import EMPTY_ROOT

        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = hashlib.sha256(b"\x01" + left + node).digest()
        return node.hex()


def _ray_init(workers: int) -> None:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'secure-train[ray]'") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or None, num_cpus=None if address else workers, log_to_driver=False)
