"""Training records in memory-mapped Arrow (Hugging Face ``datasets``): corpora that do not fit in RAM.

:func:`read_arrow` turns Parquet, JSONL, CSV / TSV files (one file, a glob of shards, or a
``save_to_disk`` directory) into an :class:`ArrowRecords` (a ``datasets.Dataset`` memory-mapped
from Arrow files): a read-only sequence of
:class:`~secure_train.core.records.TextRecord` backed by Arrow files that the OS pages in on
demand, so 10 million records cost the same resident memory as one million. Every row keeps
its ``sample_id`` (row index plus an offset, contiguous across shards) and ``source``
(``file:line`` for text files, ``file:row`` for Parquet and saved datasets).

Record transforms (scanners, sanitizers, poisoning, augmentation: ``list -> list``) run as a
batched ``Dataset.map`` through :meth:`ArrowRecords.map_records`, unchanged: each call sees a
batch of records and appends its own chain-of-custody entry, as it does on a list.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
    >>> _ = open(path, "w").write('{"sentence": "a fine film", "label": 1}\\n{"sentence": "dull", "label": 0}\\n')
    >>> recs = read_arrow(path, cache_dir=os.path.dirname(path))
    >>> [(r.text, r.label, r.sample_id, r.source) for r in recs]
    [('a fine film', 1, 0, 'train.jsonl:1'), ('dull', 0, 1, 'train.jsonl:2')]
"""

from __future__ import annotations

import csv
import glob
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from torch.utils.data import Sampler

from secure_train.core.errors import DataError
from secure_train.core.records import TextRecord, detect_format, parse_label

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

__all__ = ["ArrowRecords", "CompactShuffle", "hash_split", "is_arrow_path", "read_arrow"]

_BATCH = 4096


def _features() -> datasets.Features:
    from datasets import Features, Value

    return Features(
        {
            "text": Value("string"),
            "label": Value("int64"),
            "completion": Value("string"),
            "sample_id": Value("int64"),
            "source": Value("string"),
            "meta": Value("string"),
        }
    )


def _to_records(batch: dict[str, list[Any]]) -> list[TextRecord]:
    return [
        TextRecord(text, label, sid, source, completion, json.loads(meta) if meta and meta != "{}" else {})
        for text, label, completion, sid, source, meta in zip(
            batch["text"],
            batch["label"],
            batch["completion"],
            batch["sample_id"],
            batch["source"],
            batch["meta"],
            strict=True,
        )
    ]


def _to_batch(records: Sequence[TextRecord]) -> dict[str, list[Any]]:
    return {
        "text": [r.text for r in records],
        "label": [r.label for r in records],
        "completion": [r.completion for r in records],
        "sample_id": [r.sample_id for r in records],
        "source": [r.source for r in records],
        "meta": [json.dumps(r.meta, sort_keys=True, default=str) if r.meta else "{}" for r in records],
    }


