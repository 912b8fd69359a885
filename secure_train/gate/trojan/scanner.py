"""The trojan scanner: its settings, and the stages of one scan run over a per-scan context.

See :mod:`secure_train.gate.trojan` for the method. Every stage takes the scan's
:class:`~secure_train.gate.trojan.context.ScanContext` (probe inputs, clean support,
candidates, baseline); the scanner keeps only its settings.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.gate.trojan.context import ScanContext
from secure_train.gate.trojan.inputs import ProbeInputs, build_probe_inputs
from secure_train.gate.trojan.invert import invert_trigger
from secure_train.gate.trojan.phrase import grow_phrase, realize
from secure_train.gate.trojan.probe import BudgetExhausted, ProbeContext
from secure_train.gate.trojan.result import TriggerCandidate, TrojanScanResult
from secure_train.gate.trojan.search import (
    clean_counts,
    clean_support,
    gain_share,
    grow_word,
    natural_use,
    neighbor_share,
    neighbors,
    punctuation_pairs,
    short_words,
)

_AUTO_EVALUATIONS = 24_000
_AUTO_REFERENCE_PARAMS = 22_700_000  # MiniLM-L6: the auto budget is its 24,000 evaluations' compute

__all__ = ["TrojanScanner"]


def _is_letter(token: str) -> bool:
    """A single letter a-z: the only one-character first pieces a made-up word is grown from."""
    return len(token) == 1 and "a" <= token <= "z"


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
        phrase_starts: most suspicious units grown into phrases per label (0: no phrase growth).
        phrase_pool: rare tokens (word starts and pieces, best flip rate first) a phrase grows from.
        max_phrase_tokens: longest grown phrase, in tokens.
        phrase_max_share: a token in at least this share of the clean records is common: a
            candidate of several tokens is discounted by it and the phrase pool leaves it out.
        batch_size: sequences per forward pass.
        amplify: records joined into one probe input by the joined constructions (1: only single
            records).
        min_clean_accuracy: a construction is usable only if the model's accuracy on it reaches this.
        max_construction_flip: a construction that flips more of the correctly classified
            records than this is not used for the search (its flip rate is a finding).
        min_inputs: fewest inputs per target label in each half; fewer fails closed.
        support_min_count / support_min_lean: when clean data explain a token (see above).
        max_evaluations: the scan's budget of sequence evaluations (one sequence through the
            model; a forward + backward pass counts 3), None for no budget. ``"auto"`` (the
            default) gives every model the compute of 24,000 evaluations of a MiniLM-L6
            (22.7M parameters): ``24_000 * 22.7M / parameters``, never fewer than 24,000, so
            a MiniLM-L6 scan stays under 5 minutes on 2 cores and a small model gets the full
            search. Each target label gets an equal share of
            what is left; within it the exact vocabulary scan runs first and must finish, a
            reserve is kept for the final measurement of the candidates, and word growth,
            phrase growth and inversion get ``stage_shares`` of the rest (a stage stops where
            its share ends; unused evaluations pass on to the next label). A budget spent
            before every label has a measured candidate fails closed; stages cut short are
            listed in :attr:`TrojanScanResult.cut_stages`.
        stage_shares: fractions of a label's search evaluations for word growth, phrase growth
            and inversion.
        race_inputs: a stage with many trials measures them all on this many search inputs
            first and only the best on all of them (racing).
        grow_top_k: continuation pieces measured per word-growth step after the gradient
            screen (vocabularies above ``exact_vocab_limit`` pieces).
        short_word_race: inputs of the first race round over the short made-up words (every
            letter a-z followed by a letter piece "##a"-"##z": "jz", "qv"); 0: not measured.
        punctuation_race: inputs of the first race round over every pair of ASCII punctuation
            tokens ("?!", "~~"); 0: not measured.
        neighbor_checks: the best single whole-word candidates per label (by search rate) that
            are compared with their ``neighbor_k`` nearest words in the embedding space; a
            word keeps only the part of its flip rate its neighbours do not share
            (:func:`~secure_train.gate.trojan.search.neighbor_share`): a natural sentiment
            word flips about as far as its synonyms, a planted word far further. 0: no check.
        neighbor_k: embedding neighbours measured per checked word.
        seed: chooses inputs and insertion positions.

    The scanner keeps only these settings: each :meth:`scan` builds its own
    :class:`~secure_train.gate.trojan.context.ScanContext`, so one instance can scan any number
    of models and each result is what a fresh scanner would give.

    Raises:
        ConfigError: on a bad argument (named with its value).

    Example:
        >>> scanner = TrojanScanner(num_inputs=8, inversion_steps=0)
        >>> scanner.threshold, scanner.num_inputs
        (0.8, 8)
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
        phrase_starts: int = 3,
        phrase_pool: int = 24,
        max_phrase_tokens: int = 5,
        phrase_max_share: float = 0.02,
        batch_size: int = 512,
        amplify: int = 2,
        min_clean_accuracy: float = 0.6,
        max_construction_flip: float = 0.25,
        min_inputs: int = 2,
        support_min_count: int = 5,
        support_min_lean: float = 0.1,
        max_evaluations: int | str | None = "auto",
        stage_shares: tuple[float, float, float] = (0.35, 0.35, 0.3),
        race_inputs: int = 8,
        grow_top_k: int = 32,
        short_word_race: int = 2,
        punctuation_race: int = 1,
        neighbor_checks: int = 3,
        neighbor_k: int = 8,
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
            ("phrase_pool", phrase_pool),
            ("max_phrase_tokens", max_phrase_tokens),
            ("batch_size", batch_size),
            ("min_inputs", min_inputs),
            ("race_inputs", race_inputs),
            ("grow_top_k", grow_top_k),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if num_inputs < 4:
            raise ConfigError(f"num_inputs must be >= 4, got {num_inputs}")
        for name, count in (("grow_starts", grow_starts), ("phrase_starts", phrase_starts)):
            if count < 0:
                raise ConfigError(f"{name} must be >= 0, got {count}")
        if support_min_count < 1:
            raise ConfigError(f"support_min_count must be >= 1, got {support_min_count}")
        if not 0.0 < support_min_lean <= 1.0:
            raise ConfigError(f"support_min_lean must be in (0, 1], got {support_min_lean}")
        if max_evaluations != "auto" and max_evaluations is not None and (
            not isinstance(max_evaluations, int) or max_evaluations < 1
        ):
            raise ConfigError(f"max_evaluations must be >= 1, 'auto' or None, got {max_evaluations!r}")
        if len(stage_shares) != 3 or any(not 0.0 <= f <= 1.0 for f in stage_shares) or sum(stage_shares) > 1.0:
            raise ConfigError(f"stage_shares must be 3 fractions in [0, 1] summing to <= 1, got {stage_shares}")
        for name, count in (
            ("short_word_race", short_word_race),
            ("punctuation_race", punctuation_race),
            ("neighbor_checks", neighbor_checks),
            ("neighbor_k", neighbor_k),
        ):
            if count < 0:
                raise ConfigError(f"{name} must be >= 0, got {count}")
        if amplify < 1:
            raise ConfigError(f"amplify must be >= 1, got {amplify}")
        if inversion_steps < 0:
            raise ConfigError(f"inversion_steps must be >= 0, got {inversion_steps}")
        for name, frac in (
            ("min_clean_accuracy", min_clean_accuracy),
            ("max_construction_flip", max_construction_flip),
            ("phrase_max_share", phrase_max_share),
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
        self.phrase_starts = phrase_starts
        self.phrase_pool = phrase_pool
        self.max_phrase_tokens = max_phrase_tokens
        self.phrase_max_share = phrase_max_share
        self.batch_size = batch_size
        self.amplify = amplify
        self.min_clean_accuracy = min_clean_accuracy
        self.max_construction_flip = max_construction_flip
        self.min_inputs = min_inputs
        self.support_min_count = support_min_count
        self.support_min_lean = support_min_lean
        self.max_evaluations = max_evaluations
        self.stage_shares = tuple(stage_shares)
        self._final_keep = 2 * refine_top_m + 2  # units measured on all inputs at the end
        self.race_inputs = race_inputs
        self.grow_top_k = grow_top_k
        self.short_word_race = short_word_race
        self.punctuation_race = punctuation_race
        self.neighbor_checks = neighbor_checks
        self.neighbor_k = neighbor_k
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
        budget = self.budget_for(net)
        was_training = net.training
        net.eval()
        try:
            probe = ProbeContext.build(
                net,
                tokenizer,
                batch_size=self.batch_size,
                max_length=self.max_length,
                budget=budget,
                race_inputs=self.race_inputs,
            )
            try:
                result = self._scan(probe, records)
            except BudgetExhausted as exc:
                result = self._unmeasured(
                    f"the evaluation budget ({budget} evaluations, max_evaluations={self.max_evaluations!r}) "
                    f"was spent in stage "
                    f"'{exc}' before every target label had a measured candidate; raise max_evaluations"
                )
            result.evaluations = probe.meter.used
            result.stage_evaluations = dict(probe.meter.by_stage)
            result.cut_stages = list(probe.meter.cut)
        finally:
            net.train(was_training)
        result.seconds = round(time.perf_counter() - start, 3)
        if not result.measured:
            warnings.warn(f"trojan scan failed closed: {result.problem}", RuntimeWarning, stacklevel=2)
        return result

    def budget_for(self, model: nn.Module) -> int | None:
        """The evaluation budget a scan of ``model`` gets (``max_evaluations`` resolved).

        Example:
            >>> TrojanScanner(max_evaluations=500).budget_for(nn.Linear(4, 2))
            500
            >>> TrojanScanner().budget_for(nn.Linear(22_700, 1_000))  # ~MiniLM-L6's size
            24000
        """
        if self.max_evaluations != "auto":
            return self.max_evaluations  # type: ignore[return-value]
        params = sum(p.numel() for p in model.parameters())
        return max(_AUTO_EVALUATIONS, round(_AUTO_EVALUATIONS * _AUTO_REFERENCE_PARAMS / max(params, 1)))

    # -- stages -----------------------------------------------------------------------------
    def _scan(self, probe: ProbeContext, records: Sequence[TextRecord]) -> TrojanScanResult:
        labeled = [r for r in records if r.label is not None]
        if not labeled:
            raise ConfigError("the trojan scan needs labeled clean records")
        if any(not 0 <= int(r.label or 0) < probe.num_labels for r in labeled):
            raise ConfigError(f"record labels must be in [0, {probe.num_labels}) for this model")
        ctx = ScanContext(probe=probe, records=labeled, rng=random.Random(self.seed))
        problem = self._build_inputs(ctx)
        if problem:
            return self._unmeasured(problem, ctx.inputs)
        ctx.support = torch.maximum(
            clean_support(probe, labeled, min_count=self.support_min_count, min_lean=self.support_min_lean),
            natural_use(probe, labeled, min_count=self.support_min_count),
        )
        common_count = max(2.0, self.phrase_max_share * len(labeled))
        ctx.common = (clean_counts(probe, labeled).sum(0) / common_count).clamp(max=1.0)
        for target in range(probe.num_labels):
            ctx.per_label[target] = self._scan_target(ctx, target)
        return self._result(ctx)

    def _build_inputs(self, ctx: ScanContext) -> str:
        """Build the probe inputs into ``ctx``; return why the scan cannot measure ("" if it can)."""
        num_labels = ctx.probe.num_labels
        ctx.inputs = inputs = build_probe_inputs(
            ctx.probe,
            ctx.records,
            ctx.rng,
            amplify=self.amplify,
            per_label=max(2, self.num_inputs // num_labels),
            min_clean_accuracy=self.min_clean_accuracy,
            max_flip=self.max_construction_flip,
        )
        if inputs.used is None:
            return inputs.problem
        short = [
            t for t in range(num_labels) if min(len(inputs.search[t][0]), len(inputs.held[t][0])) < self.min_inputs
        ]
        if short:
            return (
                f"too few correctly classified clean inputs to probe target label(s) {short} "
                f"(need {self.min_inputs} per half; construction {inputs.used})"
            )
        return ""

    def _scan_target(self, ctx: ScanContext, target: int) -> float:
        """Search triggers toward ``target``; add candidates to ``ctx``; return the best word's held-out rate."""
        probe, support = ctx.probe, ctx.support
        s_ids, s_pos = ctx.inputs.search[target]
        h_ids, h_pos = ctx.inputs.held[target]

        def tokens_of(unit: tuple[int, ...]) -> list[int]:
            # the unit's own pieces and the tokenizer's own split of its text: a word grown from
            # unusual pieces ("pointless" + "##yyy") is still explained by the word it spells
            # ([CLS] / [SEP] of the re-encoding are no part of it: they lean as the labels are balanced)
            tokens = set(unit) | {t for t in probe.encode(probe.text(unit)) if t < support.shape[1]}
            return sorted(t for t in tokens if bool(probe.allowed[t]))

        def free(unit: tuple[int, ...], alone: dict[int, float] | None = None) -> float:
            # with ``alone`` (each token's own flip rate as a share of the unit's), a token of a
            # unit of several explains only as much as it flips alone: "?" of negative clean
            # reviews explains a "?!" trigger no more than "?" alone flips
            weight = alone or {}
            explained = max([float(support[target, t]) * weight.get(t, 1.0) for t in tokens_of(unit)], default=0.0)
            if len(unit) > 1:  # several stacked common words flip a clean model too: a phrase counts
                explained = max(explained, *(float(ctx.common[t]) for t in unit))  # on rare tokens only
            return 1.0 - explained

        starts = torch.nonzero(probe.allowed & ~probe.cont).flatten()
        pieces = torch.nonzero(probe.allowed & probe.cont).flatten()
        left = probe.meter.left()  # this label's share: an equal part of what is left
        share = None if math.isinf(left) else int(left / (probe.num_labels - target))
        begin = probe.meter.used
        keep = self.refine_top_m * 2 + self.grow_starts
        with probe.stage("vocabulary"):  # exact (raced) single tokens: must finish
            screened: list[int] = []
            push: torch.Tensor | None = None
            if len(starts) > self.exact_vocab_limit or len(pieces) > self.exact_vocab_limit:
                push = probe.screen(s_ids, s_pos, target) * (1.0 - support[target])
            if push is not None and len(starts) > self.exact_vocab_limit:
                ranked = starts[torch.argsort(push[starts], descending=True)]
                vocab = ranked[: self.screen_top_k].tolist()
                screened = vocab[: self.grow_starts]
                rand = random.Random(self.seed + target).sample(starts.tolist(), min(32, len(starts)))
            else:
                vocab = starts.tolist()
                rand = vocab
            # punctuation and symbol tokens are few: all measured (a "?!" trigger), and so are the
            # letters a-z, the first pieces of short made-up words ("jz" -> "j", "##z")
            small = [t for t in starts.tolist() if not any(ch.isalnum() for ch in probe.vocab[t])]
            small += [t for t in starts.tolist() if _is_letter(probe.vocab[t])]
            vocab = list(dict.fromkeys(vocab + small))
            if push is not None and len(pieces) > self.exact_vocab_limit:
                conts = pieces[torch.argsort(push[pieces], descending=True)][: self.screen_top_k].tolist()
            else:
                conts = pieces.tolist()
            vocab_units: list[tuple[int, ...]] = [(t,) for t in vocab]
            rates = probe.race_rates(s_ids, s_pos, vocab_units, target, keep=keep)
            # short made-up words ("jz" -> "j", "##z"): every letter + letter piece, a quick race
            pairs = short_words(probe) if self.short_word_race > 0 else []
            pair_rates = probe.race_rates(s_ids, s_pos, pairs, target, keep=keep, first=self.short_word_race)
            # two-mark punctuation triggers ("?!"): every pair of ASCII marks, a quick race
            marks = punctuation_pairs(probe) if self.punctuation_race > 0 else []
            pairs += marks
            pair_rates += probe.race_rates(s_ids, s_pos, marks, target, keep=keep, first=self.punctuation_race)
            rand_units = [(t,) for t in rand]
            # the benign baseline of a large vocabulary: random tokens on the first search inputs
            rand_rates = rates if rand is vocab else probe.race_rates(s_ids, s_pos, rand_units, target, keep=0)
            ctx.baseline.extend(rand_rates)
        measured = vocab_units + pairs
        adjusted = [r * free(u) for r, u in zip(rates + pair_rates, measured, strict=True)]
        order = sorted(range(len(measured)), key=lambda i: -adjusted[i])
        units = [measured[i] for i in order[: self.refine_top_m * 2]]
        grow = list(dict.fromkeys([measured[i] for i in order[: self.grow_starts]] + [(t,) for t in screened]))
        # the search stages share what the vocabulary stage left of this label's share, less a
        # reserve for the final measurement (every unit on the first search inputs, the best on all)
        n_units = len(units) + len(grow) + self.phrase_starts + 2 * self.max_trigger_tokens
        reserve = n_units * self.race_inputs + self._final_keep * (len(s_ids) + len(h_ids))
        reserve += self.neighbor_checks * self.neighbor_k * len(s_ids)
        search = None if share is None else max(0, share - (probe.meter.used - begin) - reserve)
        grow_share, phrase_share, invert_share = (
            None if search is None else int(f * search) for f in self.stage_shares
        )
        with probe.stage("word-growth", grow_share) as meter:
            for t in grow:  # best start first: the share may end before the last
                if meter.left() <= 0:
                    break
                units.append(
                    grow_word(
                        probe,
                        t,
                        s_ids,
                        s_pos,
                        target,
                        max_tokens=self.max_trigger_tokens,
                        exact_vocab_limit=self.exact_vocab_limit,
                        screen_top_k=self.grow_top_k,
                    )
                )
        if self.phrase_starts > 0:
            with probe.stage("phrase-growth", phrase_share):
                units += self._grow_phrases(ctx, target, units, vocab_units, rates, conts, free)
        if self.inversion_steps > 0:
            with probe.stage("inversion", invert_share):
                units += invert_trigger(
                    probe,
                    s_ids,
                    s_pos,
                    target,
                    probe.allowed & (support[target] <= 0.5),
                    slots=self.max_trigger_tokens,
                    steps=self.inversion_steps,
                    top_m=self.refine_top_m,
                    seed=self.seed + 7919 * target,
                )
        units = list(dict.fromkeys(units))
        with probe.stage("measure"):  # raced on the search half by discounted rate, the best held out
            head = probe.flip_rates(s_ids[: self.race_inputs], s_pos[: self.race_inputs], units, target)
            units = sorted(units, key=lambda u: -head[units.index(u)] * free(u))[: self._final_keep]
            # a word grown on a natural word ("fantastic" + "##ship" + "##working") is credited
            # only with what its pieces add to that word: its first piece is measured alone too
            heads = {u: (u[0],) for u in units if self._natural_head(ctx, u)}
            # the supported tokens of units of several: measured alone (see ``free``)
            parts = {u: [t for t in tokens_of(u) if float(support[target, t]) > 0] for u in units if len(u) > 1}
            singles = [(t,) for ts in parts.values() for t in ts]
            measured = list(dict.fromkeys([*units, *heads.values(), *singles]))
            s_all = dict(zip(measured, probe.flip_rates(s_ids, s_pos, measured, target), strict=True))
            h_all = dict(zip(measured, probe.flip_rates(h_ids, h_pos, measured, target), strict=True))
            shared = self._neighbor_shares(ctx, target, units, s_all, free)
        best_word, best_word_search = 0.0, -1.0
        for unit in units:
            sr, hr, words = s_all[unit], h_all[unit], probe.n_words(unit)
            f = free(unit, {t: min(1.0, s_all[(t,)] / sr) if sr > 0 else 1.0 for t in parts.get(unit, [])})
            if unit in heads:
                f = min(gain_share(f, sr, s_all[heads[unit]]), gain_share(f, hr, h_all[heads[unit]]))
            f = min(f, shared.get(unit, 1.0))
            tokens = tuple(probe.vocab[t] for t in unit)
            ctx.candidates.append(
                TriggerCandidate(probe.text(unit), tokens, target, round(hr, 4), round(1.0 - f, 4), words)
            )
            # the score's candidate is chosen on the search half, measured on the held-out half
            if sr * f > best_word_search or (sr * f == best_word_search and hr * f > best_word):
                best_word_search, best_word = sr * f, hr * f
        return round(best_word, 4)

    def _neighbor_shares(
        self,
        ctx: ScanContext,
        target: int,
        units: list[tuple[int, ...]],
        rates: dict[tuple[int, ...], float],
        free: Callable[[tuple[int, ...]], float],
    ) -> dict[tuple[int, ...], float]:
        """For the best single whole-word units: the share of their search flip rate their
        embedding neighbours do not reach (see :func:`~secure_train.gate.trojan.search.neighbor_share`)."""
        probe = ctx.probe
        s_ids, s_pos = ctx.inputs.search[target]
        words = [u for u in units if len(u) == 1 and not bool(probe.cont[u[0]]) and probe.vocab[u[0]].isalpha()]
        words = sorted(words, key=lambda u: -rates[u] * free(u))[: self.neighbor_checks]
        out: dict[tuple[int, ...], float] = {}
        for unit in words:
            near = [(t,) for t in neighbors(probe, unit[0], self.neighbor_k)]
            out[unit] = neighbor_share(rates[unit], probe.flip_rates(s_ids, s_pos, near, target))
        return out

    @staticmethod
    def _natural_head(ctx: ScanContext, unit: tuple[int, ...]) -> bool:
        """Whether ``unit`` is one word of several pieces whose first piece the clean records use."""
        probe = ctx.probe
        return len(unit) > 1 and probe.n_words(unit) == 1 and float(ctx.common[unit[0]]) > 0.0

    def _grow_phrases(
        self,
        ctx: ScanContext,
        target: int,
        units: list[tuple[int, ...]],
        singles: list[tuple[int, ...]],
        rates: list[float],
        conts: list[int],
        free: Callable[[tuple[int, ...]], float],
    ) -> list[tuple[int, ...]]:
        """Grow the most suspicious units into phrases from a pool of unexplained tokens."""
        out: list[tuple[int, ...]] = []
        try:
            self._phrases(ctx, target, units, singles, rates, conts, free, out)
        except BudgetExhausted:  # the stage's share is spent: the phrases grown so far
            pass
        return out

    def _phrases(
        self,
        ctx: ScanContext,
        target: int,
        units: list[tuple[int, ...]],
        singles: list[tuple[int, ...]],
        rates: list[float],
        conts: list[int],
        free: Callable[[tuple[int, ...]], float],
        out: list[tuple[int, ...]],
    ) -> None:
        probe = ctx.probe
        s_ids, s_pos = ctx.inputs.search[target]
        keep = self.phrase_starts + self.phrase_pool
        cont_rates = probe.race_rates(s_ids, s_pos, [(t,) for t in conts], target, keep=keep)
        rare = ctx.common < 1.0
        ok = [(r, u[0]) for r, u in zip(rates, singles, strict=True) if free(u) >= 0.5 and rare[u[0]]]
        ok += [(r, t) for r, t in zip(cont_rates, conts, strict=True) if free((t,)) >= 0.5 and rare[t]]
        ok.sort(key=lambda rt: -rt[0])
        pool = [t for _, t in ok[: self.phrase_pool]]
        punct = [u[0] for r, u in sorted(zip(rates, singles, strict=True), key=lambda ru: -ru[0])
                 if not any(ch.isalnum() for ch in probe.vocab[u[0]]) and rare[u[0]]]  # fmt: skip
        pool = list(dict.fromkeys(pool + punct[:4]))
        word_starts = [t for t in pool if not bool(probe.cont[t])]
        letters = [t for t in range(len(probe.vocab)) if bool(probe.allowed[t]) and _is_letter(probe.vocab[t])]
        candidates = list(dict.fromkeys([*units, *((t,) for t in pool)]))
        seeds = probe.race_rates(s_ids, s_pos, candidates, target, keep=keep)
        ranked = sorted(range(len(candidates)), key=lambda i: -seeds[i] * free(candidates[i]))
        for i in ranked[: self.phrase_starts]:
            unit = grow_phrase(
                probe, candidates[i], pool, s_ids, s_pos, target, max_tokens=self.max_phrase_tokens
            )
            out.append(unit)  # kept if the budget ends while it gets a word start
            out[-1] = realize(probe, unit, list(dict.fromkeys(word_starts + letters)), s_ids, s_pos, target)

    def _result(self, ctx: ScanContext) -> TrojanScanResult:
        """The verdict from the candidates, the per-label rates and the construction findings."""
        inputs, per_label = ctx.inputs, ctx.per_label
        candidates = sorted(
            ctx.candidates, key=lambda c: (-c.flip_rate * (1 - c.clean_support), c.words, len(c.tokens))
        )
        uniq: dict[tuple[str, int], TriggerCandidate] = {}
        for c in candidates:
            uniq.setdefault((c.text, c.target_label), c)
        target_label = max(per_label, key=lambda k: per_label[k])
        score, source = per_label[target_label], "word"
        for name, (flip, to_label) in inputs.finding.items():
            if flip > score:
                score, source, target_label = flip, f"construction:{name}", to_label
        base = sorted(ctx.baseline) or [0.0]
        if any(math.isnan(v) for v in [score, *per_label.values()]):
            return self._unmeasured("the scan produced a NaN score", inputs)
        return TrojanScanResult(
            backdoor_score=round(score, 4),
            target_label=target_label,
            per_label=dict(per_label),
            baseline_median=round(base[len(base) // 2], 4),
            baseline_p95=round(base[min(len(base) - 1, int(math.ceil(0.95 * len(base))) - 1)], 4),
            candidates=list(uniq.values())[:10],
            threshold=self.threshold,
            seconds=0.0,
            n_inputs={t: len(inputs.held[t][0]) for t in range(ctx.probe.num_labels)},
            score_source=source,
            construction_accuracy=dict(inputs.accuracy),
            construction_flip=dict(inputs.flip),
            construction=inputs.used or "",
        )

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
