"""Corpus-scale scans on an existing engine: ``datasets`` (one machine) or Ray Data (a cluster).

:class:`ParallelScan` runs :class:`~secure_train.data_security.scan.DataScanner`'s scanners over sharded
JSONL / Parquet / CSV / TSV (a file, a glob, or a folder of shards) read with
:func:`~secure_train.core.arrow_records.read_arrow` (memory-mapped Arrow; ``sample_id`` contiguous
across shards in sorted order, ``source`` = ``file:line``):

1. a batched map computes, per record, the per-record findings (injection, unicode, PII,
   ``NAME=ARG`` backends), the record's Merkle leaf, its normalized-text digest and its MinHash
   band keys (``datasets.Dataset.map(num_proc=N)`` locally, ``map_batches`` on Ray);
2. exact duplicates group records by digest, near-duplicates group them by MinHash band key on
   the engine (a ``sort`` + one streaming pass over the sorted rows locally, ``groupby(...)
   .map_groups`` on Ray) instead of one in-memory LSH index.

Workers are the engine's own (``num_proc`` processes, Ray tasks): there is no scheduler here.
Findings do not depend on the number of workers or on the engine (a test compares 1 worker,
2 workers and a local Ray cluster). Per-record findings and exact duplicates equal the
streaming :meth:`DataScanner.scan_file`'s. Near-duplicates differ in one documented way: the
streaming index holds only records that were not themselves near-duplicates, so a chain
``a ~ b ~ c`` where ``c`` shares a band with ``b`` only reports ``c`` there but not in the
streaming scan; here ``c`` is reported as a near-duplicate of the earliest record it shares a
MinHash band with. Reports only: sanitized copies (``--out``) and quarantine files still come
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
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, DataError
from secure_train.data_security.scanners.base import Finding

__all__ = ["ENGINES", "ParallelScan", "hash_files", "shard_files"]

ENGINES = ("local", "ray")
_SHARD_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")
_BATCH = 1024
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
    from secure_train.data_security.manifest import _leaf, _record_bytes
    from secure_train.data_security.scanners.dedup import _key, _shingles

    scanner = _scanner(params)
    dup = "duplicate" in scanner.scanner_names
    near = dup and params["near_duplicates"]
    ranges = _band_layout(params["dup_threshold"], scanner.dup.num_perm) if near else []
    template = scanner.dup._template if near else None
    keys = ("sample_id", "source", "excerpt", "label", "pre", "post", "leaf", "digest", "bands")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for text, label, completion, sid, source in zip(
        batch["text"], batch["label"], batch["completion"], batch["sample_id"], batch["source"], strict=True
    ):
        # plain Python values: Ray hands numpy scalars, which would hash differently
        label = None if label is None or label != label else int(label)
        text, source = str(text), str(source)
        completion = None if completion is None else str(completion)
        rec = TextRecord(text, label, int(sid), source, completion)
        full = text + (completion or "")
        pre: list[Finding] = []
        if "injection" in scanner.scanner_names:
            pre += scanner.injection.scan(full, rec.sample_id, source)
        if "unicode" in scanner.scanner_names:
            pre += scanner.unicode.scan(full, rec.sample_id, source)
        if "pii" in scanner.scanner_names:
            pre += scanner.pii.scan(full, rec.sample_id, source)
        post = [f for b in scanner.backends for f in b.scan(full, rec.sample_id, source)]
        bands: list[int] = []
        digest = ""
        if dup:
            key = _key(text)
            digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
            if near and key and template is not None:
                mh = template.copy()
                mh.update_batch(_shingles(key))
                hv = mh.hashvalues
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
        out["label"].append(label)
        out["pre"].append(json.dumps([f.to_dict() for f in pre]) if pre else "")
        out["post"].append(json.dumps([f.to_dict() for f in post]) if post else "")
        out["leaf"].append(_leaf(_record_bytes(rec)).hex())  # hex: numpy bytes drop trailing NULs
        out["digest"].append(digest)
        out["bands"].append(bands)
    return out


def _explode(batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """One row per (band key, record)."""
    out: dict[str, list[Any]] = {"band": [], "sample_id": [], "label": [], "digest": []}
    for sid, label, digest, bands in zip(
        batch["sample_id"], batch["label"], batch["digest"], batch["bands"], strict=True
    ):
        for band in bands:
            out["band"].append(band)
            out["sample_id"].append(sid)
            out["label"].append(label)
            out["digest"].append(digest)
    return out


def _exact_group(ids: Sequence[int], labels: Sequence[Any]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """One digest's records sorted by id: every later one is an exact duplicate of the first."""
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
    for sid, label, digest in zip(ids, labels, digests, strict=True):
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
        workers: worker processes (``datasets`` ``num_proc``; with Ray, the blocks in flight).
        engine: ``local`` (``datasets`` maps) or ``ray`` (Ray Data; ``pip install
            secure-train[ray]``; joins a running cluster or starts a local one).
        text_column / label_column: columns of the shards.
        cache_dir: where :func:`~secure_train.core.arrow_records.read_arrow` keeps its Arrow files.
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

        from secure_train.core.arrow_records import read_arrow
        from secure_train.data_security.scan import ScanReport

        files = shard_files(path)
        start = time.perf_counter()
        parts, offset = [], 0
        for f in files:  # sample ids contiguous across shards, in sorted order
            part = read_arrow(
                f,
                text_column=self.text_column,
                label_column=self.label_column,
                id_offset=offset,
                cache_dir=self.cache_dir,
            )
            parts.append(part.dataset)
            offset += len(part)
        import datasets

        ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        run = self._ray if self.engine == "ray" else self._local
        report = ScanReport(source=os.fspath(path))
        dup_findings, rows = run(ds)
        self._collect(report, rows, dup_findings)
        report.n_bytes = sum(f.stat().st_size for f in files)
        report.seconds = time.perf_counter() - start
        return report

    # -- engines ---------------------------------------------------------------------------
    def _local(self, ds: Any) -> tuple[dict[int, list[Finding]], Iterator[dict[str, Any]]]:
        import uuid

        stage = ds.map(
            _scan_batch,
            fn_kwargs={"params": self.params},
            batched=True,
            batch_size=_BATCH,
            num_proc=self.workers if self.workers > 1 else None,
            remove_columns=ds.column_names,
            new_fingerprint=uuid.uuid4().hex,
            load_from_cache_file=False,
            desc="scan",
        )
        dups: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        if "duplicate" in self.scanner.scanner_names:
            exact = stage.select_columns(["digest", "sample_id", "label"]).sort(["digest", "sample_id"])
            for digest, ids, labels in _groups(exact, "digest", ("sample_id", "label")):
                del digest
                for sid, kind, detail in _exact_group(ids, labels):
                    dups.setdefault(sid, []).append((kind, detail))
            if self.params["near_duplicates"]:
                bands = stage.select_columns(["sample_id", "label", "digest", "bands"]).map(
                    _explode,
                    batched=True,
                    batch_size=_BATCH,
                    num_proc=self.workers if self.workers > 1 else None,
                    remove_columns=["bands"],
                    new_fingerprint=uuid.uuid4().hex,
                    desc="band keys",
                )
                near: dict[int, tuple[int, Any, Any]] = {}
                for _, ids, rest in _groups(
                    bands.sort(["band", "sample_id"]), "band", ("sample_id", "label", "digest")
                ):
                    labels, digests = rest
                    for sid, other, other_label, label in _near_group(ids, labels, digests):
                        if sid not in near or other < near[sid][0]:
                            near[sid] = (other, other_label, label)
                _add_near(dups, near)
        rows = stage.select_columns(["sample_id", "source", "excerpt", "pre", "post", "leaf"]).iter(batch_size=4096)
        return self._findings(stage, dups), _rows(rows)

    def _ray(self, ds: Any) -> tuple[dict[int, list[Finding]], Iterator[dict[str, Any]]]:
        _ray_init(self.workers)
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        params = self.params
        src = ray.data.from_huggingface(ds)
        stage = src.map_batches(lambda b: _scan_batch(b, params), batch_size=_BATCH, batch_format="numpy").materialize()
        dups: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        parts = max(4 * self.workers, stage.count() // 1_000_000)  # shuffle partitions: ~1 M rows each
        if "duplicate" in self.scanner.scanner_names:

            def exact_fn(g: dict[str, Any]) -> dict[str, list[Any]]:
                order = sorted(range(len(g["sample_id"])), key=lambda i: int(g["sample_id"][i]))
                ids = [int(g["sample_id"][i]) for i in order]
                labels = [_label(g["label"][i]) for i in order]
                out: dict[str, list[Any]] = {"sample_id": [], "kind": [], "detail": []}
                for sid, kind, detail in _exact_group(ids, labels):
                    out["sample_id"].append(sid)
                    out["kind"].append(kind)
                    out["detail"].append(json.dumps(detail))
                return out

            exact = (
                stage.select_columns(["digest", "sample_id", "label"])
                .groupby("digest", num_partitions=parts)
                .map_groups(exact_fn)
            )
            for row in exact.iter_rows():
                dups.setdefault(int(row["sample_id"]), []).append((row["kind"], json.loads(row["detail"])))
            if params["near_duplicates"]:

                def near_fn(g: dict[str, Any]) -> dict[str, list[Any]]:
                    order = sorted(range(len(g["sample_id"])), key=lambda i: int(g["sample_id"][i]))
                    out: dict[str, list[Any]] = {"sample_id": [], "other": [], "other_label": [], "label": []}
                    for sid, other, other_label, label in _near_group(
                        [int(g["sample_id"][i]) for i in order],
                        [_label(g["label"][i]) for i in order],
                        [str(g["digest"][i]) for i in order],
                    ):
                        out["sample_id"].append(sid)
                        out["other"].append(other)
                        out["other_label"].append(-1 if other_label is None else other_label)
                        out["label"].append(-1 if label is None else label)
                    return out

                pairs = (
                    stage.select_columns(["sample_id", "label", "digest", "bands"])
                    .map_batches(_explode_np, batch_format="numpy")
                    .groupby("band", num_partitions=parts)
                    .map_groups(near_fn)
                )
                near: dict[int, tuple[int, Any, Any]] = {}
                for row in pairs.iter_rows():
                    sid, other = int(row["sample_id"]), int(row["other"])
                    if sid not in near or other < near[sid][0]:
                        near[sid] = (other, _label(row["other_label"]), _label(row["label"]))
                _add_near(dups, near)
        rows = (
            {k: list(v) for k, v in b.items()}
            for b in stage.select_columns(["sample_id", "source", "excerpt", "pre", "post", "leaf"]).iter_batches(
                batch_size=4096, batch_format="numpy"
            )
        )
        return self._findings(None, dups), _rows(rows)

    # -- collecting ------------------------------------------------------------------------
    def _findings(self, stage: Any, dups: dict[int, list[tuple[str, dict[str, Any]]]]) -> dict[int, list[Finding]]:
        """Duplicate findings as :class:`Finding`s, with the record's source and excerpt."""
        del stage
        return {
            sid: [Finding(sid, "", "duplicate", kind, None, "", detail) for kind, detail in v]
            for sid, v in dups.items()
        }

    def _collect(self, report: Any, rows: Iterator[dict[str, Any]], dups: dict[int, list[Finding]]) -> None:
        from dataclasses import replace

        from secure_train.data_security.manifest import merkle_root
        from secure_train.data_security.scan import _PAST, _RANK

        scanner = self.scanner
        leaves: list[bytes] = []
        affected: dict[str, list[int]] = {}
        for row in rows:
            sid = int(row["sample_id"])
            report.n_records += 1
            leaves.append(bytes.fromhex(str(row["leaf"])))
            pre = _decode(row["pre"])
            src, excerpt = str(row["source"]), str(row["excerpt"])
            found = pre + [replace(f, source=src, excerpt=excerpt) for f in dups.get(sid, [])] + _decode(row["post"])
            for f in found:
                report.add(f)
                scanner._check_policy(report, f)
            if found:
                action = max((scanner.action_for(f) for f in found), key=_RANK.__getitem__)
                if action in _PAST:
                    affected.setdefault(_PAST[action], []).append(sid)
        report.affected = affected
        report.input_digest = merkle_root(leaves)


def _rows(batches: Any) -> Iterator[dict[str, Any]]:
    for batch in batches:
        for i in range(len(next(iter(batch.values())))):
            yield {k: batch[k][i] for k in batch}


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


def _explode_np(batch: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    out = _explode({k: list(v) for k, v in batch.items()})
    return {
        "band": np.asarray(out["band"], dtype=np.int64),
        "sample_id": np.asarray(out["sample_id"], dtype=np.int64),
        "label": np.asarray([-1 if x is None else x for x in out["label"]], dtype=np.int64),
        "digest": np.asarray(out["digest"], dtype=object),
    }


def _groups(ds: Any, key: str, cols: tuple[str, ...]) -> Iterator[tuple[Any, list[Any], Any]]:
    """Consecutive rows of a sorted dataset with equal ``key``: ``(key, first column, the others)``."""
    current: Any = None
    acc: list[list[Any]] = [[] for _ in cols]
    for batch in ds.iter(batch_size=65536):
        for i, k in enumerate(batch[key]):
            if k != current:
                if acc[0]:
                    yield current, acc[0], (acc[1:] if len(cols) > 2 else acc[1])
                current, acc = k, [[] for _ in cols]
            for j, c in enumerate(cols):
                acc[j].append(batch[c][i])
    if acc[0]:
        yield current, acc[0], (acc[1:] if len(cols) > 2 else acc[1])


def _add_near(dups: dict[int, list[tuple[str, dict[str, Any]]]], near: dict[int, tuple[int, Any, Any]]) -> None:
    for sid, (other, other_label, label) in near.items():
        if any(k == "exact_duplicate" for k, _ in dups.get(sid, [])):
            continue
        dups.setdefault(sid, []).append(("near_duplicate", {"of": other}))
        if label is not None and other_label is not None and label != other_label:
            dups[sid].append(("label_conflict", {"of": other, "labels": [other_label, label], "near": True}))


def _hash_batch(batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    from secure_train.data_security.manifest import _hash_file

    out: dict[str, list[Any]] = {k: [] for k in ("path", "sha256", "size", "records", "merkle_root", "lines")}
    for path in batch["path"]:
        state = _hash_file(Path(path))
        out["path"].append(path)
        out["sha256"].append(state.sha256)
        out["size"].append(state.size)
        out["records"].append(state.records)
        out["merkle_root"].append(state.merkle_root)
        out["lines"].append(state.lines)
    return out


def hash_files(files: Sequence[Path], *, workers: int = 1, engine: str = "local") -> list[Any]:
    """Per-file manifest states (SHA-256, record leaves, per-file Merkle root), one file per
    task on the engine, returned in the order of ``files``: the manifest's tree over them is the
    same for any number of workers.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "a.jsonl"), "w").write('{"x": 1}\\n')
        >>> [s.size for s in hash_files([Path(d) / "a.jsonl"], workers=1)]
        [9]
    """
    import uuid

    from secure_train.data_security.manifest import _FileState

    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    paths = [os.fspath(f) for f in files]
    if engine == "ray":
        _ray_init(workers)
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=len(paths))
        hashed = ds.map_batches(lambda b: _hash_batch(b), batch_size=1, batch_format="numpy").take_all()
        rows = {str(r["path"]): r for r in hashed}
    else:
        from datasets import Dataset

        mapped = Dataset.from_dict({"path": paths}).map(
            _hash_batch,
            batched=True,
            batch_size=1,
            num_proc=min(workers, len(paths)) if workers > 1 else None,
            new_fingerprint=uuid.uuid4().hex,
            load_from_cache_file=False,
            desc="hashing",
        )
        rows = {r["path"]: r for r in mapped}
    return [
        _FileState(
            str(r["sha256"]),
            int(r["size"]),
            [str(x) for x in r["records"]],
            str(r["merkle_root"]),
            [int(x) for x in r["lines"]],
        )
        for r in (rows[p] for p in paths)
    ]


def _ray_init(workers: int) -> None:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'secure-train[ray]'") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or None, num_cpus=None if address else workers, log_to_driver=False)
