"""The ``ngram`` poison detector at corpus scale: map (per-shard counts) -> reduce -> score -> flag.

:class:`ParallelPoisonDetector` computes what
:func:`~secure_train.data_security.poison.ngram_label_statistics` computes with
``collapse_overlaps=False``, over a sharded corpus on an existing engine
(:class:`~secure_train.data_security.parallel_shards.ShardMap`: ``datasets`` ``num_proc`` or Ray
Data), never holding the corpus in one process:

1. **map**: each worker reads its shards and counts, per (word n-gram, label), the labeled records
   that contain the n-gram (n = 1..``max_n``; pyarrow hash aggregation per read batch), and the
   records per label; every n-gram is assigned a hash partition;
2. **reduce**: per partition (a task each; on Ray a ``groupby("gram")``), the counts of all shards
   are summed and n-grams seen in fewer than ``min_count`` records dropped;
3. **score** (driver, on the surviving n-grams only): the z-scores, the threshold ``mean +
   z_sigma * std`` and the super-gram test of the single-process detector;
4. **flag**: a second map flags the records that contain an accepted n-gram and carry its label.

Flagged n-grams and records equal the single-process detector's with ``collapse_overlaps=False``
(a test checks it). Not done here: the family collapse of overlapping records (SST-2's
sub-phrases; a global substring join) and the ``lift`` detector (one logistic regression over
the whole corpus): use :func:`~secure_train.data_security.poison.detect_poison` for those.

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

import math
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.data_security.parallel_shards import ShardMap, read_shard

__all__ = ["ParallelPoisonDetector", "ParallelPoisonReport"]

_LABELS = -1  # partition of the per-label record counts in the map output


def _tokens(text: str) -> list[str]:
    return text.lower().split()  # the tokenization of secure_train.data_security.poison


def _grams(tokens: list[str], max_n: int) -> set[str]:
    return {" ".join(tokens[k : k + n]) for n in range(1, max_n + 1) for k in range(len(tokens) - n + 1)}


def _count_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("part", pa.int64()), ("gram", pa.string()), ("label", pa.int64()), ("n", pa.int64())])


def _count_shard(
    task: Mapping[str, Any], max_n: int, partitions: int, text_column: str, label_column: str | None
) -> Any:
    """Map: per (n-gram, label) the number of the shard's labeled records containing it."""
    import pyarrow as pa

    schema = _count_schema()
    parts: list[Any] = []
    per_label: dict[int, int] = defaultdict(int)
    for batch in read_shard(task, text_column, label_column):
        grams: list[str] = []
        labels: list[int] = []
        for text, label in zip(batch["text"], batch["label"], strict=True):
            if label is None:
                continue
            per_label[label] += 1
            g = _grams(_tokens(text), max_n)
            grams.extend(g)
            labels.extend([label] * len(g))
        if grams:
            t = pa.table({"gram": pa.array(grams, pa.string()), "label": pa.array(labels, pa.int64())})
            t = t.append_column("n", pa.array([1] * len(grams), pa.int64()))
            agg = t.group_by(["gram", "label"]).aggregate([("n", "sum")])
            parts.append(pa.table({"gram": agg.column("gram"), "label": agg.column("label"), "n": agg.column("n_sum")}))
    out = [pa.table({"part": [_LABELS] * len(per_label), "gram": [""] * len(per_label),
                     "label": list(per_label), "n": list(per_label.values())}, schema=schema)]  # fmt: skip
    if parts:
        t = pa.concat_tables(parts).group_by(["gram", "label"]).aggregate([("n", "sum")])
        gram_col = t.column("gram").to_pylist()
        part = pa.array([zlib.crc32(g.encode()) % partitions for g in gram_col], pa.int64())
        out.append(pa.table([part, t.column("gram"), t.column("label"), t.column("n_sum")], schema=schema))
    return pa.concat_tables(out)


def _reduce_part(task: Mapping[str, Any], files: Sequence[str], min_count: int) -> Any:
    """Reduce (local engine): one partition's counts summed over every shard's map output."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = []
    for name in files:
        with pa.memory_map(name) as source:
            t = pa.ipc.open_stream(source).read_all()
        tables.append(t.filter(pc.equal(t.column("part"), int(task["part"]))))
    return _survivors(pa.concat_tables(tables), min_count)


def _survivors(t: Any, min_count: int) -> Any:
    """Counts per (n-gram, label) summed; n-grams seen in fewer than ``min_count`` records dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = pa.schema([("gram", pa.string()), ("label", pa.int64()), ("n", pa.int64())])
    if t.num_rows == 0:
        return schema.empty_table()
    summed = t.group_by(["gram", "label"]).aggregate([("n", "sum")])
    totals = summed.group_by("gram").aggregate([("n_sum", "sum")])
    keep = totals.filter(pc.greater_equal(totals.column("n_sum_sum"), min_count)).column("gram")
    summed = summed.filter(pc.is_in(summed.column("gram"), value_set=keep))
    return pa.table([summed.column("gram"), summed.column("label"), summed.column("n_sum")], schema=schema)


