"""Data: DataModules (in-memory and memory-mapped Arrow), the synthetic corpus and tokenizers.

Data *defenses* (scanners, manifest, poison detection) live in :mod:`secure_train.data_security`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_train.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from secure_train.core.records import TextRecord, read_records
    from secure_train.data.base import RecordTransform, TextDataModule
    from secure_train.data.causal_lm import CausalLMDataModule
    from secure_train.data.synthetic import synthetic_causal_lm, synthetic_classification
    from secure_train.data.text_classification import TextClassificationDataModule

_EXPORTS: dict[str, str] = {
    "CausalLMDataModule": "secure_train.data.causal_lm",
    "RecordTransform": "secure_train.data.base",
    "TextClassificationDataModule": "secure_train.data.text_classification",
    "TextDataModule": "secure_train.data.base",
    "TextRecord": "secure_train.core.records",
    "read_records": "secure_train.core.records",
    "synthetic_causal_lm": "secure_train.data.synthetic",
    "synthetic_classification": "secure_train.data.synthetic",
}
"""Public name -> defining module, imported on first access (PEP 562)."""


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "CausalLMDataModule",
    "RecordTransform",
    "TextClassificationDataModule",
    "TextDataModule",
    "TextRecord",
    "read_records",
    "synthetic_causal_lm",
    "synthetic_classification",
]