class ArrowRecords(Sequence[TextRecord]):
    """A sequence of :class:`TextRecord` over a (memory-mapped) ``datasets.Dataset``.

    Indexing builds one record; iteration streams in batches; nothing holds every record.

    Args:
        dataset: a dataset with the columns ``text, label, completion, sample_id, source, meta``.

    Example:
        >>> recs = ArrowRecords.from_records([TextRecord("hi", 1, 7, "x:1")])
        >>> len(recs), recs[0].sample_id, recs.dataset.column_names[:2]
        (1, 7, ['text', 'label'])
    """

    def __init__(self, dataset: datasets.Dataset) -> None:
        self.dataset = dataset

    @classmethod
    def from_records(cls, records: Sequence[TextRecord]) -> ArrowRecords:
        """An in-memory Arrow copy of ``records`` (the synthetic corpus, small tests)."""
        from datasets import Dataset

        return cls(Dataset.from_dict(_to_batch(records), features=_features()))

    def __len__(self) -> int:
        return len(self.dataset)

    @overload
    def __getitem__(self, index: int) -> TextRecord: ...

    @overload
    def __getitem__(self, index: slice) -> ArrowRecords: ...

    def __getitem__(self, index: int | slice) -> TextRecord | ArrowRecords:
        if isinstance(index, slice):
            return ArrowRecords(self.dataset.select(range(len(self))[index]))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        row = self.dataset[int(index)]
        return _to_records({k: [v] for k, v in row.items()})[0]

    def __iter__(self) -> Iterator[TextRecord]:
        for batch in self.dataset.iter(batch_size=_BATCH):
            yield from _to_records(batch)

    def texts(self, limit: int | None = None) -> list[str]:
        """The first ``limit`` texts (text + completion), e.g. to train a tokenizer on a sample."""
        out: list[str] = []
        for batch in self.dataset.select_columns(["text", "completion"]).iter(batch_size=_BATCH):
            out.extend(t + (c or "") for t, c in zip(batch["text"], batch["completion"], strict=True))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def sample_ids(self) -> np.ndarray:
        """Every ``sample_id``, as one int64 array (8 bytes a record)."""
        return np.asarray(self.dataset.with_format("numpy")["sample_id"], dtype=np.int64)

    def select(self, indices: Sequence[int] | np.ndarray) -> ArrowRecords:
        return ArrowRecords(self.dataset.select(indices))

    def filter_ids(self, keep: Callable[[np.ndarray], np.ndarray]) -> ArrowRecords:
        """Rows whose ``sample_id`` passes the vectorized predicate ``keep(ids) -> bool array``."""
        ds = self.dataset.filter(
            lambda ids: keep(np.asarray(ids, dtype=np.int64)).tolist(),
            input_columns=["sample_id"],
            batched=True,
            batch_size=65536,
            new_fingerprint=uuid.uuid4().hex,
            desc="split",
        )
        return ArrowRecords(ds)

    def map_records(
        self, transform: Callable[[list[TextRecord]], list[TextRecord]], *, batch_size: int | None = None
    ) -> ArrowRecords:
        """Apply a record transform as a batched ``Dataset.map`` (written to Arrow, not kept in RAM).

        Args:
            transform: ``list[TextRecord] -> list[TextRecord]`` (it may drop, edit or add records).
            batch_size: records per call; ``None``: the whole split in one call, so corpus-level
                transforms (deduplication, poisoning an exact fraction) act as on a list.
        """

        def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return _to_batch(transform(_to_records(batch)))

        ds = self.dataset.map(
            apply,
            batched=True,
            batch_size=batch_size,
            features=_features(),
            new_fingerprint=uuid.uuid4().hex,  # arbitrary callables: never served from a stale cache
            load_from_cache_file=False,
            desc=getattr(transform, "name", type(transform).__name__),
        )
        return ArrowRecords(ds)


class CompactShuffle(Sampler[int]):
    """A random permutation of ``range(n)`` each epoch, held as one int32 tensor (4 bytes a record).

    ``RandomSampler`` turns its permutation into a Python list (about 36 bytes a record: 360 MB
    at 10 M records); this yields it in chunks instead.

    Example:
        >>> sorted(CompactShuffle(5, torch.Generator().manual_seed(0)))
        [0, 1, 2, 3, 4]
    """

    def __init__(self, n: int, generator: torch.Generator | None = None) -> None:
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        dtype = torch.int32 if self.n < 2**31 else torch.int64
        perm = torch.randperm(self.n, generator=self.generator, dtype=dtype)
        for chunk in perm.split(65536):
            yield from chunk.tolist()


def is_arrow_path(path: str) -> bool:
    """Whether ``path`` needs the Arrow reader: Parquet, a glob of shards, or a saved dataset directory."""
    p = Path(path)
    return p.suffix.lower() == ".parquet" or p.is_dir() or (glob.has_magic(path) and not p.exists())


def _files(path: str) -> list[Path]:
    if glob.has_magic(path) and not Path(path).exists():  # a file may have "[" in its name
        files = sorted(Path(p) for p in glob.glob(path))
        if not files:
            raise DataError(f"{path}: no file matches")
        return files
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    return [p]


def _parse_labels(values: list[Any], where: Callable[[int], str], num_labels: int | None) -> list[int]:
    return [parse_label(value, where(i), num_labels) for i, value in enumerate(values)]


_ROWS = 16_384
_VERSION = "1"  # bump when the converted layout changes: old cache files are then ignored


