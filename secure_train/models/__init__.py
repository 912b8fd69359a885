"""LightningModules wrapping Hugging Face models, built from a local path or a config."""

from secure_train.models.base import HFModule
from secure_train.models.causal_lm import TINY_GPT2, CausalLM
from secure_train.models.text_classifier import TINY_BERT, TextClassifier

__all__ = ["TINY_BERT", "TINY_GPT2", "CausalLM", "HFModule", "TextClassifier"]
