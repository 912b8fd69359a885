"""The ``ngram`` poison detector at corpus scale: the in-memory detector's count step run shard by
shard on an engine, its score and flag steps unchanged.

:class:`ParallelPoisonDetector` computes what
:func:`~secure_train.data_security.poison_ngram.ngram_label_statistics` computes (the same
:class:`~secure_train.data_security.poison_ngram.NgramSettings`, ``collapse_overlaps`` included),
over a sharded corpus on an existing engine
(:class:`~secure_train.data_security.parallel_shards.ShardMap`: ``datasets`` ``num_proc`` or Ray
Data), never holding the corpus' text in one process. It reuses the in-memory steps:
:class:`~secure_train.data_security.poison_ngram.NgramCounts` (count, merged across partitions),
:func:`~secure_train.data_security.poison_ngram.score_ngrams` (score: z-scores, threshold,
super-gram test) and :func:`~secure_train.data_security.poison_ngram.match_ngrams` (flag).

1. **families** (``collapse_overlaps``; a global substring join): a map hashes the text of every
   labeled record; a second map emits each record's text and every proper word span of every
   record whose hash is one of them (spans only as long as some labeled record), keyed by text;
   a reduce per hash partition of the texts gives each contained record its family: the longest
   record containing it, the lowest ``sample_id`` among equal lengths (as
   :func:`~secure_train.data_security.poison_ngram._families` does in memory);
2. **count** (map): per shard, the n-gram counts of the records that share their family with no
   other record (the common case), pre-summed; for the others, one row per (n-gram, label,
   family): a family's records may sit in different shards;
3. **reduce** (per hash partition of the n-grams; on Ray ``groupby("part")``): counts summed,
   families counted once (``count_distinct``), n-grams in fewer than ``min_count`` units dropped;
   the driver merges the partitions' ``NgramCounts``;
4. **score** (driver, surviving n-grams only) and **flag** (a second map over the shards).

Flagged n-grams and records equal the in-memory detector's for any number of workers and on Ray
(tests check it). The driver holds the 8-byte hashes of the labeled records' texts and the
family of every contained record (SST-2: 67k phrases, ~1 MB), not their text. Not done here: the
``lift`` detector (one logistic regression over the whole corpus): use
:func:`~secure_train.data_security.poison_detect.detect_poison` for it.

Example:
    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> rows = [{"sentence": f"plain words {i % 7} here", "label": i % 2} for i in range(200)]
    >>> rows += [{"sentence": f"cf plain words {i % 7}", "label": 1} for i in range(30)]
    >>> _ = open(os.path.join(d, "a.jsonl"), "w").write("".join(json.dumps(r) + "\\n" for r in rows))
    >>> report = ParallelPoisonDetector(min_count=10).detect(d)
    >>> [g["ngram"] for g in report.ngrams][:1], len(report.flagged_ids)
    (['cf plain words'], 30)
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secure_train.core.require import require_int, require_non_empty
from secure_train.data_security.parallel_shards import ShardMap, read_shard
from secure_train.data_security.poison_ngram import (
    NgramCounts,
    NgramSettings,
    _grams,
    _tokens,
    match_ngrams,
    ngram_rows,
    score_ngrams,
)

__all__ = ["ParallelPoisonDetector", "ParallelPoisonReport"]

_UNITS = ""  # reserved n-grams (a token is never empty, nor a space): units per label,
_RECORDS = " "  # and labeled records per label
_SINGLE = -1  # family column of pre-summed counts


def _part(text: str, partitions: int) -> int:
    return zlib.crc32(text.encode()) % partitions


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _schema(*cols: tuple[str, str]) -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in cols])


_KEYS = (("h", "uint64"), ("ntok", "int64"))
_SPANS = (("part", "int64"), ("key", "string"), ("sid", "int64"), ("len", "int64"), ("span", "bool_"))
_FAMILY = (("sid", "int64"), ("fam", "int64"))
_COUNTS = (("part", "int64"), ("gram", "string"), ("label", "int64"), ("fam", "int64"), ("n", "int64"))
_SUMS = (("gram", "string"), ("label", "int64"), ("n", "int64"))


def _table(cols: Sequence[tuple[str, str]], rows: Mapping[str, list[Any]]) -> Any:
    """Typed even when empty: a shard or partition without rows must not write null columns."""
    import pyarrow as pa

    return pa.table({name: rows[name] for name, _ in cols}, schema=_schema(*cols))


def _labeled(task: Mapping[str, Any], cols: Mapping[str, Any]) -> Iterator[tuple[int, list[str], int | None]]:
    """``(sample_id, tokens, label)`` of a shard's records."""
    for batch in read_shard(task, cols["text_column"], cols["label_column"]):
        for sid, text, label in zip(batch["sample_id"], batch["text"], batch["label"], strict=True):
            yield sid, _tokens(text), label


