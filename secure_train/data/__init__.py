"""Data: DataModules, record reading, the synthetic corpus and tokenizers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_train import lazy_attribute

if TYPE_CHECKING:
    from secure_train.data.adversarial import AdversarialAugmentationDataModule
    from secure_train.data.base import RecordTransform, TextDataModule
    from secure_train.data.causal_lm import CausalLMDataModule
    from secure_train.data.records import TextRecord, read_records
    from secure_train.data.synthetic import synthetic_causal_lm, synthetic_classification
    from secure_train.data.text_classification import TextClassificationDataModule

_EXPORTS: dict[str, str] = {
    "AdversarialAugmentationDataModule": "secure_train.data.adversarial",
    "CausalLMDataModule": "secure_train.data.causal_lm",
    "RecordTransform": "secure_train.data.base",
    "TextClassificationDataModule": "secure_train.data.text_classification",
    "TextDataModule": "secure_train.data.base",
    "TextRecord": "secure_train.data.records",
    "read_records": "secure_train.data.records",
    "synthetic_causal_lm": "secure_train.data.synthetic",
    "synthetic_classification": "secure_train.data.synthetic",
}
"""Public name -> defining module, imported on first access (PEP 562)."""


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "AdversarialAugmentationDataModule",
    "CausalLMDataModule",
    "RecordTransform",
    "TextClassificationDataModule",
    "TextDataModule",
    "TextRecord",
    "read_records",
    "synthetic_causal_lm",
    "synthetic_classification",
]
