"""DataModule for text classification from CSV / TSV / JSONL, a hub dataset, or the synthetic corpus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from secure_train.core.arrow_records import ArrowRecords, read_arrow
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.records import TextRecord, detect_format, read_records
from secure_train.core.require import require_int, require_non_empty
from secure_train.data.base import TextDataModule
from secure_train.data.collate import collate_classification
from secure_train.data.synthetic import synthetic_classification

__all__ = ["TextClassificationDataModule"]

_HUB_PREFIX = "hf://"


class TextClassificationDataModule(TextDataModule):
    """Labeled text for :class:`~secure_train.models.TextClassifier`.

    With no ``train_path`` it serves the built-in synthetic sentiment corpus. GLUE SST-2's
    ``sentence<TAB>label`` files work with the defaults. Parquet files, globs of shards
    (``data/train-*.parquet``) and ``save_to_disk`` directories are read as memory-mapped
    Arrow (``backend="arrow"``, also available for CSV / TSV / JSONL): see
    :class:`~secure_train.data.base.TextDataModule`. A path of the form
    ``hf://NAME[#CONFIG][:SPLIT]`` (e.g. ``hf://nyu-mll/glue#sst2:train``) loads a hub
    dataset with the optional ``datasets`` package (online only). Batches carry ``input_ids,
    attention_mask, token_type_ids, position_ids, labels, sample_id``.

    Args:
        train_path / val_path / test_path: data files; without ``val_path`` a deterministic
            ``val_fraction`` of the training file is held out.
        text_column / label_column: column names (CSV/TSV header) or JSONL keys.
        num_labels: labels are integers in ``[0, num_labels)``.
        format: ``tsv``, ``csv`` or ``jsonl`` when the extension does not tell.
        tokenizer: local pretrained tokenizer directory; default: train WordPiece on the training split.
        transforms: callables applied to the training records (poisoning, sanitizing, ...).
        Other arguments: see :class:`~secure_train.data.base.TextDataModule`.

    Example:
        >>> dm = TextClassificationDataModule(synthetic_size=200, batch_size=8, cache_dir=None)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> sorted(batch)
        ['attention_mask', 'input_ids', 'labels', 'position_ids', 'sample_id', 'token_type_ids']
    """

    tokenizer_kind = "wordpiece"

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        *,
        text_column: str = "sentence",
        label_column: str = "label",
        num_labels: int = 2,
        format: str | None = None,  # noqa: A002 - mirrors the CLI flag name
        **kwargs: Any,
    ) -> None:
        super().__init__(train_path, val_path, test_path, **kwargs)
        require_int(self, "num_labels", num_labels, minimum=2)
        require_non_empty(self, "text_column", text_column)
        require_non_empty(self, "label_column", label_column)
        if format is not None:
            try:
                detect_format("", format)
            except DataError as err:
                raise ConfigError(f"{type(self).__name__}: format: {err}") from None
        self.text_column = text_column
        self.label_column = label_column
        self.num_labels = num_labels
        self.format = format

    def _read(self, path: str, id_offset: int) -> list[TextRecord]:
        if path.startswith(_HUB_PREFIX):
            return self._read_hub(path[len(_HUB_PREFIX) :], id_offset)
        return read_records(path, **self._columns(), id_offset=id_offset)

    def _read_arrow(self, path: str, id_offset: int) -> ArrowRecords:
        if path.startswith(_HUB_PREFIX):
            raise ConfigError(f"{path}: hub datasets are read in memory; use backend='memory'")
        return read_arrow(path, **self._columns(), id_offset=id_offset, cache_dir=self._arrow_cache_dir())

    def _columns(self) -> dict[str, Any]:
        """What both readers are told about the files: columns, label count, format."""
        return {
            "text_column": self.text_column,
            "label_column": self.label_column,
            "num_labels": self.num_labels,
            "fmt": self.format,
        }

    def _read_hub(self, spec: str, id_offset: int) -> list[TextRecord]:
        name, _, split = spec.partition(":")
        try:
            import datasets  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError(f"{_HUB_PREFIX}{spec}: hub datasets need `pip install datasets` and network") from None
        repo, _, config = name.partition("#")
        ds = datasets.load_dataset(repo, config or None, split=split or "train")  # noqa: S113 # nosec B615
        out = []
        for i, row in enumerate(ds):
            label = row[self.label_column]
            if not isinstance(label, int) or not 0 <= label < self.num_labels:
                raise DataError(f"{spec} row {i}: label {label!r} is out of range [0, {self.num_labels})")
            out.append(TextRecord(row[self.text_column], label, id_offset + i, f"{spec}:{i}"))
        return out

    def _synthetic(self, n: int, seed: int) -> list[TextRecord]:
        if self.num_labels != 2:
            raise ConfigError("the synthetic corpus is binary; set num_labels=2 or give train_path")
        return synthetic_classification(n, seed=seed)

    def _encode(self, record: TextRecord) -> dict[str, Any]:
        tok = self.get_tokenizer()
        ids = tok(record.text, truncation=True, max_length=self.max_length)["input_ids"]
        return {"input_ids": ids, "label": record.label, "sample_id": record.sample_id}

    def _collate(self, items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        return collate_classification(items, pad_id)
