"""Corpus-scale scans on an existing engine: ``datasets`` (one machine) or Ray Data (a cluster).

:class:`ParallelScan` runs :class:`~secure_train.data_security.scan.DataScanner`'s scanners over sharded
JSONL / Parquet / CSV / TSV (a file, a glob, or a folder of shards) with
:class:`~secure_train.data_security.parallel_shards.ShardMap`: every worker reads its own shards
(``sample_id`` contiguous across shards in sorted order, ``source`` = ``file:line``, as
:func:`~secure_train.core.arrow_records.read_arrow` gives them):

1. a map over the shards computes, per record, the per-record findings (injection, unicode, PII,
   ``NAME=ARG`` backends), the record's Merkle leaf, its normalized-text digest and its MinHash
   band keys (``datasets.Dataset.map(num_proc=N)`` locally, ``map_batches`` on Ray), as Arrow;
2. exact duplicates group records by digest, near-duplicates group them by MinHash band key on
   the engine instead of one in-memory LSH index: locally a partitioned reduce (each task reads
   the map's Arrow files batch by batch, keeps its hash partition of the keys and groups only
   keys seen twice, with pyarrow), on Ray ``groupby(...).map_groups``.

Workers are the engine's own (``num_proc`` processes, Ray tasks): there is no scheduler here.
Findings do not depend on the number of workers or on the engine (a test compares 1 worker,
2 workers and a local Ray cluster). Per-record findings and exact duplicates equal the
streaming :meth:`DataScanner.scan_file`'s. Near-duplicates differ in one documented way: the
streaming index holds only records that were not themselves near-duplicates, so a chain
``a ~ b ~ c`` where ``c`` shares a band with ``b`` only reports ``c`` there but not in the
streaming scan; here ``c`` is reported as a near-duplicate of the earliest record it shares a
MinHash band with. The report's ``input_digest`` (the Merkle root over all records) is folded
on the driver in O(log n) memory. Reports only: sanitized copies (``--out``) and quarantine files still come
from the streaming scan.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for i in range(2):
    ...     _ = open(os.path.join(d, f"part-{i}.jsonl"), "w").write(
    ...         '{"sentence": "a fine film", "label": 1}\\n{"sentence": "mail me: bob@example.com", "label": 0}\\n')
    >>> report = ParallelScan(workers=1, cache_dir=d).scan(d)
    >>> report.n_records, sorted(report.counts.items())
    (4, [('duplicate/exact_duplicate', 2), ('pii/email', 2)])
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, DataError
from secure_train.data_security.parallel_shards import ENGINES, MerkleStream, ShardMap, read_shard
from secure_train.data_security.scanners.base import Finding

__all__ = ["ENGINES", "ParallelScan", "hash_files", "shard_files"]

_SHARD_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")
_SCANNERS: dict[str, Any] = {}  # per worker process: DataScanner built from its parameters


def shard_files(path: str | os.PathLike[str]) -> list[Path]:
    """The shards of ``path``: the file itself, a glob's matches, or a folder's data files, sorted.

    Example:
        >>> shard_files("/nonexistent/*.jsonl")
        Traceback (most recent call last):
        ...
        secure_train.core.errors.DataError: /nonexistent/*.jsonl: no shard matches
    """
    text = os.fspath(path)
    p = Path(text)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in _SHARD_SUFFIXES)
    else:
        files = sorted(Path(f) for f in glob.glob(text) if Path(f).is_file())
    if not files:
        raise DataError(f"{text}: no shard matches")
    return files


def _scanner(params: Mapping[str, Any]) -> Any:
    key = json.dumps(params, sort_keys=True)
    if key not in _SCANNERS:
        from secure_train.data_security.scan import DataScanner

        _SCANNERS[key] = DataScanner(
            params["scanners"],
            actions=params["actions"],
            fail_on=params["fail_on"],
            pii_kinds=params["pii_kinds"],
            near_duplicates=params["near_duplicates"],
            dup_threshold=params["dup_threshold"],
        )
    return _SCANNERS[key]


def _band_layout(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The band ranges datasketch's ``MinHashLSH`` uses for this threshold (same candidates)."""
    from datasketch import MinHashLSH

    return list(MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges)


def _scan_batch(batch: Mapping[str, Sequence[Any]], params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Stage 1, one batch: per-record findings, leaf, digest and band keys."""
    from secure_train.core.records import TextRecord
    from secure_train.data_security.scan import _record_leaf
    from secure_train.data_security.scanners.dedup import _key, _shingles

    scanner = _scanner(params)
    dup = "duplicate" in scanner.scanner_names
    near = dup and params["near_duplicates"]
    ranges = _band_layout(params["dup_threshold"], scanner.dup.num_perm) if near else []
    template = scanner.dup._template if near else None
    keys = ("sample_id", "source", "excerpt", "label", "pre", "post", "leaf", "digest", "dkey", "bands")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    records = []
    for text, label, completion, sid, source in zip(
        batch["text"], batch["label"], batch["completion"], batch["sample_id"], batch["source"], strict=True
    ):
        # plain Python values: Ray hands numpy scalars, which would hash differently
        label = None if label is None or label != label else int(label)
        completion = None if completion is None else str(completion)
        records.append(TextRecord(str(text), label, int(sid), str(source), completion))
    fulls = [rec.text + (rec.completion or "") for rec in records]
    # injection, unicode and PII over the whole batch (the streaming scan's findings, in its order)
    found = scanner.batch.scan(fulls, [r.sample_id for r in records], [r.source for r in records])
    dup_keys = [_key(rec.text) for rec in records] if dup else []
    signatures: dict[int, Any] = {}
    if near and template is not None:
        from secure_train.data_security.scanners.minhash import BatchMinHash

        minhash, which = BatchMinHash(template), [k for k, key in enumerate(dup_keys) if key]
        for at in range(0, len(which), 1024):  # shingles of 1,024 records at a time
            part = which[at : at + 1024]
            signatures.update(zip(part, minhash.signatures([_shingles(dup_keys[k]) for k in part]), strict=True))
    for k, (rec, full) in enumerate(zip(records, fulls, strict=True)):
        text, source = rec.text, rec.source
        pre: list[Finding] = found.get(k, [])
        post = [f for b in scanner.backends for f in b.scan(full, rec.sample_id, source)]
        bands: list[int] = []
        digest = ""
        if dup:
            key = dup_keys[k]
            digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
            if k in signatures:
                hv = signatures[k]
                bands = [
                    int.from_bytes(
                        hashlib.blake2b(i.to_bytes(2, "little") + hv[a:b].tobytes(), digest_size=8).digest(),
                        "little",
                        signed=True,
                    )
                    for i, (a, b) in enumerate(ranges)
                ]
        out["sample_id"].append(rec.sample_id)
        out["source"].append(source)
        out["excerpt"].append(text[:60])
        out["label"].append(rec.label)
        out["pre"].append(json.dumps([f.to_dict() for f in pre]) if pre else "")
        out["post"].append(json.dumps([f.to_dict() for f in post]) if post else "")
        out["leaf"].append(_record_leaf(rec).hex())  # hex: numpy bytes drop trailing NULs
        out["digest"].append(digest)
        out["dkey"].append(int.from_bytes(bytes.fromhex(digest[:16]), "little", signed=True) if digest else 0)
        out["bands"].append(bands)
    return out


def _exact_group(ids: Sequence[int], labels: Sequence[Any]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """One digest's records sorted by id: every later one is an exact duplicate of the first."""
    labels = [_label(x) for x in labels]
    first, first_label = int(ids[0]), labels[0]
    for sid, label in zip(ids[1:], labels[1:], strict=True):
        yield int(sid), "exact_duplicate", {"of": first}
        if label is not None and first_label is not None and label != first_label:
            yield int(sid), "label_conflict", {"of": first, "labels": [first_label, label]}


def _near_group(
    ids: Sequence[int], labels: Sequence[Any], digests: Sequence[str]
) -> Iterator[tuple[int, int, Any, Any]]:
    """One band's records sorted by id: ``(record, earliest other record, its label, label)``;
    exact duplicates (a digest seen earlier in the group) are neither heads nor candidates."""
    seen: set[str] = set()
    head: tuple[int, Any] | None = None
    for sid, label, digest in zip(ids, [_label(x) for x in labels], digests, strict=True):
        if digest in seen:
            continue
        seen.add(digest)
        if head is None:
            head = (int(sid), label)
        else:
            yield int(sid), head[0], head[1], label


class ParallelScan:
    """Run the data scanners over a sharded corpus on ``datasets`` worker processes or Ray Data.

    Args:
        scanners / actions / fail_on / pii_kinds / near_duplicates / dup_threshold: as in
            :class:`~secure_train.data_security.scan.DataScanner` (``actions`` only decide the policy and
            the ``affected`` summary: nothing is rewritten).
        workers: worker processes (``datasets`` ``num_proc``, at most one per shard; with Ray, the
            CPUs of the local cluster it starts).
        engine: ``local`` (``datasets`` maps) or ``ray`` (Ray Data; ``pip install
            secure-train[ray]``; joins a running cluster or starts a local one).
        text_column / label_column: columns of the shards.
        cache_dir: where local maps write their Arrow outputs (default: a temporary folder).
    """

    def __init__(
        self,
        scanners: Sequence[str] | None = None,
        *,
        actions: Mapping[str, str] | None = None,
        fail_on: Sequence[str] = ("injection", "unicode"),
        pii_kinds: Sequence[str] | None = None,
        near_duplicates: bool = True,
        dup_threshold: float = 0.85,
        workers: int = 1,
        engine: str = "local",
        text_column: str = "sentence",
        label_column: str | None = "label",
        cache_dir: str | None = None,
    ) -> None:
        from secure_train.data_security.scan import SCANNERS

        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.params: dict[str, Any] = {
            "scanners": list(scanners or SCANNERS),
            "actions": dict(actions or {}),
            "fail_on": list(fail_on),
            "pii_kinds": list(pii_kinds) if pii_kinds else None,
            "near_duplicates": near_duplicates,
            "dup_threshold": dup_threshold,
        }
        self.scanner = _scanner(self.params)  # validates the configuration here, not in a worker
        if any(a == "quarantine" for a in self.scanner.actions.values()):
            raise ConfigError("a parallel scan only reports: quarantine needs the streaming scan (no --workers)")
        self.workers, self.engine = workers, engine
        self.text_column, self.label_column, self.cache_dir = text_column, label_column, cache_dir

    def scan(self, path: str | os.PathLike[str]) -> Any:
        """Scan every shard of ``path``; a :class:`~secure_train.data_security.scan.ScanReport`."""
        import time

        from secure_train.data_security.scan import ScanReport

        files = shard_files(path)
        start = time.perf_counter()
        shards = ShardMap(self.workers, self.engine, self.cache_dir)
        tasks = shards.tasks(files)
        stage = shards.map(
            _scan_shard,
            tasks,
            params=self.params,
            text_column=self.text_column,
            label_column=self.label_column,
        )
        report = ScanReport(source=os.fspath(path))
        if self.engine == "ray":
            dup_findings: Iterator[tuple[int, list[Finding]]] = iter(sorted(self._ray_dups(stage).items()))
        else:
            dup_findings = self._local_dups(shards, stage)
        self._collect(report, shards.batches(stage, _ROW_COLUMNS), dup_findings)
        report.n_bytes = sum(f.stat().st_size for f in files)
        report.seconds = time.perf_counter() - start
        return report

    # -- duplicates on the engine ----------------------------------------------------------
    def _local_dups(self, shards: ShardMap, stage: Any) -> Iterator[tuple[int, list[Finding]]]:
        """Exact and near duplicates as a shuffle spilled to disk
        (:class:`~secure_train.data_security.parallel_dedup.DuplicateShuffle`): partitions grow
        with the corpus, so each reduce task holds about the same whatever its size. Its rows
        come back sorted by record, so the driver turns them into findings one record at a time
        while it collects (it never holds the corpus's duplicates)."""
        from secure_train.data_security.parallel_dedup import DuplicateShuffle

        if "duplicate" not in self.scanner.scanner_names:
            return iter(())
        near_on = bool(self.params["near_duplicates"])
        bands = len(_band_layout(self.params["dup_threshold"], self.scanner.dup.num_perm)) if near_on else 0
        parts = DuplicateShuffle.partitions(len(stage), bands, self.workers)
        shuffle = DuplicateShuffle(shards, near=near_on, parts=parts)
        return _per_record(shuffle.run([c["filename"] for c in stage.cache_files], by_record=True))

    def _ray_dups(self, stage: Any) -> dict[int, list[Finding]]:
        dups: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        if "duplicate" not in self.scanner.scanner_names:
            return {}
        parts = max(4 * self.workers, stage.count() // 1_000_000)  # shuffle partitions: ~1 M rows each
        stage = ShardMap.sort_shuffle(stage)  # the datasets derived from it inherit its context
        exact = (
            stage.select_columns(["digest", "sample_id", "label"])
            .groupby("digest", num_partitions=parts)
            .map_groups(_exact_fn, batch_format="pyarrow")
        )
        for b in exact.iter_batches(batch_format="pyarrow"):
            for sid, kind, detail in zip(*(b[c].to_pylist() for c in ("sample_id", "kind", "detail")), strict=True):
                dups.setdefault(int(sid), []).append((kind, json.loads(detail)))
        if self.params["near_duplicates"]:
            pairs = (
                stage.select_columns(["sample_id", "label", "digest", "bands"])
                .map_batches(_explode_arrow, batch_format="pyarrow")
                .groupby("band", num_partitions=parts)
                .map_groups(_near_fn, batch_format="pyarrow")
            )
            near: dict[int, tuple[int, Any, Any]] = {}
            for b in pairs.iter_batches(batch_format="pyarrow"):
                cols = (b[c].to_pylist() for c in ("sample_id", "other", "other_label", "label"))
                for sid, other, other_label, label in zip(*cols, strict=True):
                    if sid not in near or other < near[sid][0]:
                        near[sid] = (other, _label(other_label), _label(label))
            _add_near(dups, near)
        return _findings(dups)

    # -- collecting ------------------------------------------------------------------------
    def _collect(
        self, report: Any, batches: Iterator[dict[str, list[Any]]], dups: Iterator[tuple[int, list[Finding]]]
    ) -> None:
        """Fold the map's rows (in record order) and the duplicate findings (``(sample_id,
        findings)`` in record order) into ``report``."""
        from dataclasses import replace

        from secure_train.data_security.scan import _PAST, _RANK

        scanner = self.scanner
        tree = MerkleStream()  # O(log n) memory whatever the corpus size
        affected: dict[str, list[int]] = {}
        pending = next(dups, None)
        for batch in batches:
            cols = [batch[c] for c in _ROW_COLUMNS]
            for sid, src, excerpt, pre_json, post_json, leaf in zip(*cols, strict=True):
                report.n_records += 1
                tree.add(bytes.fromhex(leaf))
                mine: list[Finding] = []
                if pending is not None and pending[0] <= sid:
                    if pending[0] < sid:  # the rows and the duplicates must both be in record order
                        raise RuntimeError(f"duplicate findings of record {pending[0]} arrived after record {sid}")
                    mine, pending = pending[1], next(dups, None)
                if not pre_json and not post_json and not mine:
                    continue
                found = _decode(pre_json) + [replace(f, source=src, excerpt=excerpt) for f in mine] + _decode(post_json)
                for f in found:
                    report.add(f)
                    scanner._check_policy(report, f)
                action = max((scanner.action_for(f) for f in found), key=_RANK.__getitem__)
                if action in _PAST:
                    affected.setdefault(_PAST[action], []).append(sid)
        report.affected = affected
        report.input_digest = tree.root()


_ROW_COLUMNS = ("sample_id", "source", "excerpt", "pre", "post", "leaf")


def _stage_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("sample_id", pa.int64()),
            ("source", pa.string()),
            ("excerpt", pa.string()),
            ("label", pa.int64()),  # -1: unlabeled
            ("pre", pa.string()),
            ("post", pa.string()),
            ("leaf", pa.string()),
            ("digest", pa.string()),
            ("dkey", pa.int64()),  # the digest's first 8 bytes: its reduce partition
            ("bands", pa.list_(pa.int64())),
        ]
    )


def _scan_shard(
    task: Mapping[str, Any], params: Mapping[str, Any], text_column: str, label_column: str | None
) -> Any:
    """One shard, read by the worker itself: stage-1 rows as a ``pyarrow.Table``."""
    import pyarrow as pa

    schema = _stage_schema()
    tables = []
    for batch in read_shard(task, text_column, label_column):
        out = _scan_batch(batch, params)
        out["label"] = [-1 if x is None else x for x in out["label"]]
        tables.append(pa.Table.from_pydict(out, schema=schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _findings(dups: dict[int, list[tuple[str, dict[str, Any]]]]) -> dict[int, list[Finding]]:
    """Duplicate findings as :class:`Finding`s (source and excerpt filled in when collected)."""
    return {
        sid: [Finding(sid, "", "duplicate", kind, None, "", detail) for kind, detail in v] for sid, v in dups.items()
    }


def _exact_fn(g: Any) -> Any:
    """Ray ``map_groups``: one digest's records -> exact-duplicate / label-conflict rows."""
    import pyarrow as pa

    pairs = sorted(zip(g["sample_id"].to_pylist(), g["label"].to_pylist(), strict=True))
    out: dict[str, list[Any]] = {"sample_id": [], "kind": [], "detail": []}
    for sid, kind, detail in _exact_group([p[0] for p in pairs], [p[1] for p in pairs]):
        out["sample_id"].append(sid)
        out["kind"].append(kind)
        out["detail"].append(json.dumps(detail))
    return pa.table(out, schema=pa.schema([("sample_id", pa.int64()), ("kind", pa.string()), ("detail", pa.string())]))


def _near_fn(g: Any) -> Any:
    """Ray ``map_groups``: one MinHash band's records -> (record, earliest other record) rows."""
    import pyarrow as pa

    rows = sorted(zip(g["sample_id"].to_pylist(), g["label"].to_pylist(), g["digest"].to_pylist(), strict=True))
    out: dict[str, list[Any]] = {"sample_id": [], "other": [], "other_label": [], "label": []}
    for sid, other, other_label, label in _near_group([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]):
        out["sample_id"].append(sid)
        out["other"].append(other)
        out["other_label"].append(-1 if other_label is None else other_label)
        out["label"].append(-1 if label is None else label)
    return pa.table(out, schema=pa.schema([(k, pa.int64()) for k in out]))


def _explode_arrow(batch: Any) -> Any:
    """Ray: one row per (band key, record), vectorized."""
    import pyarrow as pa
    import pyarrow.compute as pc

    bands = batch["bands"].combine_chunks() if hasattr(batch["bands"], "combine_chunks") else batch["bands"]
    parent = pc.list_parent_indices(bands)
    return pa.table(
        {
            "band": pc.list_flatten(bands),
            "sample_id": pc.take(batch["sample_id"], parent),
            "label": pc.take(batch["label"], parent),
            "digest": pc.take(batch["digest"], parent),
        }
    )


def _decode(value: Any) -> list[Finding]:
    if not value:
        return []
    out = []
    for d in json.loads(str(value)):
        d["span"] = tuple(d["span"]) if d["span"] else None
        out.append(Finding(**d))
    return out


def _label(value: Any) -> int | None:
    if value is None:
        return None
    v = int(value)
    return None if v < 0 else v


def _repeated(t: Any, key: str) -> Any:
    """The rows whose ``key`` occurs at least twice, sorted by (key, sample_id)."""
    import pyarrow.compute as pc

    if t.num_rows == 0:
        return t
    counts = t.group_by(key).aggregate([(key, "count")])
    twice = counts.filter(pc.greater_equal(counts.column(f"{key}_count"), 2)).column(key)
    return t.filter(pc.is_in(t.column(key), value_set=twice)).sort_by([(key, "ascending"), ("sample_id", "ascending")])


def _table_groups(t: Any, key: str, *cols: str) -> Iterator[tuple[Any, list[int], Any]]:
    """Consecutive rows of a sorted table with equal ``key``: ``(key, sample ids, other column(s))``."""
    keys = t.column(key).to_pylist()
    ids = t.column("sample_id").to_pylist()
    others = [t.column(c).to_pylist() for c in cols]
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            rest = [o[start:i] for o in others]
            yield keys[start], ids[start:i], (rest[0] if len(cols) == 1 else rest)
            start = i


def _per_record(rows: Iterator[tuple[int, str, str]]) -> Iterator[tuple[int, list[Finding]]]:
    """Duplicate rows sorted by record (stable: a record's exact rows in the order they were
    grouped) -> each record's duplicate findings, one record at a time."""
    for sid, group in itertools.groupby(rows, key=lambda row: int(row[0])):
        exact: list[tuple[str, dict[str, Any]]] = []
        near: tuple[int, Any, Any] | None = None
        for _, kind, detail in group:
            d = json.loads(detail)
            if kind != "near":
                exact.append((kind, d))
            elif near is None or d["of"] < near[0]:
                near = (d["of"], d["other_label"], d["label"])
        exact.sort(key=lambda kd: kd[0] != "exact_duplicate")  # as the grouping yields them
        dups = {sid: exact} if exact else {}
        if near is not None:
            _add_near(dups, {sid: near})
        if dups.get(sid):
            yield sid, _findings(dups)[sid]


def _add_near(dups: dict[int, list[tuple[str, dict[str, Any]]]], near: dict[int, tuple[int, Any, Any]]) -> None:
    for sid, (other, other_label, label) in near.items():
        if any(k == "exact_duplicate" for k, _ in dups.get(sid, [])):
            continue
        dups.setdefault(sid, []).append(("near_duplicate", {"of": other}))
        if label is not None and other_label is not None and label != other_label:
            dups[sid].append(("label_conflict", {"of": other, "labels": [other_label, label], "near": True}))


def _hash_task(task: Mapping[str, Any]) -> dict[str, list[Any]]:
    """One file's manifest state, hashed by the worker that reads it."""
    from secure_train.data_security.manifest import _hash_file

    state = _hash_file(Path(str(task["path"])))
    return {
        "path": [str(task["path"])],
        "sha256": [state.sha256],
        "size": [state.size],
        "records": [state.records],
        "merkle_root": [state.merkle_root],
        "lines": [state.lines],
    }


def hash_files(files: Sequence[Path], *, workers: int = 1, engine: str = "local") -> list[Any]:
    """Per-file manifest states (SHA-256, record leaves, per-file Merkle root), one file per
    task on the engine (each worker reads its own files), in the order of ``files``: the
    manifest's tree over the per-file roots is the same for any number of workers or engine.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "a.jsonl"), "w").write('{"x": 1}\\n')
        >>> [s.size for s in hash_files([Path(d) / "a.jsonl"], workers=1)]
        [9]
    """
    from secure_train.data_security.manifest import _FileState

    shards = ShardMap(workers, engine)
    out = shards.map(_hash_task, [{"path": os.fspath(f)} for f in files])
    cols = ("sha256", "size", "records", "merkle_root", "lines")
    states = []
    for batch in shards.batches(out, cols, batch_size=64):
        for sha, size, records, root, lines in zip(*(batch[c] for c in cols), strict=True):
            leaves, nums = [str(x) for x in records], [int(x) for x in lines]
            states.append(_FileState(str(sha), int(size), leaves, str(root), nums))
    return states