def _reduce_group(g: Any, min_count: int) -> Any:
    """Reduce (Ray ``map_groups``): one n-gram's rows from every shard."""
    return _survivors(g.select(["gram", "label", "n"]), min_count)


def _select(batch: Any, labels: bool) -> Any:
    """The per-label rows (``labels``) or the n-gram rows of a map output batch."""
    import pyarrow.compute as pc

    part = batch.column("part")
    return batch.filter(pc.equal(part, _LABELS) if labels else pc.not_equal(part, _LABELS))


def _flag_shard(
    task: Mapping[str, Any], accepted: Sequence[tuple[str, int]], text_column: str, label_column: str | None
) -> Any:
    """Flag pass: ``(sample_id, index of the accepted n-gram)`` for every match with its label."""
    out: dict[str, list[int]] = {"sample_id": [], "ngram": []}
    for batch in read_shard(task, text_column, label_column):
        for sid, text, label in zip(batch["sample_id"], batch["text"], batch["label"], strict=True):
            if label is None:
                continue
            padded = " " + " ".join(_tokens(text)) + " "
            for k, (gram, glabel) in enumerate(accepted):
                if glabel == label and f" {gram} " in padded:
                    out["sample_id"].append(sid)
                    out["ngram"].append(k)
    import pyarrow as pa  # typed even when empty: a shard without a match must not write null columns

    return pa.table(out, schema=pa.schema([("sample_id", pa.int64()), ("ngram", pa.int64())]))


@dataclass
class ParallelPoisonReport:
    """Flagged n-grams (dicts as :func:`~secure_train.data_security.poison.ngram_label_statistics`
    gives them) and the sample ids of the flagged records."""

    source: str
    ngrams: list[dict[str, Any]] = field(default_factory=list)
    flagged_ids: list[int] = field(default_factory=list)
    n_records: int = 0
    n_labeled: int = 0
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
            "n_grams_tested": self.n_grams_tested,
            "ngrams": self.ngrams,
            "n_flagged": len(self.flagged_ids),
            "flagged_ids": self.flagged_ids,
            "seconds": round(self.seconds, 3),
        }


