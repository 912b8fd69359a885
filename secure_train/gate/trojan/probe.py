"""The model side of one trojan scan: the model, its vocabulary, and exact / first-order probes.

:class:`ProbeContext` holds what one :meth:`~secure_train.gate.trojan.TrojanScanner.scan` call
needs about the model (network, tokenizer, vocabulary, which tokens are continuation pieces)
and measures things on it: predictions, flip rates of inserted token units, and gradient
screens of an inserted embedding slot. It is part of the scan's
:class:`~secure_train.gate.trojan.context.ScanContext`; the scanner itself keeps no per-scan state.

Example:
    >>> import torch
    >>> from secure_train.data.tokenizer import train_tokenizer
    >>> from secure_train.models import TextClassifier
    >>> tok = train_tokenizer(["a good film", "a bad film"], vocab_size=60, cache_dir=None)
    >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
    ...     "num_attention_heads": 1, "intermediate_size": 16}, vocab_size=len(tok))
    >>> ctx = ProbeContext.build(model.model.eval(), tok, batch_size=8, max_length=16)
    >>> ctx.predict([tok("a good film")["input_ids"]]).shape
    torch.Size([1])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["BudgetExhausted", "EvaluationMeter", "ProbeContext"]

GRAD_COST = 3  # a forward + backward pass of one sequence counts as this many evaluations


class BudgetExhausted(Exception):
    """The scan's evaluation budget, or the current stage's share of it, is spent."""


@dataclass
class EvaluationMeter:
    """Counts sequence evaluations per scan stage and enforces the budget.

    One evaluation is one sequence through the model (a gradient pass counts ``GRAD_COST``).
    ``budget`` caps the whole scan (None: no cap); ``limit`` caps the current stage (an
    absolute count, set by :meth:`ProbeContext.stage`). A charge past either raises
    :class:`BudgetExhausted` and records the stage in ``cut``.

    Example:
        >>> m = EvaluationMeter(budget=10)
        >>> m.charge(8); m.used, m.left()
        (8, 2)
    """

    budget: int | None = None
    used: int = 0
    limit: int | None = None
    current: str = "inputs"
    by_stage: dict[str, int] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)

    def cap(self) -> int | None:
        caps = [c for c in (self.budget, self.limit) if c is not None]
        return min(caps) if caps else None

    def left(self) -> int | float:
        """Evaluations left under the budget and the current stage's limit (inf if uncapped)."""
        cap = self.cap()
        return float("inf") if cap is None else max(0, cap - self.used)

    def charge(self, n: int) -> None:
        if n > self.left():
            if self.current not in self.cut:
                self.cut.append(self.current)
            raise BudgetExhausted(self.current)
        self.used += n
        self.by_stage[self.current] = self.by_stage.get(self.current, 0) + n


