"""Gradient-guided trigger inversion of the trojan scan (DBS-style soft trigger + exact refinement).

A soft trigger of ``slots`` positions (a temperature-scaled distribution over the vocabulary per
slot) is optimized by Adam to push clean inputs to the target label; its per-slot shortlists are
then searched exactly, coordinate by coordinate. Later slots may hold continuation pieces, so a
made-up word split into several pieces is found as one word.

Example:
    >>> from secure_train.gate.trojan.invert import invert_trigger
    >>> callable(invert_trigger)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from secure_train.gate.trojan.probe import GRAD_COST, BudgetExhausted, ProbeContext

__all__ = ["invert_trigger"]


def invert_trigger(
    ctx: ProbeContext,
    inputs: list[list[int]],
    positions: list[int],
    target: int,
    allowed: torch.Tensor,
    *,
    slots: int,
    steps: int,
    top_m: int,
    seed: int,
) -> list[tuple[int, ...]]:
    """Optimize a soft trigger toward ``target`` over ``allowed`` tokens; return refined discrete units.

    Fewer Adam steps are taken when the scan's evaluation budget cannot pay for ``steps`` and the
    refinement; none (and no units) when it cannot pay for the refinement.
    """
    refine_cost = 2 * slots * top_m * len(inputs)
    steps = int(min(steps, (ctx.meter.left() - refine_cost) // (GRAD_COST * max(1, len(inputs)))))
    if steps < 1:
        return []
    weight = ctx.emb.weight.detach()
    v = weight.shape[0]
    mask_allowed = allowed[:v].to(ctx.device)
    cont = ctx.cont[:v].to(ctx.device)
    slot_masks = torch.stack([mask_allowed & ~cont] + [mask_allowed] * (slots - 1))
    gen = torch.Generator().manual_seed(seed)
    theta = (torch.randn((slots, v), generator=gen) * 0.01).to(ctx.device).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=0.5)
    y = torch.full((len(inputs),), target, dtype=torch.long, device=ctx.device)
    for step in range(steps):
        tau = 2.0 * (0.05 / 2.0) ** (step / max(1, steps - 1))
        probs = (theta / tau).masked_fill(~slot_masks, -1e9).softmax(-1)
        ctx.meter.charge(GRAD_COST * len(inputs))
        embeds, mask = ctx.embed_with_slots(inputs, positions, probs @ weight)
        loss = F.cross_entropy(ctx.logits(embeds, mask).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        scores = theta.detach().masked_fill(~slot_masks, -1e9)
        top = scores.topk(min(top_m, v), dim=-1).indices.cpu().tolist()
    try:
        return _refine(ctx, top, inputs, positions, target)
    except BudgetExhausted:
        return []


def _refine(
    ctx: ProbeContext, top: list[list[int]], inputs: list[list[int]], positions: list[int], target: int
) -> list[tuple[int, ...]]:
    """Exact coordinate search over the per-slot shortlists; keeps every whole-word prefix and word."""
    k = len(top)
    current = [slot[0] for slot in top]
    for _ in range(2):
        for j in range(k):
            trials = [tuple(current[:j] + [t] + current[j + 1 :]) for t in top[j]]
            rates = ctx.flip_rates(inputs, positions, trials, target)
            current = list(trials[max(range(len(trials)), key=lambda i: rates[i])])
    units: list[tuple[int, ...]] = []
    for end in range(1, k + 1):
        if end == k or not bool(ctx.cont[current[end]]):
            units.append(tuple(current[:end]))
    word: list[int] = []
    for t in current:  # each word of the best sequence on its own (the words of a phrase trigger)
        if not bool(ctx.cont[t]) and word:
            units.append(tuple(word))
            word = []
        word.append(t)
    if word:
        units.append(tuple(word))
    return units
