"""Ghost clipping for a LightningModule: per-example gradient norms without per-example gradients.

Opacus's ``GradSampleModuleFastGradientClipping`` computes each example's gradient norm layer by
layer in a first backward pass; the clipping coefficients then reweight the per-example losses
of a second pass, whose gradient is the sum of clipped per-example gradients. Lightning runs one
backward per step, so :class:`GhostClipping` runs the first pass itself in
``on_before_backward`` and installs a hook on the per-example loss vector that scales its
gradient by the coefficients in Lightning's own (second) pass.

The loss must be the mean (or sum) of a per-example loss vector; a weight shared by two layers
(tied embeddings) has a per-example norm the layers cannot compute, so it is untied or refused
(:func:`untie_shared_weights`).

Example:
    >>> import torch
    >>> layers = torch.nn.Sequential(torch.nn.Embedding(5, 2), torch.nn.Linear(2, 5))
    >>> layers[1].weight = layers[0].weight  # tied (5 x 2 both)
    >>> untie_shared_weights(layers, untie=True)
    >>> layers[1].weight is layers[0].weight
    False
"""

from __future__ import annotations

from typing import Any

import torch
from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
from opacus.grad_sample.grad_sample_module_fast_gradient_clipping_fsdp import GradSampleModuleFastGradientClippingFSDP
from opacus.optimizers import DPOptimizer

from secure_train.core.errors import ConfigError

__all__ = ["GhostClipping", "untie_shared_weights"]


def untie_shared_weights(module: torch.nn.Module, *, untie: bool) -> None:
    """Give every layer that shares a trainable weight its own copy (``untie``), else refuse.

    Only the first owner keeps the shared tensor; a Hugging Face ``config.tie_word_embeddings``
    under ``module.model`` is set to False so the model does not tie them again.

    Raises:
        ConfigError: a weight is shared and ``untie`` is False.
    """
    owners: dict[int, list[tuple[torch.nn.Module, str]]] = {}
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if param.requires_grad:
                owners.setdefault(id(param), []).append((sub, name))
    shared = [o for o in owners.values() if len(o) > 1]
    if not shared:
        return
    if not untie:
        names = ", ".join(f"{type(m).__name__}.{n}" for m, n in shared[0])
        raise ConfigError(
            f"grad_sample_mode='ghost' cannot clip a weight shared by several layers ({names}: tied "
            "embeddings); set untie_embeddings=True to give the output layer its own copy, or use 'hooks'"
        )
    for owner_list in shared:
        for sub, name in owner_list[1:]:
            setattr(sub, name, torch.nn.Parameter(getattr(sub, name).detach().clone()))
    config = getattr(getattr(module, "model", None), "config", None)
    if config is not None and hasattr(config, "tie_word_embeddings"):
        config.tie_word_embeddings = False


class GhostClipping:
    """The two backward passes of ghost clipping inside Lightning's one.

    Args:
        module: the LightningModule (hooked in place: checkpoint keys are unchanged).
        max_grad_norm: per-example L2 clipping bound C.
        fsdp: the module is sharded by FSDP2 (``fully_shard``): use Opacus's FSDP variant
            (``grad_sample_mode="ghost_fsdp"``, opacus>=1.6), whose norms live on the layers, not on
            the sharded parameters.

    Attributes:
        gsm: Opacus's ``GradSampleModuleFastGradientClipping`` (or its ``...FSDP``) around ``module``.
    """

    def __init__(self, module: torch.nn.Module, *, max_grad_norm: float, fsdp: bool = False) -> None:
        cls = GradSampleModuleFastGradientClippingFSDP if fsdp else GradSampleModuleFastGradientClipping
        self.gsm = cls(module, max_grad_norm=max_grad_norm, use_ghost_clipping=True, loss_reduction="mean")
        self._handles: list[Any] = []

    def before_backward(self, loss: torch.Tensor, optimizer: DPOptimizer, *, dummy: bool) -> None:
        """First pass (per-example norms), then hook the per-example losses for Lightning's pass.

        ``dummy``: the micro-batch stands in for an empty Poisson batch; its example gets
        coefficient 0 (a noise-only step).

        Raises:
            ConfigError: the loss is not the mean (or sum) of one loss per example.
        """
        node = loss.grad_fn
        while node is not None and type(node).__name__ == "DivBackward0":  # Lightning's loss / accumulate (= 1)
            node = node.next_functions[0][0]
        kind = type(node).__name__ if node is not None else None
        if kind not in ("MeanBackward0", "SumBackward0"):
            raise ConfigError(
                "grad_sample_mode='ghost' needs the training loss to be the mean (or sum) of a per-example loss "
                f"vector, e.g. F.cross_entropy(..., reduction='none').mean(); got a loss made by {kind}"
            )
        per_sample_node = node.next_functions[0][0]  # type: ignore[union-attr]
        loss.backward(retain_graph=True)  # first pass: per-sample norms (hooks on)
        optimizer.zero_grad(set_to_none=True)
        coeff = self.gsm.get_clipping_coef().detach()
        if dummy:
            coeff = torch.zeros_like(coeff)
        self.gsm.disable_hooks()

        def reweight(grad_outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            grad = grad_outputs[0]
            if grad.shape != coeff.shape:
                raise ConfigError(
                    "grad_sample_mode='ghost' needs the training loss to be the mean of one loss per example; "
                    f"the reduced tensor has shape {tuple(grad.shape)} for {coeff.shape[0]} examples"
                )
            scale = grad.shape[0] if kind == "MeanBackward0" else 1
            return (grad * coeff.to(grad) * scale,)

        if per_sample_node is None:
            raise ConfigError("grad_sample_mode='ghost': the per-example losses are not part of the graph")
        self._handles.append(per_sample_node.register_prehook(reweight))

    def after_backward(self) -> None:
        """Remove the reweighting hooks and turn the norm hooks back on for the next step."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.gsm.enable_hooks()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Remove the reweighting hooks and Opacus's hooks from the module."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.gsm._close()