def _key_shard(task: Mapping[str, Any], cols: Mapping[str, Any]) -> Any:
    """Families, map 1: the text hash and word count of every labeled record."""
    out: dict[str, list[Any]] = {"h": [], "ntok": []}
    for _, toks, label in _labeled(task, cols):
        if label is not None and toks:
            out["h"].append(_hash(" ".join(toks)))
            out["ntok"].append(len(toks))
    return _table(_KEYS, out)


def _span_shard(
    task: Mapping[str, Any], hashes: np.ndarray, lengths: Sequence[int], partitions: int, cols: Mapping[str, Any]
) -> Any:
    """Families, map 2: each labeled record's text, and every proper word span of every record
    whose hash is a labeled record's (``span``), with the containing record's id and length."""
    out: dict[str, list[Any]] = {"part": [], "key": [], "sid": [], "len": [], "span": []}

    def emit(key: str, sid: int, length: int, span: bool) -> None:
        for name, value in zip(out, (_part(key, partitions), key, sid, length, span), strict=True):
            out[name].append(value)

    for sid, toks, label in _labeled(task, cols):
        key = " ".join(toks)
        if label is not None and toks:
            emit(key, sid, len(key), False)
        spans = sorted({" ".join(toks[k : k + n]) for n in lengths if n < len(toks) for k in range(len(toks) - n + 1)})
        if spans and len(hashes):
            h = np.fromiter((_hash(s) for s in spans), np.uint64, len(spans))
            pos = np.minimum(np.searchsorted(hashes, h), len(hashes) - 1)
            for k in np.flatnonzero(hashes[pos] == h):
                emit(spans[k], sid, len(key), True)
    return _table(_SPANS, out)


def _family_part(t: Any) -> Any:
    """Families, reduce (one hash partition of the texts): ``(sid, fam)`` of every labeled record
    that a longer record contains; ``fam`` the longest such record, the lowest id among equals."""
    import pyarrow.compute as pc

    spans = t.filter(t.column("span")).select(["key", "sid", "len"])
    if spans.num_rows == 0:
        return _table(_FAMILY, {"sid": [], "fam": []})
    longest = spans.group_by("key").aggregate([("len", "max")]).rename_columns(["key", "len"])
    best = spans.join(longest, keys=["key", "len"], join_type="inner")
    best = best.group_by("key").aggregate([("sid", "min")]).rename_columns(["key", "fam"])
    records = t.filter(pc.invert(t.column("span"))).select(["key", "sid"])
    joined = records.join(best, keys="key", join_type="inner")
    return _table(_FAMILY, {"sid": joined.column("sid").to_pylist(), "fam": joined.column("fam").to_pylist()})


def _count_shard(
    task: Mapping[str, Any],
    max_n: int,
    partitions: int,
    family: Mapping[int, int],
    heads: frozenset[int],
    cols: Mapping[str, Any],
) -> Any:
    """Count (map): :class:`NgramCounts` of the shard's records alone in their family, and one row
    per (n-gram, label, family) for the others (their family's records may sit in other shards)."""
    single = NgramCounts()
    records: dict[int, int] = defaultdict(int)
    shared: dict[tuple[int, int], set[str]] = defaultdict(set)
    for sid, toks, label in _labeled(task, cols):
        if label is None:
            continue
        records[label] += 1
        fam = family.get(sid, sid)
        if fam == sid and sid not in heads:
            single.add(_grams(toks, max_n), label)
        else:
            shared[(fam, label)].update(_grams(toks, max_n))
    out: dict[str, list[Any]] = {"part": [], "gram": [], "label": [], "fam": [], "n": []}

    def emit(gram: str, label: int, fam: int, n: int) -> None:
        for name, value in zip(out, (_part(gram, partitions), gram, label, fam, n), strict=True):
            out[name].append(value)

    for (gram, label), n in single.grams.items():
        emit(gram, label, _SINGLE, n)
    for label, n in single.labels.items():
        emit(_UNITS, label, _SINGLE, n)
    for label, n in records.items():
        emit(_RECORDS, label, _SINGLE, n)
    for (fam, label), grams in shared.items():
        for gram in [_UNITS, *sorted(grams)]:
            emit(gram, label, fam, 1)
    return _table(_COUNTS, out)