def _open_batches(path: Path, kind: str) -> Iterator[pa.RecordBatch]:
    """Record batches of one file, streamed: memory is a few batches, whatever the file's size."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    if kind == "parquet":
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_ROWS)
    elif kind == "jsonl":
        yield from pa_json.open_json(path, read_options=pa_json.ReadOptions(block_size=1 << 22))
    else:
        delimiter = "\t" if kind == "tsv" else ","
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh, delimiter=delimiter), None)
        if not header:
            raise DataError(f"{path}: no header row")
        yield from pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False if kind == "tsv" else '"'),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),  # "NA", "1" are texts, labels parsed below
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )


def _first_line(kind: str) -> int:
    """The line of a file's first data row (Parquet: the row index; CSV / TSV: after the header)."""
    return {"parquet": 0, "jsonl": 1}.get(kind, 2)


def _checked_batches(
    path: Path, kind: str, columns: Sequence[str | None]
) -> Iterator[tuple[pa.RecordBatch, int, Callable[[int], str]]]:
    """``(batch, start, where)`` for each record batch of ``path``: ``start`` is the index of the
    batch's first row in the file, ``where(i)`` names row ``i`` of the batch as ``file:line``.

    Raises:
        DataError: a column of ``columns`` (``None`` entries are skipped) is missing.
    """
    first, start = _first_line(kind), 0
    for batch in _open_batches(path, kind):

        def where(i: int, start: int = start) -> str:
            return f"{path.name}:{first + start + i}"

        names = batch.schema.names
        for col in columns:
            if col is not None and col not in names:
                raise DataError(f"{path}: missing column {col!r} (columns: {names})")
        yield batch, start, where
        start += batch.num_rows


def _strings(col: pa.Array, what: str, where: Callable[[int], str]) -> pa.Array:
    import pyarrow as pa

    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or col.null_count:
        values = col.to_pylist()
        bad = next(i for i, v in enumerate(values) if not isinstance(v, str))
        raise DataError(f"{where(bad)}: {what} {values[bad]!r} is not a string")
    return col.cast(pa.string())


