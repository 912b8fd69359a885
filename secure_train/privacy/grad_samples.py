"""Per-example gradients of one logical batch (``grad_sample_mode="hooks"``), made ready for clipping.

Opacus's hooks store one chunk of per-example gradients per micro-batch in ``p.grad_sample``.
Before the ``DPOptimizer`` clips them, :func:`prepare_grad_samples` joins the chunks of the
micro-batches of a logical batch, zeroes the stand-in example of an empty Poisson micro-batch
(a noise-only step), undoes Lightning's division of the loss by ``accumulate_grad_batches``
(each example's gradient must be its own, unscaled, for the clipping bound to hold), and
gives a parameter that the step did not use an all-zero per-example gradient.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> p.grad_sample = [torch.ones(3, 2), torch.ones(1, 2)]  # two micro-batches
    >>> prepare_grad_samples([p], [False, True], accumulate=2)
    >>> p.grad_sample[:, 0].tolist()
    [2.0, 2.0, 2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from secure_train.core.errors import ConfigError

__all__ = ["prepare_grad_samples"]


def prepare_grad_samples(params: Sequence[Any], dummy: Sequence[bool], *, accumulate: int) -> None:
    """Join each parameter's per-micro-batch ``grad_sample`` chunks in place (see the module docstring).

    Args:
        params: the optimizer's parameters.
        dummy: per micro-batch of the logical batch, whether it stands in for an empty batch.
        accumulate: ``accumulate_grad_batches`` (Lightning divided the loss by it).

    Raises:
        ConfigError: no per-example gradient was computed (the forward did not run the model).
    """
    ref = next((p.grad_sample for p in params if getattr(p, "grad_sample", None) is not None), None)
    if ref is None:
        raise ConfigError("no per-sample gradients were computed: is the model's forward run in training_step?")
    ref_chunks = ref if isinstance(ref, list) else [ref]
    for p in params:
        gs = getattr(p, "grad_sample", None)
        if gs is None:  # parameter unused this step: every example's gradient is 0
            chunks = [torch.zeros((len(r), *p.shape), device=p.device, dtype=p.dtype) for r in ref_chunks]
        else:
            chunks = list(gs) if isinstance(gs, list) else [gs]
        if len(chunks) != len(dummy):
            raise RuntimeError(f"{len(chunks)} per-sample gradient chunks for {len(dummy)} micro-batches")
        for i, is_dummy in enumerate(dummy):
            if is_dummy:
                chunks[i] = torch.zeros_like(chunks[i])
            elif accumulate > 1:
                chunks[i] = chunks[i] * accumulate  # Lightning divided the loss by accumulate
        p.grad_sample = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
