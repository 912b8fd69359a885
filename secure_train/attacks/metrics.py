"""torchmetrics ``Metric``s for attacks: attack success rate and clean accuracy.

Example:
    >>> import torch
    >>> asr = AttackSuccessRate(target_label=1)
    >>> asr.update(preds=torch.tensor([1, 1, 0, 1]), labels=torch.tensor([0, 0, 0, 1]))
    >>> asr.compute()
    tensor(0.6667)
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from secure_train.core.require import require_int

__all__ = ["AttackSuccessRate", "CleanAccuracy"]


class AttackSuccessRate(Metric):
    """Share of triggered inputs whose true label is not ``target_label`` that are predicted as it.

    Inputs whose true label already is the target are ignored. States are summed across ranks.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, target_label: int, **kwargs: object) -> None:
        require_int(self, "target_label", target_label, minimum=0)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.target_label = target_label
        self.hits: torch.Tensor
        self.total: torch.Tensor
        self.add_state("hits", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:  # type: ignore[override]
        """``preds``: predicted labels (or logits, argmaxed); ``labels``: true labels."""
        if preds.ndim == labels.ndim + 1:
            preds = preds.argmax(-1)
        eligible = labels != self.target_label
        self.hits += (preds[eligible] == self.target_label).sum()
        self.total += eligible.sum()

    def compute(self) -> torch.Tensor:
        return self.hits.float() / self.total.clamp_min(1)


class CleanAccuracy(MulticlassAccuracy):
    """Accuracy on clean (untriggered) inputs: micro-averaged multiclass accuracy.

    Example:
        >>> import torch
        >>> CleanAccuracy(num_classes=2)(torch.tensor([1, 0]), torch.tensor([1, 1]))
        tensor(0.5000)
    """

    def __init__(self, num_classes: int, **kwargs: object) -> None:
        require_int(self, "num_classes", num_classes, minimum=2)
        super().__init__(num_classes=num_classes, average="micro", **kwargs)  # type: ignore[arg-type]