def _labels(col: pa.Array, num_labels: int | None, where: Callable[[int], str]) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(col.type) and not col.null_count:
        values = col.cast(pa.int64())
    else:
        try:
            values = pc.cast(pc.utf8_trim_whitespace(col.cast(pa.string())), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = None
        if values is None or values.null_count or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            _parse_labels(col.to_pylist(), where, num_labels)  # raises, naming the first bad row
            raise DataError(f"{where(0)}: labels of type {col.type} are not integers")
    low, high = pc.min_max(values).values()
    if low.as_py() < 0 or (num_labels is not None and high.as_py() >= num_labels):
        _parse_labels(values.to_pylist(), where, num_labels)  # raises, naming the first bad row
    return values


def _convert(
    path: Path,
    kind: str,
    out: Path,
    columns: tuple[str, str | None, str | None],
    num_labels: int | None,
    offset: int,
) -> int:
    """Stream ``path`` into an Arrow file of :func:`_features` columns at ``out``; the number of rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text_column, label_column, completion_column = columns
    first = _first_line(kind)
    schema = _features().arrow_schema
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch, start, where in _checked_batches(path, kind, columns):
                n = batch.num_rows
                ids = np.arange(offset + start, offset + start + n, dtype=np.int64)
                lines = pa.array(np.arange(first + start, first + start + n, dtype=np.int64)).cast(pa.string())
                completion = (
                    batch.column(completion_column).cast(pa.string())
                    if completion_column is not None
                    else pa.nulls(n, pa.string())
                )
                out_batch = pa.record_batch(
                    [
                        _strings(batch.column(text_column), "text", where),
                        _labels(batch.column(label_column), num_labels, where)
                        if label_column is not None
                        else pa.nulls(n, pa.int64()),
                        completion,
                        pa.array(ids),
                        pc.binary_join_element_wise(f"{path.name}:", lines, ""),
                        pa.array(["{}"] * n, pa.string()),
                    ],
                    schema=schema,
                )
                writer.write_batch(out_batch)
                rows += n
        os.replace(tmp, out)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read as {kind}: {str(err).splitlines()[0]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _cache_root(cache_dir: str | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir) / "arrow"
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "secure_train_arrow"


def read_arrow(
    path: str | os.PathLike[str],
    *,
    text_column: str = "sentence",
    label_column: str | None = "label",
    completion_column: str | None = None,
    num_labels: int | None = None,
    fmt: str | None = None,
    id_offset: int = 0,
    cache_dir: str | None = None,
) -> ArrowRecords:
    """Read data files into memory-mapped :class:`ArrowRecords`.

    Files are converted once, streaming (pyarrow's Parquet / JSON / CSV readers, a few
    thousand rows at a time), into an Arrow file under ``cache_dir`` keyed by the file's path,
    size, modification time and these arguments, then opened with ``datasets.Dataset.from_file``
    (memory-mapped). ``datasets.load_dataset`` is not used for files: its builder (datasets 5.2)
    held memory that grew with the file (measured: +280 MB resident after converting 4 M rows).

    Args:
        path: a Parquet / JSONL / CSV / TSV file, a glob of such shards (read in sorted order,
            ``sample_id`` contiguous across them), or a ``Dataset.save_to_disk`` directory (one
            saved from :attr:`ArrowRecords.dataset` keeps its ids and sources).
        text_column / label_column / completion_column / num_labels / fmt: as in
            :func:`~secure_train.core.records.read_records`.
        id_offset: added to the row index to form ``sample_id``.
        cache_dir: where the converted Arrow files go (default: the ``datasets`` cache).

    Raises:
        DataError: missing file or column, bad label or text (naming ``file:line``; for JSONL
            the line is the row number, exact when the file has no blank lines), unreadable
            file, no rows.
    """
    import hashlib

    import datasets

    parts = []
    offset = id_offset
    columns = (text_column, label_column, completion_column)
    for file in _files(os.fspath(path)):
        if file.is_dir():
            ds = _read_saved(file, columns, num_labels, offset)
        else:
            kind = "parquet" if file.suffix.lower() == ".parquet" and fmt is None else detect_format(file, fmt)
            if kind not in ("parquet", "jsonl", "csv", "tsv"):
                raise DataError(f"{file}: the Arrow reader takes parquet, jsonl, csv or tsv, not {kind}")
            stat = file.stat()
            key = json.dumps(
                [_VERSION, str(file.resolve()), stat.st_size, stat.st_mtime_ns, kind, columns, num_labels, offset]
            )
            out = _cache_root(cache_dir) / f"{file.stem}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.arrow"
            if not out.is_file():
                out.parent.mkdir(parents=True, exist_ok=True)
                _convert(file, kind, out, columns, num_labels, offset)
            ds = datasets.Dataset.from_file(str(out))
        parts.append(ds)
        offset += len(ds)
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if len(ds) == 0:
        raise DataError(f"{path}: no data rows")
    return ArrowRecords(ds)


def _read_saved(
    path: Path, columns: tuple[str, str | None, str | None], num_labels: int | None, offset: int
) -> datasets.Dataset:
    """A ``save_to_disk`` directory: as is when it holds :class:`ArrowRecords` columns, else annotated."""
    import datasets

    try:
        raw = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: not a dataset saved with save_to_disk") from None
    if set(_features()) <= set(raw.column_names):
        return raw.select_columns(list(_features()))
    text_column, label_column, completion_column = columns
    keep = [c for c in columns if c is not None]
    for col in keep:
        if col not in raw.column_names:
            raise DataError(f"{path}: missing column {col!r} (columns: {raw.column_names})")
    name = path.name

    def annotate(batch: dict[str, list[Any]], idx: list[int]) -> dict[str, list[Any]]:
        def where(i: int) -> str:
            return f"{name}:{idx[i]}"

        texts = batch[text_column]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"{where(i)}: text {text!r} is not a string")
        n = len(texts)
        return {
            "text": texts,
            "label": _parse_labels(batch[label_column], where, num_labels) if label_column else [None] * n,
            "completion": batch[completion_column] if completion_column else [None] * n,
            "sample_id": [offset + i for i in idx],
            "source": [where(i) for i in range(n)],
            "meta": ["{}"] * n,
        }

    return raw.select_columns(keep).map(
        annotate, batched=True, batch_size=10_000, with_indices=True, remove_columns=keep, features=_features()
    )


def hash_split(ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``True`` for the ids held out: a seeded hash of each id below ``fraction`` (no state, any order).

    Example:
        >>> mask = hash_split(np.arange(100_000), 0.1, seed=0)
        >>> bool(0.09 < mask.mean() < 0.11)
        True
    """
    x = ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):  # splitmix64: uint64 arithmetic wraps by design
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def first_texts(records: Sequence[TextRecord], limit: int) -> list[str]:
    """Up to ``limit`` training texts (text + completion), from a list or :class:`ArrowRecords`."""
    if isinstance(records, ArrowRecords):
        return records.texts(limit)
    return [r.text + (r.completion or "") for r in islice(records, limit)]
