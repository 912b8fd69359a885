"""DataModule for causal language modeling from plain text or JSONL prompt/completion pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from secure_train.core.arrow_records import ArrowRecords, read_arrow
from secure_train.core.records import TextRecord, detect_format, read_records
from secure_train.core.require import require_non_empty
from secure_train.data.base import TextDataModule
from secure_train.data.collate import collate_causal_lm
from secure_train.data.synthetic import synthetic_causal_lm

__all__ = ["CausalLMDataModule"]


class CausalLMDataModule(TextDataModule):
    """Text for :class:`~secure_train.models.CausalLM`.

    Plain-text files hold one example per line; JSONL holds ``text_column`` and, optionally,
    ``completion_column`` (then the loss covers the completion only). With no ``train_path``
    it serves synthetic "Review: ... Sentiment: positive." pairs. Each sequence is one
    privacy unit. Parquet / JSONL shards and saved datasets are read as memory-mapped Arrow
    (``backend="arrow"``, see :class:`~secure_train.data.base.TextDataModule`). Batches carry
    ``input_ids, attention_mask, position_ids, labels, sample_id``.

    Example:
        >>> dm = CausalLMDataModule(synthetic_size=100, batch_size=4, cache_dir=None)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> bool((batch["labels"] == -100).any())
        True
    """

    tokenizer_kind = "bpe"

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        *,
        text_column: str = "text",
        completion_column: str | None = None,
        max_length: int = 96,
        vocab_size: int = 2048,
        **kwargs: Any,
    ) -> None:
        super().__init__(train_path, val_path, test_path, max_length=max_length, vocab_size=vocab_size, **kwargs)
        require_non_empty(self, "text_column", text_column)
        if completion_column is not None:
            require_non_empty(self, "completion_column", completion_column)
        self.text_column = text_column
        self.completion_column = completion_column

    def _read(self, path: str, id_offset: int) -> list[TextRecord]:
        fmt = detect_format(path)
        return read_records(
            path,
            text_column=self.text_column,
            label_column=None,
            completion_column=self.completion_column if fmt != "text" else None,
            id_offset=id_offset,
        )

    def _read_arrow(self, path: str, id_offset: int) -> ArrowRecords:
        return read_arrow(
            path,
            text_column=self.text_column,
            label_column=None,
            completion_column=self.completion_column,
            id_offset=id_offset,
            cache_dir=self._arrow_cache_dir(),
        )

    def _synthetic(self, n: int, seed: int) -> list[TextRecord]:
        return synthetic_causal_lm(n, seed=seed)

    def _encode(self, record: TextRecord) -> dict[str, Any]:
        tok = self.get_tokenizer()
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        prompt = tok(record.text, add_special_tokens=False)["input_ids"]
        if record.completion is None:
            ids = (prompt + eos)[: self.max_length]
            return {"input_ids": ids, "prompt_length": 0, "sample_id": record.sample_id}
        completion = tok(record.completion, add_special_tokens=False)["input_ids"] + eos
        prompt = prompt[: max(1, self.max_length - len(completion))]
        ids = (prompt + completion)[: self.max_length]
        return {"input_ids": ids, "prompt_length": len(prompt), "sample_id": record.sample_id}

    def _collate(self, items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        return collate_causal_lm(items, pad_id)