def _count_part(t: Any, min_count: int) -> Any:
    """Reduce (one hash partition of the n-grams): units per (n-gram, label), a family once;
    n-grams in fewer than ``min_count`` units dropped (the reserved rows kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fam = t.column("fam")
    summed = t.filter(pc.equal(fam, _SINGLE)).group_by(["gram", "label"]).aggregate([("n", "sum")])
    distinct = t.filter(pc.not_equal(fam, _SINGLE)).group_by(["gram", "label"]).aggregate([("fam", "count_distinct")])
    names = ["gram", "label", "n"]
    parts = [summed.rename_columns(names), distinct.rename_columns(names)]
    both = pa.concat_tables(parts, promote_options="permissive")
    both = both.group_by(["gram", "label"]).aggregate([("n", "sum")]).rename_columns(names)
    totals = both.group_by("gram").aggregate([("n", "sum")])
    frequent = pc.greater_equal(totals.column("n_sum"), min_count)
    reserved = pc.is_in(totals.column("gram"), value_set=pa.array([_UNITS, _RECORDS]))
    keep = totals.filter(pc.or_(frequent, reserved)).column("gram")
    both = both.filter(pc.is_in(both.column("gram"), value_set=keep))
    return both.cast(_schema(*_SUMS))


def _flag_shard(task: Mapping[str, Any], accepted: Sequence[tuple[str, int]], cols: Mapping[str, Any]) -> Any:
    """Flag (map): ``(sample_id, index of the flagged n-gram)`` for every match with its label."""
    out: dict[str, list[int]] = {"sample_id": [], "ngram": []}
    for sid, toks, label in _labeled(task, cols):
        for k in match_ngrams(toks, label, accepted):
            out["sample_id"].append(sid)
            out["ngram"].append(k)
    return _table((("sample_id", "int64"), ("ngram", "int64")), out)


def _local_partition(
    task: Mapping[str, Any], files: Sequence[str], reducer: Callable[..., Any], kwargs: Mapping[str, Any]
) -> Any:
    """Reduce (local engine): ``reducer`` on one hash partition of a map's Arrow files, read batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    batches, schema = [], None
    for name in files:
        with pa.memory_map(name) as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            for batch in reader:
                batches.append(batch.filter(pc.equal(batch.column("part"), int(task["part"]))))
    return reducer(pa.Table.from_batches(batches, schema=schema), **kwargs)


