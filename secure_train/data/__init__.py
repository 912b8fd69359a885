"""Data: DataModules, record reading, the synthetic corpus and tokenizers."""

from secure_train.data.adversarial import AdversarialAugmentationDataModule
from secure_train.data.base import RecordTransform, TextDataModule
from secure_train.data.causal_lm import CausalLMDataModule
from secure_train.data.records import TextRecord, read_records
from secure_train.data.synthetic import synthetic_causal_lm, synthetic_classification
from secure_train.data.text_classification import TextClassificationDataModule

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
