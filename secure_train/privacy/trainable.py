"""Restrict training to the parameters named by glob patterns (parameter-efficient DP).

Fewer trainable parameters means less noise in total: DP-SGD adds noise of the same scale to
every trained coordinate, so fine-tuning the top layers and the head of a pretrained model
often keeps more utility at a given ε than fine-tuning everything.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    >>> restrict_trainable(net, ["1.*"])
    (10, 30)
    >>> [name for name, p in net.named_parameters() if p.requires_grad]
    ['1.weight', '1.bias']
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

import torch

from secure_train.core.errors import ConfigError

__all__ = ["restrict_trainable"]


def restrict_trainable(module: torch.nn.Module, patterns: Sequence[str]) -> tuple[int, int]:
    """Freeze every parameter whose name matches none of ``patterns`` (``fnmatch`` globs).

    Names are those of ``module.named_parameters()``; a pattern also matches a name's suffix
    after any ``.``, so ``classifier.*`` matches ``model.classifier.weight``. Parameters
    already frozen stay frozen. Returns ``(trainable, total)`` parameter counts.

    Raises:
        ConfigError: a pattern matches no parameter (a typo would silently freeze everything).
    """
    if not patterns:
        raise ConfigError("restrict_trainable needs at least one pattern")
    names = [name for name, _ in module.named_parameters()]
    unused = [p for p in patterns if not any(_matches(name, p) for name in names)]
    if unused:
        sample = ", ".join(names[:4] + (["..."] if len(names) > 4 else []))
        raise ConfigError(f"trainable pattern(s) {unused} match no parameter (names look like: {sample})")
    trainable = total = 0
    for name, param in module.named_parameters():
        total += param.numel()
        if not any(_matches(name, p) for p in patterns):
            param.requires_grad_(False)
        elif param.requires_grad:
            trainable += param.numel()
    return trainable, total


def _matches(name: str, pattern: str) -> bool:
    parts = name.split(".")
    return any(fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts)))
