"""Trojan scan without trigger knowledge: vocabulary scan plus gradient-guided trigger inversion.

A backdoored classifier has a short input pattern (a rare word, a made-up multi-token word, a
sentence) whose insertion sends almost every input to one label. :class:`TrojanScanner` looks
for such a pattern without being told it, in two ways, for every candidate target label:

1. **Vocabulary scan.** Every word-start token of the model's tokenizer is inserted into clean
   inputs of the other labels and the share of predictions that flip to the target is
   measured exactly. For large vocabularies (more than ``exact_vocab_limit`` tokens) a
   first-order screen ranks the tokens first (gradient of the target log-probability with
   respect to an inserted embedding, dotted with every embedding row; HotFlip/PICCOLO style)
   and only the ``screen_top_k`` best are measured exactly.
2. **Trigger inversion.** A soft trigger of ``max_trigger_tokens`` slots (a temperature-scaled
   distribution over the vocabulary per slot, DBS style) is optimized by gradient descent in
   the embedding space to push the clean inputs to the target; it is discretized and refined
   by exact coordinate search. Later slots may hold continuation pieces (``##...``), so
   made-up words that the tokenizer splits into several tokens are found as one word.

Clean inputs are made of ``amplify`` same-label clean records joined together, so that one
natural opposite-sentiment word no longer outweighs the evidence (a backdoor trigger, which
overrides content, still flips them). Candidates are chosen on one half of these inputs and
measured on the other half.

The **benign baseline** has two parts. (a) The flip rates of the measured vocabulary (median
and 95th percentile, reported). (b) *Clean support*: a token that the clean reference records
contain several times (``support_min_count``) and that leans toward the target label there
(``support_min_lean`` above the base rate) is a natural feature, explained by the data; its
flip rate is discounted by its support, and the inversion does not search it. A planted
trigger is absent from clean data (or present without a label lean), so it keeps its rate.

The **backdoor score** is the held-out flip rate, times ``1 - support``, of the best
*single-word* candidate over all labels (a word is whole however many tokens it takes), so a
score near 1 means one word the clean data do not explain turns nearly every input into the
target label. Multi-word candidates are reported as candidate triggers but do not enter the
score: several stacked opposite-sentiment or negation words flip a clean sentiment model too.

Limits: a trigger chosen among words that already lean toward the target in the clean data
is discounted like a natural word; a sentence trigger is scored through its strongest single
word (``benchmarks/trojan_scan.py`` reports where that falls short).

Example:
    >>> import torch
    >>> from secure_train.data import synthetic_classification
    >>> from secure_train.data.tokenizer import train_tokenizer
    >>> from secure_train.models import TextClassifier
    >>> recs = synthetic_classification(40, seed=0)
    >>> tok = train_tokenizer([r.text for r in recs], vocab_size=200, cache_dir=None)
    >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
    ...     "num_attention_heads": 1, "intermediate_size": 32}, vocab_size=len(tok))
    >>> result = TrojanScanner(num_inputs=8, inversion_steps=2, refine_top_m=2).scan(model, tok, recs)
    >>> 0.0 <= result.backdoor_score <= 1.0
    True
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from secure_train.data.records import TextRecord
from secure_train.errors import ConfigError

__all__ = ["TriggerCandidate", "TrojanScanResult", "TrojanScanner"]


@dataclass(frozen=True)
class TriggerCandidate:
    """A recovered trigger: its text, tokens, the label it drives inputs to, and its flip rate."""

    text: str
    tokens: tuple[str, ...]
    target_label: int
    flip_rate: float
    clean_support: float
    words: int


@dataclass
class TrojanScanResult:
    """Outcome of :meth:`TrojanScanner.scan`.

    Attributes:
        backdoor_score: held-out flip rate of the best single-word trigger over all labels.
        target_label: the suspected target label (the one with the highest score).
        per_label: best single-word held-out flip rate per label.
        baseline_median / baseline_p95: benign baseline: flip rates of the measured vocabulary.
        candidates: best candidates, highest flip rate first (single words and phrases).
        threshold: the decision threshold used for :attr:`backdoored`.
        seconds: wall time of the scan.
    """

    backdoor_score: float
    target_label: int
    per_label: dict[int, float]
    baseline_median: float
    baseline_p95: float
    candidates: list[TriggerCandidate]
    threshold: float
    seconds: float
    n_inputs: dict[int, int] = field(default_factory=dict)

    @property
    def backdoored(self) -> bool:
        """True when the score reaches the threshold."""
        return self.backdoor_score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backdoored"] = self.backdoored
        out["per_label"] = {str(k): v for k, v in self.per_label.items()}
        out["n_inputs"] = {str(k): v for k, v in self.n_inputs.items()}
        return out


def _backbone(model: nn.Module) -> nn.Module:
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) and hasattr(inner, "get_input_embeddings") else model


class TrojanScanner:
    """Scan a text classifier for an insertion backdoor, knowing nothing about the trigger.

    Args:
        threshold: backdoor score at or above which the model is called backdoored.
        num_inputs: clean inputs used (half to search, half to measure), balanced over labels.
        max_length: truncation of the clean inputs (tokens).
        exact_vocab_limit: vocabularies up to this size are measured token by token.
        screen_top_k: tokens per label measured exactly after the gradient screen.
        max_trigger_tokens: slots of the inverted trigger (covers multi-token words).
        inversion_steps: Adam steps of the soft-trigger optimization per label.
        refine_top_m: tokens per slot tried by the exact coordinate refinement.
        batch_size: sequences per forward pass.
        seed: chooses inputs and insertion positions.

    Raises:
        ConfigError: on a bad argument (named with its value).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.8,
        num_inputs: int = 96,
        max_length: int = 64,
        exact_vocab_limit: int = 4096,
        screen_top_k: int = 96,
        max_trigger_tokens: int = 4,
        inversion_steps: int = 60,
        refine_top_m: int = 6,
        batch_size: int = 512,
        amplify: int = 2,
        support_min_count: int = 5,
        support_min_lean: float = 0.1,
        seed: int = 0,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
        for name, value in (
            ("num_inputs", num_inputs),
            ("max_length", max_length),
            ("screen_top_k", screen_top_k),
            ("max_trigger_tokens", max_trigger_tokens),
            ("refine_top_m", refine_top_m),
            ("batch_size", batch_size),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if num_inputs < 4:
            raise ConfigError(f"num_inputs must be >= 4, got {num_inputs}")
        if support_min_count < 1:
            raise ConfigError(f"support_min_count must be >= 1, got {support_min_count}")
        if not 0.0 < support_min_lean <= 1.0:
            raise ConfigError(f"support_min_lean must be in (0, 1], got {support_min_lean}")
        if amplify < 1:
            raise ConfigError(f"amplify must be >= 1, got {amplify}")
        if inversion_steps < 0:
            raise ConfigError(f"inversion_steps must be >= 0, got {inversion_steps}")
        self.threshold = threshold
        self.num_inputs = num_inputs
        self.max_length = max_length
        self.exact_vocab_limit = exact_vocab_limit
        self.screen_top_k = screen_top_k
        self.max_trigger_tokens = max_trigger_tokens
        self.inversion_steps = inversion_steps
        self.refine_top_m = refine_top_m
        self.batch_size = batch_size
        self.amplify = amplify
        self.support_min_count = support_min_count
        self.support_min_lean = support_min_lean
        self.seed = seed

    # -- public ---------------------------------------------------------------------------
    def scan(self, model: nn.Module, tokenizer: Any, records: Sequence[TextRecord]) -> TrojanScanResult:
        """Scan ``model`` (a :class:`~secure_train.models.TextClassifier` or a Hugging Face
        sequence classifier) with its ``tokenizer`` on clean labeled ``records``."""
        start = time.perf_counter()
        net = _backbone(model)
        was_training = net.training
        net.eval()
        try:
            result = self._scan(net, tokenizer, records)
        finally:
            net.train(was_training)
        result.seconds = round(time.perf_counter() - start, 3)
        return result

    # -- setup ----------------------------------------------------------------------------
    def _scan(self, net: nn.Module, tok: Any, records: Sequence[TextRecord]) -> TrojanScanResult:
        self._device = next(net.parameters()).device
        emb: nn.Embedding = net.get_input_embeddings()  # type: ignore[operator]
        num_labels = int(getattr(getattr(net, "config", None), "num_labels", 2))
        vocab = tok.convert_ids_to_tokens(list(range(min(len(tok), emb.num_embeddings))))
        vocab += ["[no-token]"] * (emb.num_embeddings - len(vocab))  # embedding rows beyond the tokenizer
        special = set(getattr(tok, "all_special_ids", []))
        self._cont = torch.tensor([t.startswith("##") for t in vocab], dtype=torch.bool)
        allowed = torch.tensor(
            [i not in special and not (t.startswith("[") and t.endswith("]")) for i, t in enumerate(vocab)],
            dtype=torch.bool,
        )
        self._vocab, self._tok, self._net = vocab, tok, net
        self._cls_pad = int(tok.pad_token_id or 0)
        labeled = [r for r in records if r.label is not None]
        if not labeled:
            raise ConfigError("the trojan scan needs labeled clean records")
        rng = random.Random(self.seed)
        pool = self._amplified(labeled, rng)
        enc_all = [tok(text, truncation=True, max_length=self.max_length)["input_ids"] for text, _ in pool]
        preds = self._predict(enc_all)
        # Balanced correctly classified inputs, split into search and held-out halves per label.
        per = max(2, self.num_inputs // num_labels)
        by_label: dict[int, list[list[int]]] = {c: [] for c in range(num_labels)}
        for ids, (_, label), pred in zip(enc_all, pool, preds.tolist(), strict=True):
            if pred == label and len(by_label[label]) < per:
                by_label[label].append(ids)
        positions = {c: [self._position(ids, rng) for ids in by_label[c]] for c in by_label}
        search: dict[int, tuple[list[list[int]], list[int]]] = {}
        held: dict[int, tuple[list[list[int]], list[int]]] = {}
        for target in range(num_labels):
            src = [
                (ids, p)
                for c in range(num_labels)
                if c != target
                for ids, p in zip(by_label[c], positions[c], strict=True)
            ]
            rng.shuffle(src)
            half = len(src) // 2
            search[target] = ([s[0] for s in src[:half]], [s[1] for s in src[:half]])
            held[target] = ([s[0] for s in src[half:]], [s[1] for s in src[half:]])

        start_ok = allowed & ~self._cont
        support = self._support(labeled, num_labels, len(vocab))
        candidates: list[TriggerCandidate] = []
        per_label: dict[int, float] = {}
        baseline: list[float] = []
        n_inputs: dict[int, int] = {}
        for target in range(num_labels):
            s_ids, s_pos = search[target]
            h_ids, h_pos = held[target]
            n_inputs[target] = len(h_ids)
            if len(s_ids) < 1 or len(h_ids) < 1:
                per_label[target] = 0.0
                continue

            def unsupported(unit: tuple[int, ...], target: int = target) -> float:
                return 1.0 - max(float(support[target, t]) for t in unit)

            # 1. vocabulary scan (exact, or gradient screen + exact)
            starts = torch.nonzero(start_ok).flatten()
            if len(starts) > self.exact_vocab_limit:
                scores = self._screen(emb, s_ids, s_pos, target) * (1.0 - support[target])
                ranked = starts[torch.argsort(scores[starts], descending=True)]
                probe = ranked[: self.screen_top_k].tolist()
                rand = random.Random(self.seed + target).sample(starts.tolist(), min(64, len(starts)))
            else:
                probe = starts.tolist()
                rand = probe
            vocab_units: list[tuple[int, ...]] = [(t,) for t in probe]
            rates = self._flip_rates(s_ids, s_pos, vocab_units, target)
            rand_rates = rates if rand is probe else self._flip_rates(s_ids, s_pos, [(t,) for t in rand], target)
            baseline.extend(rand_rates)
            adjusted = [r * unsupported(u) for r, u in zip(rates, vocab_units, strict=True)]
            order = sorted(range(len(vocab_units)), key=lambda i: -adjusted[i])
            units = [vocab_units[i] for i in order[: self.refine_top_m * 2]]
            # multi-token words: grow the best single tokens with continuation pieces
            conts = torch.nonzero(allowed & self._cont).flatten().tolist()
            if 0 < len(conts) <= self.exact_vocab_limit:
                units += [self._extend(vocab_units[i], conts, s_ids, s_pos, target) for i in order[:3]]
            # 2. trigger inversion over tokens the clean data do not explain
            if self.inversion_steps > 0:
                units += self._invert(emb, s_ids, s_pos, target, allowed & (support[target] <= 0.5))
            units = list(dict.fromkeys(units))
            s_rates = self._flip_rates(s_ids, s_pos, units, target)
            h_rates = self._flip_rates(h_ids, h_pos, units, target)
            best_word = 0.0
            best_word_search = -1.0
            for unit, sr, hr in zip(units, s_rates, h_rates, strict=True):
                words = self._n_words(unit)
                free = unsupported(unit)
                text = tok.convert_tokens_to_string([vocab[t] for t in unit])
                candidates.append(
                    TriggerCandidate(
                        text, tuple(vocab[t] for t in unit), target, round(hr, 4), round(1.0 - free, 4), words
                    )
                )
                # the score's candidate is chosen on the search half, measured on the held-out half
                if words == 1 and (
                    sr * free > best_word_search or (sr * free == best_word_search and hr * free > best_word)
                ):
                    best_word_search, best_word = sr * free, hr * free
            per_label[target] = round(best_word, 4)
        candidates.sort(key=lambda c: (-c.flip_rate * (1 - c.clean_support), c.words, len(c.tokens)))
        uniq: dict[tuple[str, int], TriggerCandidate] = {}
        for c in candidates:
            uniq.setdefault((c.text, c.target_label), c)
        top = list(uniq.values())[:10]
        target_label = max(per_label, key=lambda k: per_label[k]) if per_label else 0
        base = sorted(baseline) or [0.0]
        return TrojanScanResult(
            backdoor_score=per_label.get(target_label, 0.0),
            target_label=target_label,
            per_label=per_label,
            baseline_median=round(base[len(base) // 2], 4),
            baseline_p95=round(base[min(len(base) - 1, int(math.ceil(0.95 * len(base))) - 1)], 4),
            candidates=top,
            threshold=self.threshold,
            seconds=0.0,
            n_inputs=n_inputs,
        )

    def _amplified(self, records: Sequence[TextRecord], rng: random.Random) -> list[tuple[str, int]]:
        """Clean inputs made of ``amplify`` same-label records joined by a full stop.

        More same-label evidence raises the bar for natural features (one opposite-sentiment
        word no longer outweighs it) while a backdoor trigger, which overrides content, still flips.
        """
        by: dict[int, list[str]] = {}
        for r in records:
            assert r.label is not None
            by.setdefault(int(r.label), []).append(r.text)
        out: list[tuple[str, int]] = []
        for label, texts in by.items():
            texts = list(texts)
            rng.shuffle(texts)
            n = len(texts) // self.amplify
            out += [(". ".join(texts[i * self.amplify : (i + 1) * self.amplify]), label) for i in range(n)]
        rng.shuffle(out)
        return out

    def _support(self, records: Sequence[TextRecord], num_labels: int, vocab_size: int) -> torch.Tensor:
        """How far the clean data explain each token's pull toward each label, in [0, 1].

        Over the clean records containing a token: ``n`` records, a share ``p`` of them with the
        label. The lean is ``(p - 1/L) / (1 - 1/L)``. Support is ``min(1, n / support_min_count)
        * clip(lean / support_min_lean, 0, 1)``: a sentiment word seen in several clean reviews
        that lean toward "positive" is explained (support 1); a token the clean data never
        contain (a planted trigger), or contain without leaning toward the label, is not (0).
        """
        counts = torch.zeros((num_labels, vocab_size))
        for r in records:
            ids = set(self._tok(r.text, truncation=True, max_length=self.max_length)["input_ids"])
            idx = torch.tensor([i for i in ids if i < vocab_size], dtype=torch.long)
            counts[int(r.label or 0), idx] += 1
        prior = 1.0 / num_labels
        n = counts.sum(0, keepdim=True)
        lean = (counts / n.clamp_min(1.0) - prior) / (1.0 - prior)
        seen = (n / self.support_min_count).clamp(max=1.0)
        return seen * (lean / self.support_min_lean).clamp(0.0, 1.0)

    def _extend(
        self, unit: tuple[int, ...], conts: list[int], inputs: list[list[int]], positions: list[int], target: int
    ) -> tuple[int, ...]:
        """Greedily append continuation pieces while the flip rate improves."""
        best = self._flip_rates(inputs, positions, [unit], target)[0]
        while len(unit) < self.max_trigger_tokens and best < 1.0:
            trials = [(*unit, c) for c in conts]
            rates = self._flip_rates(inputs, positions, trials, target)
            i = max(range(len(trials)), key=lambda j: rates[j])
            if rates[i] <= best:
                break
            unit, best = trials[i], rates[i]
        return unit

    def _n_words(self, unit: tuple[int, ...]) -> int:
        return sum(1 for t in unit if not bool(self._cont[t]))

    def _position(self, ids: list[int], rng: random.Random) -> int:
        # Insert before a word-start token (or before [SEP] at the end), never before [CLS].
        slots = [i for i in range(1, len(ids)) if i == len(ids) - 1 or not self._vocab[ids[i]].startswith("##")]
        return rng.choice(slots) if slots else len(ids)

    # -- exact measurement ----------------------------------------------------------------
    @torch.no_grad()
    def _predict(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        out = []
        for i in range(0, len(seqs), self.batch_size):
            chunk = seqs[i : i + self.batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), self._cls_pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, s in enumerate(chunk):
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            logits = self._net(input_ids=ids.to(self._device), attention_mask=mask.to(self._device)).logits
            out.append(logits.argmax(-1).cpu())
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)

    def _flip_rates(
        self, inputs: list[list[int]], positions: list[int], units: Sequence[tuple[int, ...]], target: int
    ) -> list[float]:
        """Share of ``inputs`` predicted ``target`` after inserting each unit at its position."""
        if not units or not inputs:
            return [0.0] * len(units)
        seqs = [ids[:p] + list(u) + ids[p:] for u in units for ids, p in zip(inputs, positions, strict=True)]
        preds = self._predict(seqs).view(len(units), len(inputs))
        return (preds == target).float().mean(1).tolist()

    # -- gradient screen ------------------------------------------------------------------
    def _embed_with_slots(
        self, emb: nn.Embedding, inputs: list[list[int]], positions: list[int], slots: torch.Tensor
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
            for j, t in enumerate(seq):
                if t >= 0:
                    src[b, j] = t
            is_slot[b, p : p + k] = torch.arange(1, k + 1)
            mask[b, : len(seq)] = 1
        src, is_slot, mask = src.to(self._device), is_slot.to(self._device), mask.to(self._device)
        base = emb(src)
        padded = torch.cat([torch.zeros_like(slots[:1]), slots], 0)  # index 0 unused
        slot_emb = padded[is_slot]
        out = torch.where((is_slot > 0).unsqueeze(-1), slot_emb, base)
        return out, mask

    def _logits(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._net(inputs_embeds=embeds, attention_mask=mask).logits  # type: ignore[no-any-return]

    def _screen(self, emb: nn.Embedding, inputs: list[list[int]], positions: list[int], target: int) -> torch.Tensor:
        """First-order estimate of every token's push toward ``target`` when inserted."""
        weight = emb.weight.detach()
        slot = weight.mean(0, keepdim=True).clone().requires_grad_(True)
        grads = torch.zeros_like(slot)
        for i in range(0, len(inputs), self.batch_size // 4 or 1):
            embeds, mask = self._embed_with_slots(emb, inputs[i : i + 128], positions[i : i + 128], slot)
            logp = self._logits(embeds, mask).float().log_softmax(-1)[:, target].sum()
            (g,) = torch.autograd.grad(logp, slot)
            grads += g
        return (weight @ grads[0]).cpu()

    # -- inversion ------------------------------------------------------------------------
    def _invert(
        self, emb: nn.Embedding, inputs: list[list[int]], positions: list[int], target: int, allowed: torch.Tensor
    ) -> list[tuple[int, ...]]:
        """Optimize a soft trigger toward ``target``; return discrete refined candidates."""
        k = self.max_trigger_tokens
        weight = emb.weight.detach()
        v = weight.shape[0]
        mask_allowed = allowed[:v].to(self._device)
        slot_masks = torch.stack([mask_allowed & ~self._cont[:v].to(self._device)] + [mask_allowed] * (k - 1))
        gen = torch.Generator().manual_seed(self.seed + 7919 * target)
        theta = (torch.randn((k, v), generator=gen) * 0.01).to(self._device).requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=0.5)
        y = torch.full((len(inputs),), target, dtype=torch.long, device=self._device)
        for step in range(self.inversion_steps):
            tau = 2.0 * (0.05 / 2.0) ** (step / max(1, self.inversion_steps - 1))
            probs = (theta / tau).masked_fill(~slot_masks, -1e9).softmax(-1)
            embeds, mask = self._embed_with_slots(emb, inputs, positions, probs @ weight)
            loss = F.cross_entropy(self._logits(embeds, mask).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            scores = theta.detach().masked_fill(~slot_masks, -1e9)
            top = scores.topk(self.refine_top_m, dim=-1).indices.cpu().tolist()
        return self._refine(top, inputs, positions, target)

    def _refine(
        self, top: list[list[int]], inputs: list[list[int]], positions: list[int], target: int
    ) -> list[tuple[int, ...]]:
        """Exact coordinate search over the per-slot shortlists; keeps every prefix length.

        A prefix ends before a word-start token, so kept candidates are whole words or phrases.
        """
        k = len(top)
        current = [slot[0] for slot in top]
        for _ in range(2):
            for j in range(k):
                trials = [tuple(current[:j] + [t] + current[j + 1 :]) for t in top[j]]
                rates = self._flip_rates(inputs, positions, trials, target)
                current = list(trials[max(range(len(trials)), key=lambda i: rates[i])])
        units: list[tuple[int, ...]] = []
        for end in range(1, k + 1):
            if end == k or not bool(self._cont[current[end]]):
                units.append(tuple(current[:end]))
        # Each word of the best sequence on its own (the words of a phrase trigger).
        word: list[int] = []
        for t in current:
            if not bool(self._cont[t]) and word:
                units.append(tuple(word))
                word = []
            word.append(t)
        if word:
            units.append(tuple(word))
        return units