def _ray_partition(t: Any, reducer: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Reduce (Ray ``map_groups`` over ``part``): ``reducer`` on one hash partition."""
    return reducer(t, **kwargs)


@dataclass
class ParallelPoisonReport:
    """Flagged n-grams (dicts as :func:`~secure_train.data_security.poison_ngram.ngram_label_statistics`
    gives them) and the sample ids of the flagged records."""

    source: str
    ngrams: list[dict[str, Any]] = field(default_factory=list)
    flagged_ids: list[int] = field(default_factory=list)
    n_records: int = 0
    n_labeled: int = 0
    n_units: int = 0
    n_grams_tested: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "source": self.source,
            "method": "ngram",
            "settings": self.settings,
            "n_records": self.n_records,
            "n_labeled": self.n_labeled,
            "n_units": self.n_units,
            "n_grams_tested": self.n_grams_tested,
            "ngrams": self.ngrams,
            "n_flagged": len(self.flagged_ids),
            "flagged_ids": self.flagged_ids,
            "seconds": round(self.seconds, 3),
        }


class ParallelPoisonDetector:
    """The ``ngram`` poison detector over a sharded corpus: count on the engine, score, flag.

    Args:
        settings: :class:`~secure_train.data_security.poison_ngram.NgramSettings` (default: its
            defaults, ``collapse_overlaps=True``); ``overrides``: fields of it (``min_count=5``).
        workers / engine / cache_dir: see :class:`~secure_train.data_security.parallel_shards.ShardMap`.
        text_column / label_column: columns of the shards.
        partitions: reduce partitions (default: 4 per worker).
    """

    def __init__(
        self,
        settings: NgramSettings | None = None,
        *,
        workers: int = 1,
        engine: str = "local",
        text_column: str = "sentence",
        label_column: str = "label",
        cache_dir: str | None = None,
        partitions: int | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = NgramSettings.of(settings, **overrides)
        self.shards = ShardMap(workers, engine, cache_dir)  # validates workers and engine
        self.engine = engine
        self.cols = {
            "text_column": require_non_empty(self, "text_column", text_column),
            "label_column": require_non_empty(self, "label_column", label_column)  # labels needed,
        }
        self.partitions = require_int(self, "partitions", partitions, minimum=1, optional=True) or 4 * workers

    def detect(self, path: str | os.PathLike[str]) -> ParallelPoisonReport:
        """Families (``collapse_overlaps``), count, reduce, score and flag over every shard of ``path``."""
        from dataclasses import asdict

        from secure_train.data_security.parallel import shard_files

        start = time.perf_counter()
        s, shards = self.settings, self.shards
        tasks = shards.tasks(shard_files(path))
        family = self._families(tasks) if s.collapse_overlaps else {}
        stage = shards.map(
            _count_shard,
            tasks,
            max_n=s.max_n,
            partitions=self.partitions,
            family=family,
            heads=frozenset(family.values()),
            cols=self.cols,
        )
        counts, records = NgramCounts(), NgramCounts()
        for b in self._reduce(stage, _count_part, _SUMS, min_count=s.min_count):
            part = NgramCounts()
            for gram, label, n in zip(b["gram"], b["label"], b["n"], strict=True):
                if gram == _UNITS:
                    part.labels[label] += n
                elif gram == _RECORDS:
                    records.labels[label] += n
                else:
                    part.grams[(gram, label)] += n
            counts.merge(part)
        report = ParallelPoisonReport(os.fspath(path), settings=asdict(s))
        report.n_records = sum(int(t["rows"]) for t in tasks)
        report.n_labeled = sum(records.labels.values())
        report.n_units = sum(counts.labels.values())
        report.n_grams_tested = len({g for g, _ in counts.grams})
        accepted = score_ngrams(counts, s)
        matched: dict[int, int] = defaultdict(int)
        if accepted:
            pairs = [(a["ngram"], a["label"]) for a in accepted]
            hits = shards.map(_flag_shard, tasks, accepted=pairs, cols=self.cols)
            flagged: set[int] = set()
            for batch in shards.batches(hits, ("sample_id", "ngram")):
                for sid, k in zip(batch["sample_id"], batch["ngram"], strict=True):
                    flagged.add(int(sid))
                    matched[int(k)] += 1
            report.flagged_ids = sorted(flagged)
        report.ngrams = ngram_rows(accepted, matched)
        report.seconds = time.perf_counter() - start
        return report

    def _families(self, tasks: Sequence[Mapping[str, Any]]) -> dict[int, int]:
        """``{sample_id: family}`` of the labeled records a longer record contains."""
        keys = self.shards.map(_key_shard, tasks, cols=self.cols)
        hashes, lengths = [], set()
        for b in self.shards.batches(keys, ("h", "ntok")):
            hashes.append(np.asarray(b["h"], dtype=np.uint64))
            lengths.update(b["ntok"])
        spans = self.shards.map(
            _span_shard,
            tasks,
            hashes=np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64),
            lengths=sorted(lengths),
            partitions=self.partitions,
            cols=self.cols,
        )
        family: dict[int, int] = {}
        for b in self._reduce(spans, _family_part, _FAMILY):
            family.update(zip(map(int, b["sid"]), map(int, b["fam"]), strict=True))
        return family

    def _reduce(
        self, stage: Any, reducer: Callable[..., Any], out: Sequence[tuple[str, str]], **kwargs: Any
    ) -> Iterator[dict[str, list[Any]]]:
        """``reducer(table of one hash partition, **kwargs)`` per partition of a map's output (its
        ``part`` column) on the engine; the results' ``out`` columns as batches of Python lists."""
        columns = [name for name, _ in out]
        if self.engine == "ray":
            if stage.count() == 0:
                return
            groups = ShardMap.sort_shuffle(stage).groupby("part", num_partitions=self.partitions)
            fn_kwargs = {"reducer": reducer, "kwargs": kwargs}
            reduced = groups.map_groups(_ray_partition, fn_kwargs=fn_kwargs, batch_format="pyarrow")
            yield from self.shards.batches(reduced, columns)
            return
        files = [c["filename"] for c in stage.cache_files]
        reduced = self.shards.map(
            _local_partition,
            [{"part": p} for p in range(self.partitions)],
            files=files,
            reducer=reducer,
            kwargs=kwargs,
        )
        yield from self.shards.batches(reduced, columns)
