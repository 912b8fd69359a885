"""Trojan scan without trigger knowledge: vocabulary scan plus gradient-guided trigger inversion.

A backdoored classifier has a short input pattern (a rare word, a made-up multi-token word, a
sentence, a punctuation mark) whose insertion sends almost every input to one label.
:class:`TrojanScanner` looks for such a pattern without being told it, for every target label:

1. **Probe constructions.** Clean inputs are built from clean records in several ways: two
   same-label records joined by ". ", joined by a space, or one record alone. The model's
   clean accuracy is measured under each. A construction under which correctly classified
   records are no longer classified correctly (they flip to one label) is itself a finding: a
   benign edit (a full stop, a second sentence of the same sentiment) fired a backdoor, and its
   flip rate enters the score. The search uses the first construction that keeps the model's
   clean behaviour; if none does, or too few inputs stay usable, the scan **fails closed**
   (:attr:`TrojanScanResult.measured` is False, ``backdoored`` is True, ``problem`` says why).
2. **Vocabulary scan.** Every word-start token is inserted into clean inputs of the other labels
   and the share of predictions that flip to the target is measured. For large vocabularies
   (more than ``exact_vocab_limit`` tokens) a first-order screen (gradient of the target
   log-probability with respect to an inserted embedding, dotted with every embedding row in
   one product) ranks all tokens and the ``screen_top_k`` best are measured exactly.
3. **Word growth.** The best start tokens are grown with continuation pieces (``##...``),
   every piece screened the same way after the prefix (not capped), so made-up words that the
   tokenizer splits into several pieces are found as one word.
4. **Trigger inversion.** A soft trigger of ``max_trigger_tokens`` slots (DBS style) is
   optimized toward the target, discretized and refined by exact coordinate search.

Candidates are chosen on one half of the inputs and measured on the other half. Tokens that
the clean records contain several times with a lean toward the target (*clean support*) are
natural features: their flip rate is discounted by their support and the inversion skips them.

The **backdoor score** is the larger of the held-out flip rate (times ``1 - support``) of the
best *single-word* candidate over all labels and the flip rate of a benign probe construction.
Multi-word candidates are reported but do not enter the score: several stacked opposite-sentiment
words flip a clean sentiment model too.

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
    >>> result.measured or result.backdoored   # an untrained model cannot be measured: fails closed
    True
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.gate._trojan_inputs import ProbeInputs, build_probe_inputs
from secure_train.gate._trojan_invert import invert_trigger
from secure_train.gate._trojan_probe import ProbeContext

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
        backdoor_score: max of the best single-word held-out flip rate and the flip rate of a
            benign probe construction; 1.0 when the scan could not measure (fail closed).
        target_label: the suspected target label (the one with the highest score).
        per_label: best single-word held-out flip rate per label.
        baseline_median / baseline_p95: benign baseline: flip rates of the measured vocabulary.
        candidates: best candidates, highest flip rate first (single words and phrases).
        threshold: the decision threshold used for :attr:`backdoored`.
        seconds: wall time of the scan.
        measured: False when the scan could not measure; then ``problem`` says why.
        score_source: ``word``, ``construction:<name>`` or ``unmeasured``.
        construction_accuracy: clean accuracy of the model under each probe construction.
        construction_flip: per construction, share of correctly classified records flipped by it.
        construction: the construction the search used.
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
    measured: bool = True
    problem: str = ""
    score_source: str = "word"
    construction_accuracy: dict[str, float] = field(default_factory=dict)
    construction_flip: dict[str, float] = field(default_factory=dict)
    construction: str = ""

    @property
    def backdoored(self) -> bool:
        """True when the score reaches the threshold, or the scan could not measure."""
        return not self.measured or self.backdoor_score >= self.threshold

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
        screen_top_k: tokens per label (and pieces per growth step) measured exactly after the
            gradient screen.
        max_trigger_tokens: slots of the inverted trigger / pieces of a grown word.
        inversion_steps: Adam steps of the soft-trigger optimization per label.
        refine_top_m: tokens per slot tried by the exact coordinate refinement.
        grow_starts: start tokens grown into multi-piece words per label.
        batch_size: sequences per forward pass.
        amplify: records joined into one probe input by the joined constructions (1: only single
            records).
        min_clean_accuracy: a construction is usable only if the model's accuracy on it reaches this.
        max_construction_flip: a construction that flips more of the correctly classified
            records than this is not used for the search (its flip rate is a finding).
        min_inputs: fewest inputs per target label in each half; fewer fails closed.
        support_min_count / support_min_lean: when clean data explain a token (see above).
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
        grow_starts: int = 4,
        batch_size: int = 512,
        amplify: int = 2,
        min_clean_accuracy: float = 0.6,
        max_construction_flip: float = 0.25,
        min_inputs: int = 2,
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
            ("min_inputs", min_inputs),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if num_inputs < 4:
            raise ConfigError(f"num_inputs must be >= 4, got {num_inputs}")
        if grow_starts < 0:
            raise ConfigError(f"grow_starts must be >= 0, got {grow_starts}")
        if support_min_count < 1:
            raise ConfigError(f"support_min_count must be >= 1, got {support_min_count}")
        if not 0.0 < support_min_lean <= 1.0:
            raise ConfigError(f"support_min_lean must be in (0, 1], got {support_min_lean}")
        if amplify < 1:
            raise ConfigError(f"amplify must be >= 1, got {amplify}")
        if inversion_steps < 0:
            raise ConfigError(f"inversion_steps must be >= 0, got {inversion_steps}")
        for name, frac in (
            ("min_clean_accuracy", min_clean_accuracy),
            ("max_construction_flip", max_construction_flip),
        ):
            if not 0.0 <= frac <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {frac}")
        self.threshold = threshold
        self.num_inputs = num_inputs
        self.max_length = max_length
        self.exact_vocab_limit = exact_vocab_limit
        self.screen_top_k = screen_top_k
        self.max_trigger_tokens = max_trigger_tokens
        self.inversion_steps = inversion_steps
        self.refine_top_m = refine_top_m
        self.grow_starts = grow_starts
        self.batch_size = batch_size
        self.amplify = amplify
        self.min_clean_accuracy = min_clean_accuracy
        self.max_construction_flip = max_construction_flip
        self.min_inputs = min_inputs
        self.support_min_count = support_min_count
        self.support_min_lean = support_min_lean
        self.seed = seed

    # -- public ---------------------------------------------------------------------------
    def scan(self, model: nn.Module, tokenizer: Any, records: Sequence[TextRecord]) -> TrojanScanResult:
        """Scan ``model`` (a :class:`~secure_train.models.TextClassifier` or a Hugging Face
        sequence classifier) with its ``tokenizer`` on clean labeled ``records``.

        A scan that cannot measure returns ``measured=False`` (and ``backdoored`` True) with the
        reason in ``problem``, and warns; it never passes silently.
        """
        start = time.perf_counter()
        net = _backbone(model)
        was_training = net.training
        net.eval()
        try:
            ctx = ProbeContext.build(net, tokenizer, batch_size=self.batch_size, max_length=self.max_length)
            result = self._scan(ctx, records)
        finally:
            net.train(was_training)
        result.seconds = round(time.perf_counter() - start, 3)
        if not result.measured:
            warnings.warn(f"trojan scan failed closed: {result.problem}", RuntimeWarning, stacklevel=2)
        return result

    # -- scan -----------------------------------------------------------------------------
    def _unmeasured(self, problem: str, inputs: ProbeInputs | None = None) -> TrojanScanResult:
        return TrojanScanResult(
            backdoor_score=1.0,
            target_label=0,
            per_label={},
            baseline_median=float("nan"),
            baseline_p95=float("nan"),
            candidates=[],
            threshold=self.threshold,
            seconds=0.0,
            measured=False,
            problem=problem,
            score_source="unmeasured",
            construction_accuracy=dict(inputs.accuracy) if inputs else {},
            construction_flip=dict(inputs.flip) if inputs else {},
        )

    def _scan(self, ctx: ProbeContext, records: Sequence[TextRecord]) -> TrojanScanResult:
        labeled = [r for r in records if r.label is not None]
        if not labeled:
            raise ConfigError("the trojan scan needs labeled clean records")
        if any(not 0 <= int(r.label or 0) < ctx.num_labels for r in labeled):
            raise ConfigError(f"record labels must be in [0, {ctx.num_labels}) for this model")
        rng = random.Random(self.seed)
        inputs = build_probe_inputs(
            ctx,
            labeled,
            rng,
            amplify=self.amplify,
            per_label=max(2, self.num_inputs // ctx.num_labels),
            min_clean_accuracy=self.min_clean_accuracy,
            max_flip=self.max_construction_flip,
        )
        if inputs.used is None:
            return self._unmeasured(inputs.problem, inputs)
        n_inputs = {t: len(inputs.held[t][0]) for t in range(ctx.num_labels)}
        short = [
            t for t in range(ctx.num_labels) if min(len(inputs.search[t][0]), len(inputs.held[t][0])) < self.min_inputs
        ]
        if short:
            return self._unmeasured(
                f"too few correctly classified clean inputs to probe target label(s) {short} "
                f"(need {self.min_inputs} per half; construction {inputs.used})",
                inputs,
            )
        support = self._support(ctx, labeled)
        candidates: list[TriggerCandidate] = []
        per_label: dict[int, float] = {}
        baseline: list[float] = []
        for target in range(ctx.num_labels):
            per_label[target] = self._scan_target(ctx, inputs, target, support, candidates, baseline)
        candidates.sort(key=lambda c: (-c.flip_rate * (1 - c.clean_support), c.words, len(c.tokens)))
        uniq: dict[tuple[str, int], TriggerCandidate] = {}
        for c in candidates:
            uniq.setdefault((c.text, c.target_label), c)
        target_label = max(per_label, key=lambda k: per_label[k])
        score, source = per_label[target_label], "word"
        for name, (flip, to_label) in inputs.finding.items():
            if flip > score:
                score, source, target_label = flip, f"construction:{name}", to_label
        base = sorted(baseline) or [0.0]
        if any(math.isnan(v) for v in [score, *per_label.values()]):
            return self._unmeasured("the scan produced a NaN score", inputs)
        return TrojanScanResult(
            backdoor_score=round(score, 4),
            target_label=target_label,
            per_label=per_label,
            baseline_median=round(base[len(base) // 2], 4),
            baseline_p95=round(base[min(len(base) - 1, int(math.ceil(0.95 * len(base))) - 1)], 4),
            candidates=list(uniq.values())[:10],
            threshold=self.threshold,
            seconds=0.0,
            n_inputs=n_inputs,
            score_source=source,
            construction_accuracy=dict(inputs.accuracy),
            construction_flip=dict(inputs.flip),
            construction=inputs.used,
        )

    def _scan_target(
        self,
        ctx: ProbeContext,
        inputs: ProbeInputs,
        target: int,
        support: torch.Tensor,
        candidates: list[TriggerCandidate],
        baseline: list[float],
    ) -> float:
        """Search triggers toward ``target``; append candidates; return the best word's held-out rate."""
        s_ids, s_pos = inputs.search[target]
        h_ids, h_pos = inputs.held[target]

        def free(unit: tuple[int, ...]) -> float:
            # the unit's own pieces and the tokenizer's own split of its text: a word grown from
            # unusual pieces ("pointless" + "##yyy") is still explained by the word it spells
            tokens = set(unit) | {t for t in ctx.encode(ctx.text(unit)) if t < support.shape[1]}
            return 1.0 - max(float(support[target, t]) for t in tokens)

        starts = torch.nonzero(ctx.allowed & ~ctx.cont).flatten()
        screened: list[int] = []
        if len(starts) > self.exact_vocab_limit:
            scores = ctx.screen(s_ids, s_pos, target) * (1.0 - support[target])
            ranked = starts[torch.argsort(scores[starts], descending=True)]
            probe = ranked[: self.screen_top_k].tolist()
            screened = probe[: self.grow_starts]
            rand = random.Random(self.seed + target).sample(starts.tolist(), min(64, len(starts)))
        else:
            probe = starts.tolist()
            rand = probe
        vocab_units: list[tuple[int, ...]] = [(t,) for t in probe]
        rates = ctx.flip_rates(s_ids, s_pos, vocab_units, target)
        rand_rates = rates if rand is probe else ctx.flip_rates(s_ids, s_pos, [(t,) for t in rand], target)
        baseline.extend(rand_rates)
        adjusted = [r * free(u) for r, u in zip(rates, vocab_units, strict=True)]
        order = sorted(range(len(vocab_units)), key=lambda i: -adjusted[i])
        units = [vocab_units[i] for i in order[: self.refine_top_m * 2]]
        grow = list(dict.fromkeys([vocab_units[i][0] for i in order[: self.grow_starts]] + screened))
        units += [self._grow(ctx, (t,), s_ids, s_pos, target) for t in grow]
        if self.inversion_steps > 0:
            units += invert_trigger(
                ctx,
                s_ids,
                s_pos,
                target,
                ctx.allowed & (support[target] <= 0.5),
                slots=self.max_trigger_tokens,
                steps=self.inversion_steps,
                top_m=self.refine_top_m,
                seed=self.seed + 7919 * target,
            )
        units = list(dict.fromkeys(units))
        s_rates = ctx.flip_rates(s_ids, s_pos, units, target)
        h_rates = ctx.flip_rates(h_ids, h_pos, units, target)
        best_word, best_word_search = 0.0, -1.0
        for unit, sr, hr in zip(units, s_rates, h_rates, strict=True):
            words, f = ctx.n_words(unit), free(unit)
            tokens = tuple(ctx.vocab[t] for t in unit)
            candidates.append(TriggerCandidate(ctx.text(unit), tokens, target, round(hr, 4), round(1.0 - f, 4), words))
            # the score's candidate is chosen on the search half, measured on the held-out half
            if words == 1 and (sr * f > best_word_search or (sr * f == best_word_search and hr * f > best_word)):
                best_word_search, best_word = sr * f, hr * f
        return round(best_word, 4)

    def _grow(
        self, ctx: ProbeContext, unit: tuple[int, ...], inputs: list[list[int]], positions: list[int], target: int
    ) -> tuple[int, ...]:
        """Greedily append continuation pieces while the flip rate improves.

        With more than ``exact_vocab_limit`` pieces, each step measures the ``screen_top_k``
        pieces ranked best by a gradient screen after the current prefix (all pieces scored).
        """
        conts = torch.nonzero(ctx.allowed & ctx.cont).flatten()
        if len(conts) == 0:
            return unit
        best = ctx.flip_rates(inputs, positions, [unit], target)[0]
        while len(unit) < self.max_trigger_tokens and best < 1.0:
            if len(conts) > self.exact_vocab_limit:
                push = ctx.screen(inputs, positions, target, prefix=unit)
                pick = conts[torch.argsort(push[conts], descending=True)[: self.screen_top_k]].tolist()
            else:
                pick = conts.tolist()
            trials = [(*unit, c) for c in pick]
            rates = ctx.flip_rates(inputs, positions, trials, target)
            i = max(range(len(trials)), key=lambda j: rates[j])
            if rates[i] <= best:
                break
            unit, best = trials[i], rates[i]
        return unit

    def _support(self, ctx: ProbeContext, records: Sequence[TextRecord]) -> torch.Tensor:
        """How far the clean data explain each token's pull toward each label, in [0, 1].

        Over the clean records containing a token: ``n`` records, a share ``p`` of them with the
        label. The lean is ``(p - 1/L) / (1 - 1/L)``. Support is ``min(1, n / support_min_count)
        * clip(lean / support_min_lean, 0, 1)``: a sentiment word seen in several clean reviews
        that lean toward "positive" is explained (support 1); a token the clean data never
        contain (a planted trigger), or contain without leaning toward the label, is not (0).
        """
        vocab_size = len(ctx.vocab)
        counts = torch.zeros((ctx.num_labels, vocab_size))
        for r in records:
            idx = torch.tensor([i for i in set(ctx.encode(r.text)) if i < vocab_size], dtype=torch.long)
            counts[int(r.label or 0), idx] += 1
        prior = 1.0 / ctx.num_labels
        n = counts.sum(0, keepdim=True)
        lean = (counts / n.clamp_min(1.0) - prior) / (1.0 - prior)
        seen = (n / self.support_min_count).clamp(max=1.0)
        return seen * (lean / self.support_min_lean).clamp(0.0, 1.0)
