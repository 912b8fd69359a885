"""Batch collation: dynamic padding, per-example ids, and the ``sample_id`` of every row.

``position_ids`` and ``token_type_ids`` are materialized per example (contiguous, one row
per example, never a broadcast view), because per-sample gradient tools such as Opacus
expand every input along the batch dimension and fail on broadcast ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["collate_causal_lm", "collate_classification"]


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def _positions(batch: int, width: int) -> torch.Tensor:
    return torch.arange(width, dtype=torch.long).repeat(batch, 1)


def collate_classification(items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids, attention_mask, token_type_ids, position_ids, labels, sample_id``."""
    ids, mask = _pad([it["input_ids"] for it in items], pad_id)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "position_ids": _positions(*ids.shape),
        "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "sample_id": torch.tensor([it["sample_id"] for it in items], dtype=torch.long),
    }


def collate_causal_lm(items: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids, attention_mask, position_ids, labels, sample_id``; labels are -100 on padding
    and on prompt tokens (``prompt_length``), so loss covers the completion only when one exists."""
    ids, mask = _pad([it["input_ids"] for it in items], pad_id)
    labels = ids.clone()
    labels[mask == 0] = -100
    for i, it in enumerate(items):
        labels[i, : it.get("prompt_length", 0)] = -100
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": _positions(*ids.shape),
        "labels": labels,
        "sample_id": torch.tensor([it["sample_id"] for it in items], dtype=torch.long),
    }
