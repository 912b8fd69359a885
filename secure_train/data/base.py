"""Shared machinery of the text DataModules: reading, splitting, transforms, tokenizing, loaders."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from secure_train.core.arrow_records import ArrowRecords, CompactShuffle, first_texts, hash_split, is_arrow_path
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_choice, require_in_range, require_int
from secure_train.data.tokenizer import load_tokenizer, train_tokenizer

__all__ = ["RecordDataset", "RecordTransform", "TextDataModule"]

RecordTransform = Callable[[list[TextRecord]], list[TextRecord]]
"""A function (or callable object) from training records to training records: poisoning,
filtering, sanitizing, augmentation. Applied once, in order, at ``setup``."""

_SPLITS = ("train", "val", "test")


class RecordDataset(Dataset[dict[str, Any]]):
    """Records encoded into plain dicts that the collate function batches.

    In-memory records are tokenized once, up front; :class:`~secure_train.core.arrow_records.ArrowRecords`
    (``lazy=True``) are read and tokenized per item, so nothing proportional to the corpus is held.
    """

    def __init__(
        self, records: Sequence[TextRecord], encode: Callable[[TextRecord], dict[str, Any]], *, lazy: bool = False
    ) -> None:
        self.records = records if lazy else list(records)
        self.encode = encode
        self.items = None if lazy else [encode(r) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.items is None:
            return self.encode(self.records[index])
        return self.items[index]


class TextDataModule(pl.LightningDataModule):
    """Base of :class:`TextClassificationDataModule` and :class:`CausalLMDataModule`.

    Subclasses provide ``_read(path, id_offset)``, ``_synthetic(n, seed)``, ``_encode`` and
    ``_collate``; everything else (split, transforms, tokenizer, loaders) lives here.

    ``manifest=PATH`` (a :mod:`secure_train.data_security.manifest` manifest) verifies the data files
    before anything reads them and refuses (``DataError``) naming changed files and records, and
    any data file in the manifested folder that the manifest does not list. The manifest must be
    signed, and its signature is checked with a key you trust: ``manifest_public_key`` (PEM
    path), else the public half of ``$SECURE_TRAIN_SIGNING_KEY``; without either it is refused
    (``ConfigError``). ``allow_unsigned_manifest=True`` accepts an unsigned or unchecked manifest
    (contents still verified) with a warning and a ``data.manifest_unsigned`` audit event; a
    signature that does not verify is refused regardless. :meth:`provenance` reports the
    manifest digest, its signature state and the transforms' chain of custody.

    ``backend="arrow"`` (what ``"auto"`` picks for Parquet files, globs of shards and
    ``save_to_disk`` directories) reads the data into memory-mapped Arrow with
    :func:`~secure_train.core.arrow_records.read_arrow`: records, splits and transformed splits live in
    Arrow files, items are tokenized lazily per item, the validation split is a seeded hash of
    ``sample_id`` (``val_fraction`` of the rows in expectation), the tokenizer (when trained
    here) sees the first ``tokenizer_sample`` training texts, and transforms run as batched
    ``Dataset.map`` calls of ``transform_batch_size`` records (``None``: the whole split in
    one call, as on a list). ``backend="memory"`` is the list-of-records path.
    """

    tokenizer_kind = "wordpiece"

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        *,
        tokenizer: str | None = None,
        vocab_size: int = 8192,
        max_length: int = 64,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        train_limit: int | None = None,
        synthetic_size: int = 4000,
        transforms: Sequence[RecordTransform] = (),
        seed: int = 0,
        num_workers: int = 0,
        cache_dir: str | None = "default",
        manifest: str | None = None,
        manifest_public_key: str | None = None,
        allow_unsigned_manifest: bool = False,
        backend: str = "auto",
        transform_batch_size: int | None = None,
        tokenizer_sample: int = 200_000,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        require_choice(self, "backend", backend, ("auto", "memory", "arrow"))
        require_int(self, "transform_batch_size", transform_batch_size, minimum=1, optional=True)
        require_int(self, "tokenizer_sample", tokenizer_sample, minimum=1)
        for key, value in (("max_length", max_length), ("batch_size", batch_size), ("synthetic_size", synthetic_size)):
            require_int(self, key, value, minimum=1)
        require_int(self, "eval_batch_size", eval_batch_size, minimum=1, optional=True)
        require_int(self, "train_limit", train_limit, minimum=1, optional=True)
        require_int(self, "vocab_size", vocab_size, minimum=1)
        require_int(self, "num_workers", num_workers, minimum=0)
        require_int(self, "seed", seed)
        require_in_range(self, "val_fraction", val_fraction, "[0, 1)")
        if isinstance(transforms, (str, bytes)) or not all(callable(t) for t in transforms):
            raise ConfigError(f"{name}: transforms must be a list of record transforms (callables), got {transforms!r}")
        if train_path is None and (val_path is not None or test_path is not None):
            raise ConfigError(f"{name}: val_path / test_path given without train_path")
        self.train_path, self.val_path, self.test_path = train_path, val_path, test_path
        self.tokenizer_path = tokenizer
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_fraction = val_fraction
        self.train_limit = train_limit
        self.synthetic_size = synthetic_size
        self.transforms = list(transforms)
        self.seed = seed
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        if manifest is not None and train_path is None:
            raise ConfigError(f"{name}: manifest given without train_path (the synthetic corpus has no manifest)")
        if manifest_public_key is not None and manifest is None:
            raise ConfigError(f"{name}: manifest_public_key given without manifest")
        self.manifest = manifest
        self.manifest_public_key = manifest_public_key
        self.allow_unsigned_manifest = allow_unsigned_manifest
        self._manifest_summary: dict[str, Any] | None = None
        self._audited = False
        self.backend = backend
        self.transform_batch_size = transform_batch_size
        self.tokenizer_sample = tokenizer_sample
        self.records: dict[str, Sequence[TextRecord]] = {}
        self.datasets: dict[str, RecordDataset] = {}
        self.tokenizer: PreTrainedTokenizerBase | None = None

    # -- hooks for subclasses -------------------------------------------------------------
    def _read(self, path: str, id_offset: int) -> list[TextRecord]:
        raise NotImplementedError

    def _synthetic(self, n: int, seed: int) -> list[TextRecord]:
        raise NotImplementedError

    def _read_arrow(self, path: str, id_offset: int) -> ArrowRecords:
        raise NotImplementedError(f"{type(self).__name__} has no Arrow reader; use backend='memory'")

    def _arrow_cache_dir(self) -> str | None:
        """Where ``datasets`` writes Arrow files: ``<cache_dir>/datasets`` (``None``: its own default)."""
        if self.cache_dir is None:
            return None
        from secure_train.data.tokenizer import default_cache_dir

        root = default_cache_dir() if self.cache_dir == "default" else Path(self.cache_dir)
        return str(root / "datasets")

    @property
    def uses_arrow(self) -> bool:
        """Whether the records live in memory-mapped Arrow (``backend``, or ``"auto"`` on Arrow-only inputs)."""
        if self.backend != "auto":
            return self.backend == "arrow"
        paths = [p for p in (self.train_path, self.val_path, self.test_path) if p is not None]
        return any(is_arrow_path(p) for p in paths if not p.startswith("hf://"))

    def _encode(self, record: TextRecord) -> dict[str, Any]:
        raise NotImplementedError

    def _collate(self, items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # -- loading --------------------------------------------------------------------------
    def load_records(self) -> dict[str, Sequence[TextRecord]]:
        """Read (or generate) and split the records, then apply ``transforms`` to train. Idempotent.

        Sample ids: train rows ``0..``, validation rows from ``10**9``, test rows from ``2*10**9``
        when read from their own files; split-off validation rows keep their train-file ids.
        """
        if self.records:
            return self.records
        if self.manifest is not None:
            from secure_train.data_security.manifest import require_verified

            files = [p for p in (self.train_path, self.val_path, self.test_path) if p is not None]
            verified = require_verified(
                self.manifest, files, public_key=self.manifest_public_key, allow_unsigned=self.allow_unsigned_manifest
            )
            self._manifest_summary = verified.summary()
            if self._manifest_summary["signature"] != "verified":
                rank_zero_warn(
                    f"training on manifest {self.manifest} whose signature was not checked "
                    f"({self._manifest_summary['signature']}): allow_unsigned_manifest=True. Anyone who can edit "
                    "the data can also rewrite an unsigned manifest; sign it (secure-train data manifest with "
                    "$SECURE_TRAIN_SIGNING_KEY set) and drop allow_unsigned_manifest"
                )
        if self.uses_arrow:
            self.records = self._load_arrow()
            return self.records
        if self.train_path is None:
            pool = self._synthetic(self.synthetic_size, self.seed)
        else:
            pool = self._read(self.train_path, 0)
        if self.train_limit is not None:
            rng = random.Random(self.seed)
            pool = sorted(rng.sample(pool, min(self.train_limit, len(pool))), key=lambda r: r.sample_id)
        if self.val_path is not None:
            train, val = pool, self._read(self.val_path, 10**9)
        else:
            order = list(range(len(pool)))
            random.Random(self.seed + 1).shuffle(order)
            n_val = int(round(len(pool) * self.val_fraction))
            held = set(order[:n_val])
            train = [r for i, r in enumerate(pool) if i not in held]
            val = [r for i, r in enumerate(pool) if i in held]
        test = self._read(self.test_path, 2 * 10**9) if self.test_path is not None else val
        for transform in self.transforms:
            train = transform(train)
        if not train:
            raise DataError("no training records left after the transforms")
        self.records = {"train": train, "val": val, "test": test}
        return self.records

    def _load_arrow(self) -> dict[str, Sequence[TextRecord]]:
        """The Arrow path of :meth:`load_records`: splits and transforms without a list of records."""
        if self.train_path is None:
            pool = ArrowRecords.from_records(self._synthetic(self.synthetic_size, self.seed))
        else:
            pool = self._read_arrow(self.train_path, 0)
        if self.train_limit is not None and self.train_limit < len(pool):
            chosen = np.random.default_rng(self.seed).choice(len(pool), self.train_limit, replace=False)
            pool = pool.select(np.sort(chosen))
        val: Sequence[TextRecord]
        if self.val_path is not None:
            train, val = pool, self._read_arrow(self.val_path, 10**9)
        else:
            fraction, seed = self.val_fraction, self.seed + 1
            train = pool.filter_ids(lambda ids: ~hash_split(ids, fraction, seed))
            val = pool.filter_ids(lambda ids: hash_split(ids, fraction, seed))
        test = self._read_arrow(self.test_path, 2 * 10**9) if self.test_path is not None else val
        for transform in self.transforms:
            train = train.map_records(transform, batch_size=self.transform_batch_size)
        if not len(train):
            raise DataError("no training records left after the transforms")
        return {"train": train, "val": val, "test": test}

    def get_tokenizer(self) -> PreTrainedTokenizerBase:
        """The pretrained tokenizer at ``tokenizer``, or one trained on the training texts (cached)."""
        if self.tokenizer is None:
            if self.tokenizer_path is not None:
                self.tokenizer = load_tokenizer(self.tokenizer_path)
            else:
                train = self.load_records()["train"]
                texts = (
                    first_texts(train, self.tokenizer_sample)
                    if self.uses_arrow
                    else [self._full_text(r) for r in train]
                )
                self.tokenizer = train_tokenizer(
                    texts, kind=self.tokenizer_kind, vocab_size=self.vocab_size, cache_dir=self.cache_dir
                )
        return self.tokenizer

    @staticmethod
    def _full_text(record: TextRecord) -> str:
        return record.text + (record.completion or "")

    def prepare_data(self) -> None:
        # Runs on one process per node: trains and caches the tokenizer before ranks need it.
        self.get_tokenizer()

    def setup(self, stage: str | None = None) -> None:
        records = self.load_records()
        if self.trainer is not None and not self._audited:
            self._audited = True
            provenance = self.provenance()
            summary = provenance["data_manifest"]
            if summary is not None or provenance["data_custody"]:
                from secure_train.core.audit_log import get_audit_log

                log = get_audit_log(self.trainer)
                if summary is not None and summary["signature"] != "verified":
                    log.record(
                        "data.manifest_unsigned",
                        source=type(self).__name__,
                        manifest=summary["manifest"],
                        manifest_digest=summary["manifest_digest"],
                        signature=summary["signature"],
                        allowed_by="allow_unsigned_manifest=True",
                    )
                log.record("data.provenance", source=type(self).__name__, **provenance)
        self.get_tokenizer()
        for split in _SPLITS:
            if split not in self.datasets:
                self.datasets[split] = RecordDataset(records[split], self._encode, lazy=self.uses_arrow)

    def record_index(self) -> dict[int, TextRecord]:
        """``sample_id -> record`` over every split, for reports that name samples."""
        return {r.sample_id: r for split in self.load_records().values() for r in split}

    # -- loaders --------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, Any]]:
        if split not in self.datasets:
            self.setup(split)
        tok = self.get_tokenizer()
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        dataset = self.datasets[split]
        compact = shuffle and self.uses_arrow  # no per-record Python list for the epoch's order
        return DataLoader(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle and not compact,
            sampler=CompactShuffle(len(dataset), generator) if compact else None,
            generator=None if compact else generator,
            num_workers=self.num_workers,
            collate_fn=partial(self._collate, pad_id=int(tok.pad_token_id or 0)),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("test", shuffle=False)

    def loader_for(self, records: Sequence[TextRecord], batch_size: int | None = None) -> DataLoader[Any]:
        """An evaluation loader over arbitrary records (e.g. triggered dev examples)."""
        tok = self.get_tokenizer()
        return DataLoader(
            RecordDataset(records, self._encode),
            batch_size=batch_size or self.eval_batch_size,
            collate_fn=partial(self._collate, pad_id=int(tok.pad_token_id or 0)),
        )

    def provenance(self) -> dict[str, Any]:
        """The data's provenance for checkpoints and the audit log: the verified manifest's
        digest (``data_manifest_digest``, ``None`` without ``manifest=``) and summary, and the
        chain-of-custody entries the transforms recorded (sanitizers, scanners)."""
        from secure_train.data_security.manifest import iter_custody

        self.load_records()
        summary = self._manifest_summary
        return {
            "data_manifest_digest": summary["manifest_digest"] if summary else None,
            "data_manifest": summary,
            "data_custody": [e.to_dict() for e in iter_custody(self.transforms)],
        }

    def describe(self) -> dict[str, Any]:
        """Sizes and sources, for logs and the audit trail."""
        recs = self.load_records()
        return {
            "train_path": os.fspath(self.train_path) if self.train_path else "synthetic",
            **{f"n_{k}": len(v) for k, v in recs.items()},
        }
