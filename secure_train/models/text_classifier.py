"""LightningModule for sequence classification with any ``AutoModelForSequenceClassification``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import AutoModelForSequenceClassification

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_int
from secure_train.models.base import HFModule

__all__ = ["TINY_BERT", "TextClassifier"]

TINY_BERT: dict[str, Any] = {
    "model_type": "bert",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 0,
}


class TextClassifier(HFModule):
    """A text classifier from a local pretrained path or from a config (tiny BERT by default).

    Logs ``train/loss``, ``val/loss``, ``val/acc``, ``val/f1`` (and ``test/...``).

    Args:
        pretrained: local directory (or hub name when online) of a pretrained model.
        config: Hugging Face config dict with ``model_type`` for random init; default :data:`TINY_BERT`.
        num_labels: number of classes.
        vocab_size: embedding rows of a config-built model (the tokenizer must not be larger).
        lr / weight_decay / warmup_steps: AdamW with optional linear warm-up and decay.

    Example:
        >>> model = TextClassifier(vocab_size=100)
        >>> batch = {"input_ids": torch.tensor([[2, 7, 3]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
        ...          "labels": torch.tensor([1]), "sample_id": torch.tensor([0])}
        >>> model(batch).shape
        torch.Size([1, 2])
    """

    auto_class = AutoModelForSequenceClassification
    default_config = TINY_BERT

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        num_labels: int = 2,
        vocab_size: int = 8192,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
    ) -> None:
        require_int(self, "num_labels", num_labels, minimum=2)
        super().__init__(pretrained, config, vocab_size, lr, weight_decay, warmup_steps, num_labels=num_labels)
        self.save_hyperparameters()
        self.num_labels = num_labels
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_labels, average="micro"),
                "f1": MulticlassF1Score(num_labels, average="macro"),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def per_sample_loss(self, batch: dict[str, torch.Tensor], logits: torch.Tensor | None = None) -> torch.Tensor:
        logits = self(batch) if logits is None else logits
        return F.cross_entropy(logits.float(), batch["labels"], reduction="none")

    def _eval_step(self, batch: dict[str, torch.Tensor], prefix: str, metrics: MetricCollection) -> torch.Tensor:
        logits = self(batch)
        loss = self.per_sample_loss(batch, logits).mean()
        metrics.update(logits.argmax(-1), batch["labels"])
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=logits.shape[0], sync_dist=True)
        self.log_dict(metrics, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test", self.test_metrics)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities, shape ``(batch, num_labels)``."""
        return self(batch).float().softmax(-1)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        data_labels = getattr(datamodule, "num_labels", None)
        if data_labels is not None and data_labels != self.num_labels:
            raise ConfigError(f"data.num_labels={data_labels} but model.num_labels={self.num_labels}")