class ParallelPoisonDetector:
    """The ``ngram`` poison detector over a sharded corpus, as map -> reduce -> score on an engine.

    Args:
        max_n / min_count / z_sigma / min_purity: as in
            :func:`~secure_train.data_security.poison.ngram_label_statistics`.
        workers / engine / cache_dir: see :class:`~secure_train.data_security.parallel_shards.ShardMap`.
        text_column / label_column: columns of the shards.
        partitions: reduce partitions (default: 4 per worker).
    """

    def __init__(
        self,
        *,
        max_n: int = 4,
        min_count: int = 10,
        z_sigma: float = 3.5,
        min_purity: float = 0.9,
        workers: int = 1,
        engine: str = "local",
        text_column: str = "sentence",
        label_column: str = "label",
        cache_dir: str | None = None,
        partitions: int | None = None,
    ) -> None:
        if max_n < 1 or min_count < 1:
            raise ConfigError(f"max_n and min_count must be >= 1, got {max_n}, {min_count}")
        if not label_column:
            raise ConfigError("poison detection needs labels: give --label-column")
        self.settings = {"max_n": max_n, "min_count": min_count, "z_sigma": z_sigma, "min_purity": min_purity}
        self.shards = ShardMap(workers, engine, cache_dir)  # validates workers and engine
        self.workers, self.engine = workers, engine
        self.text_column, self.label_column = text_column, label_column
        self.partitions = partitions or 4 * workers

    def detect(self, path: str | os.PathLike[str]) -> ParallelPoisonReport:
        """Run the four steps over every shard of ``path``."""
        from secure_train.data_security.parallel import shard_files

        start = time.perf_counter()
        shards = self.shards
        tasks = shards.tasks(shard_files(path))
        cols = {"text_column": self.text_column, "label_column": self.label_column}
        counts = shards.map(_count_shard, tasks, max_n=self.settings["max_n"], partitions=self.partitions, **cols)
        per_label: dict[int, int] = defaultdict(int)
        by_gram: dict[str, dict[int, int]] = defaultdict(dict)
        for gram, label, n in self._reduced(counts, per_label):
            by_gram[gram][label] = n
        report = ParallelPoisonReport(os.fspath(path), settings=dict(self.settings))
        report.n_records = sum(int(t["rows"]) for t in tasks)
        report.n_labeled = sum(per_label.values())
        report.n_grams_tested = len(by_gram)
        accepted = self._score(by_gram, per_label)
        if accepted:
            hits = shards.map(_flag_shard, tasks, accepted=[(a["ngram"], a["label"]) for a in accepted], **cols)
            matched: dict[int, int] = defaultdict(int)
            flagged: set[int] = set()
            for batch in shards.batches(hits, ("sample_id", "ngram")):
                for sid, k in zip(batch["sample_id"], batch["ngram"], strict=True):
                    flagged.add(int(sid))
                    matched[int(k)] += 1
            report.flagged_ids = sorted(flagged)
            threshold = accepted[0]["threshold"]
            report.ngrams = [
                {
                    "ngram": a["ngram"],
                    "label": a["label"],
                    "z": round(a["z"], 2),
                    "count": a["count"],
                    "purity": round(a["purity"], 4),
                    "n_records": matched[k],
                    "threshold": round(threshold, 2),
                }
                for k, a in enumerate(accepted)
            ]
        report.seconds = time.perf_counter() - start
        return report

    def _reduced(self, counts: Any, per_label: dict[int, int]) -> Any:
        """Reduce on the engine; yields ``(n-gram, label, records)`` of the surviving n-grams and
        fills ``per_label``."""
        import pyarrow.compute as pc

        min_count = self.settings["min_count"]
        if self.engine == "ray":
            labels = counts.map_batches(_select, fn_kwargs={"labels": True}, batch_format="pyarrow")
            for b in labels.iter_batches(batch_format="pyarrow"):
                for y, n in zip(b["label"].to_pylist(), b["n"].to_pylist(), strict=True):
                    per_label[int(y)] += int(n)
            reduced = (
                counts.map_batches(_select, fn_kwargs={"labels": False}, batch_format="pyarrow")
                .groupby("gram", num_partitions=self.partitions)
                .map_groups(_reduce_group, fn_kwargs={"min_count": min_count}, batch_format="pyarrow")
            )
            for b in reduced.iter_batches(batch_format="pyarrow"):
                yield from zip(b["gram"].to_pylist(), b["label"].to_pylist(), b["n"].to_pylist(), strict=True)
            return
        table = counts.data.table
        labels = table.filter(pc.equal(table.column("part"), _LABELS))
        for y, n in zip(labels.column("label").to_pylist(), labels.column("n").to_pylist(), strict=True):
            per_label[int(y)] += int(n)
        files = [c["filename"] for c in counts.cache_files]
        reduced = self.shards.map(
            _reduce_part, [{"part": p} for p in range(self.partitions)], files=files, min_count=min_count
        )
        for b in self.shards.batches(reduced, ("gram", "label", "n")):
            yield from zip(b["gram"], b["label"], b["n"], strict=True)

    def _score(self, by_gram: dict[str, dict[int, int]], per_label: dict[int, int]) -> list[dict[str, Any]]:
        """The single-process detector's scoring, on the reduced counts."""
        s = self.settings
        total = sum(per_label.values())
        labels = sorted(per_label)
        if not total:
            return []
        prior = {y: per_label[y] / total for y in labels}

        def z_of(k: float, n: float, p: float) -> float:
            return (k - n * p) / math.sqrt(n * p * (1 - p)) if 0 < p < 1 and n > 0 else 0.0

        cand: list[dict[str, Any]] = []
        zs: list[float] = []
        for g in sorted(by_gram):
            per = by_gram[g]
            n = sum(per.values())
            if n < s["min_count"]:
                continue
            for y in labels:
                k = per.get(y, 0)
                z = z_of(k, n, prior[y])
                zs.append(z)
                if k / n >= s["min_purity"]:
                    cand.append({"ngram": g, "label": y, "z": z, "count": n, "k": k, "purity": k / n})
        if not zs:
            return []
        mean = math.fsum(zs) / len(zs)
        std = math.sqrt(math.fsum((z - mean) ** 2 for z in zs) / len(zs)) or 1.0
        threshold = mean + s["z_sigma"] * std
        cand = sorted((c for c in cand if c["z"] >= threshold), key=lambda c: (-len(c["ngram"].split()), -c["z"]))
        accepted: list[dict[str, Any]] = []
        for c in cand:
            supers = [a for a in accepted if a["label"] == c["label"] and f" {c['ngram']} " in f" {a['ngram']} "]
            if supers:
                top = max(supers, key=lambda a: a["k"])
                n, k = c["count"] - top["count"], c["k"] - top["k"]
                if n < s["min_count"] or k / n < s["min_purity"] or z_of(k, n, prior[c["label"]]) < threshold:
                    continue
            accepted.append({**c, "threshold": threshold})
        return accepted