@dataclass
class ProbeContext:
    """The model under scan and exact / first-order measurements on it.

    Attributes:
        net: the backbone (a Hugging Face sequence classifier), in eval mode.
        tok: its tokenizer.
        emb: the input embedding layer.
        vocab: token strings, one per embedding row.
        cont: per token, whether it is a continuation piece (``##...``).
        allowed: per token, whether a trigger may contain it (no special tokens).
        num_labels: output classes.
        batch_size: sequences per forward pass.
        max_length: truncation of clean inputs.
        meter: the scan's evaluation counter and budget (see :class:`EvaluationMeter`).
        race_inputs: inputs every unit is measured on first by :meth:`race_rates`.
    """

    net: nn.Module
    tok: Any
    emb: nn.Embedding
    vocab: list[str]
    cont: torch.Tensor
    allowed: torch.Tensor
    num_labels: int
    batch_size: int
    max_length: int
    pad_id: int
    device: torch.device
    meter: EvaluationMeter = field(default_factory=EvaluationMeter)
    race_inputs: int = 8

    @classmethod
    def build(
        cls,
        net: nn.Module,
        tok: Any,
        *,
        batch_size: int,
        max_length: int,
        budget: int | None = None,
        race_inputs: int = 8,
    ) -> ProbeContext:
        """Read the vocabulary and labels of ``net`` / ``tok``."""
        emb: nn.Embedding = net.get_input_embeddings()  # type: ignore[operator]
        vocab = tok.convert_ids_to_tokens(list(range(min(len(tok), emb.num_embeddings))))
        vocab += ["[no-token]"] * (emb.num_embeddings - len(vocab))  # embedding rows beyond the tokenizer
        special = set(getattr(tok, "all_special_ids", []))
        allowed = torch.tensor(
            [i not in special and not (t.startswith("[") and t.endswith("]")) for i, t in enumerate(vocab)],
            dtype=torch.bool,
        )
        return cls(
            net=net,
            tok=tok,
            emb=emb,
            vocab=vocab,
            cont=torch.tensor([t.startswith("##") for t in vocab], dtype=torch.bool),
            allowed=allowed,
            num_labels=int(getattr(getattr(net, "config", None), "num_labels", 2)),
            batch_size=batch_size,
            max_length=max_length,
            pad_id=int(tok.pad_token_id or 0),
            device=next(net.parameters()).device,
            meter=EvaluationMeter(budget=budget),
            race_inputs=race_inputs,
        )

    @contextmanager
    def stage(self, name: str, limit: int | None = None) -> Iterator[EvaluationMeter]:
        """Charge evaluations to stage ``name``, at most ``limit`` of them (None: the budget only)."""
        meter = self.meter
        saved = meter.current, meter.limit
        meter.current, meter.limit = name, None if limit is None else meter.used + max(0, limit)
        try:
            yield meter
        finally:
            meter.current, meter.limit = saved

    # -- text ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, truncation=True, max_length=self.max_length)["input_ids"])

    def text(self, unit: Sequence[int]) -> str:
        return str(self.tok.convert_tokens_to_string([self.vocab[t] for t in unit]))

    def n_words(self, unit: Sequence[int]) -> int:
        return sum(1 for t in unit if not bool(self.cont[t]))

    def slots(self, ids: Sequence[int]) -> list[int]:
        """Insertion points: before a word-start token or before the final [SEP], never before [CLS]."""
        return [i for i in range(1, len(ids)) if i == len(ids) - 1 or not self.vocab[ids[i]].startswith("##")]

    # -- exact measurement -------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Predicted label of each token-id sequence (charged to the meter first).

        Sequences are batched by length (little padding: a batch costs its longest sequence).
        """
        self.meter.charge(len(seqs))
        order = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
        preds = torch.empty(len(seqs), dtype=torch.long)
        for i in range(0, len(seqs), self.batch_size):
            idx = order[i : i + self.batch_size]
            width = len(seqs[idx[-1]])
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for j, k in enumerate(idx):
                ids[j, : len(seqs[k])] = torch.tensor(list(seqs[k]), dtype=torch.long)
                mask[j, : len(seqs[k])] = 1
            logits = self.net(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            preds[torch.tensor(idx)] = logits.argmax(-1).cpu()
        return preds

    def flip_rates(
        self, inputs: list[list[int]], positions: list[int], units: Sequence[tuple[int, ...]], target: int
    ) -> list[float]:
        """Share of ``inputs`` predicted ``target`` after inserting each unit at its position."""
        if not units or not inputs:
            return [0.0] * len(units)
        seqs = [ids[:p] + list(u) + ids[p:] for u in units for ids, p in zip(inputs, positions, strict=True)]
        preds = self.predict(seqs).view(len(units), len(inputs))
        return (preds == target).float().mean(1).tolist()

    def race_rates(
        self,
        inputs: list[list[int]],
        positions: list[int],
        units: Sequence[tuple[int, ...]],
        target: int,
        *,
        keep: int,
        first: int | None = None,
    ) -> list[float]:
        """Flip rates by racing: every unit on the first ``first`` inputs (default
        ``race_inputs``), the ``keep`` best on all of them. The others keep their rate on the
        first inputs (an estimate: they lost the race). Exact when there are at most ``keep``
        units or ``first`` inputs."""
        first = self.race_inputs if first is None else max(1, first)
        if len(units) <= keep or len(inputs) <= first:
            return self.flip_rates(inputs, positions, units, target)
        head = self.flip_rates(inputs[:first], positions[:first], units, target)
        top = sorted(range(len(units)), key=lambda i: -head[i])[:keep]
        tail = self.flip_rates(inputs[first:], positions[first:], [units[i] for i in top], target)
        n = len(inputs)
        for i, rate in zip(top, tail, strict=True):
            head[i] = (head[i] * first + rate * (n - first)) / n
        return head

    # -- first order -------------------------------------------------------------------------
    def embed_with_slots(
        self, inputs: list[list[int]], positions: list[int], slots: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings with ``slots`` (k x d) inserted at each input's position."""
        k = slots.shape[0]
        width = max(len(s) for s in inputs) + k
        n = len(inputs)
        src = torch.zeros((n, width), dtype=torch.long)
        is_slot = torch.zeros((n, width), dtype=torch.long)  # 0: token, j+1: slot j
        mask = torch.zeros((n, width), dtype=torch.long)
        for b, (ids, p) in enumerate(zip(inputs, positions, strict=True)):
            seq = ids[:p] + [-1] * k + ids[p:]
            src[b, : len(seq)] = torch.tensor([max(t, 0) for t in seq], dtype=torch.long)
            is_slot[b, p : p + k] = torch.arange(1, k + 1)
            mask[b, : len(seq)] = 1
        src, is_slot, mask = src.to(self.device), is_slot.to(self.device), mask.to(self.device)
        base = self.emb(src)
        padded = torch.cat([torch.zeros_like(slots[:1]), slots], 0)  # index 0 unused
        out = torch.where((is_slot > 0).unsqueeze(-1), padded[is_slot], base)
        return out, mask

    def logits(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(inputs_embeds=embeds, attention_mask=mask).logits  # type: ignore[no-any-return]

    def screen(
        self, inputs: list[list[int]], positions: list[int], target: int, prefix: Sequence[int] = ()
    ) -> torch.Tensor:
        """First-order push of every vocabulary row toward ``target`` when inserted after ``prefix``.

        The gradient of the target log-probability with respect to one free slot (placed after
        the ``prefix`` tokens), dotted with every embedding row, in one batched product.
        """
        weight = self.emb.weight.detach()
        fixed = weight[torch.tensor(list(prefix), dtype=torch.long, device=weight.device)]
        slot = weight.mean(0, keepdim=True).clone().requires_grad_(True)
        grads = torch.zeros_like(slot)
        step = max(1, self.batch_size // 4)
        self.meter.charge(GRAD_COST * len(inputs))
        for i in range(0, len(inputs), step):
            embeds, mask = self.embed_with_slots(
                inputs[i : i + step], positions[i : i + step], torch.cat([fixed, slot], 0)
            )
            logp = self.logits(embeds, mask).float().log_softmax(-1)[:, target].sum()
            (g,) = torch.autograd.grad(logp, slot)
            grads += g
        return (weight @ grads[0]).cpu()
