"""Deterministic generation of labeled prompt-injection and jailbreak examples.

:class:`AttackGenerator` composes the parts catalogued in :mod:`secure_train.attacks.families`
(payload x wrapper x obfuscation x position) into attacked texts. Every payload reaches the
text through :func:`~secure_train.attacks.insert`, the same insertion the backdoor triggers
use. An example is a pure function of ``(base text, family, goal, template split, seed)``,
so every DDP rank and every rerun generates the same examples.

**Holdout.** Each template is either ``train`` or ``eval``: all templates of a
``holdout_families`` family are ``eval``; within the other families a fixed share
(``holdout_fraction``, chosen by SHA-256 of the template id, independent of the seed) is
``eval``. Training examples use only ``train`` templates; evaluation examples only
``eval`` templates (for every part: payload, wrapper and obfuscation), so evaluation
measures generalization to unseen templates and families, not memorization.

Example:
    >>> gen = AttackGenerator(holdout_families=["roleplay"], seed=0)
    >>> ex = gen.generate("the film is dull", "direct", target=1, split="train", seed=7)
    >>> ex.family, ex.template_id in gen.template_ids("train"), "positive" in ex.text
    ('direct', True, True)
    >>> ex == gen.generate("the film is dull", "direct", target=1, split="train", seed=7)
    True
    >>> gen.template_ids("train") & gen.template_ids("eval")
    set()
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence

from secure_train.attacks.families import (
    FAMILIES,
    PAYLOAD_FAMILIES,
    TEMPLATES,
    WRAPPER_FAMILIES,
    AttackExample,
    Template,
    templates_of,
)
from secure_train.attacks.insertion import POSITIONS, insert
from secure_train.attacks.obfuscation import obfuscate
from secure_train.core.errors import ConfigError
from secure_train.core.require import require_choice, require_in_range, require_int

__all__ = ["SENTIMENT_CUES", "SENTIMENT_GOALS", "AttackGenerator"]

SENTIMENT_GOALS = ("negative", "positive")
"""Default goal names of a binary sentiment task (label 0, label 1)."""

SENTIMENT_CUES: dict[int, tuple[str, ...]] = {
    0: ("awful", "dull", "tedious", "boring", "painful", "lifeless", "bad"),
    1: ("wonderful", "brilliant", "superb", "great", "delightful", "charming", "good"),
}
"""Strongly polar words per label, carried by payloads as ``{cue}``: injected text moves a
sentiment classifier through the sentiment words it contains, so a real attack uses them."""

_SPLITS = ("train", "eval")


def _unit_hash(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / float(16**12)


class AttackGenerator:
    """Compose attack examples from the project's families, with a template holdout.

    Args:
        families: families whose ``train`` templates make training examples (default all).
        holdout_families: families used for evaluation only (all their templates are
            ``eval``); must not overlap ``families``.
        holdout_fraction: share of each training family's templates kept for evaluation
            (at least one per family when > 0).
        goals: the attacker's goal per target (a label name, or an output for causal LMs);
            default ``("negative", "positive")``.
        cues: polar words per target that payloads carry as ``{cue}``; default
            :data:`SENTIMENT_CUES` for binary goals, else the goal name.
        positions: where the payload goes (``start``, ``end``, ``random``).
        seed: base seed of :meth:`example_seed`.

    Raises:
        ConfigError: unknown family or position, overlap, bad fraction, no training payloads.
    """

    def __init__(
        self,
        families: Sequence[str] | None = None,
        *,
        holdout_families: Sequence[str] = (),
        holdout_fraction: float = 0.25,
        goals: Sequence[str] | None = None,
        cues: Mapping[int, Sequence[str]] | None = None,
        positions: Sequence[str] = POSITIONS,
        seed: int = 0,
    ) -> None:
        me = type(self).__name__
        for key, value in (("families", families), ("holdout_families", holdout_families), ("positions", positions)):
            if isinstance(value, str):
                raise ConfigError(f"{me}: {key} must be a list of names, got {value!r}")
        holdout = list(holdout_families)
        fams = [f for f in FAMILIES if f not in holdout] if families is None else list(families)
        for name, values in (("families", fams), ("holdout_families", holdout)):
            bad = [f for f in values if f not in FAMILIES]
            if bad:
                raise ConfigError(f"{me}: {name}: unknown attack families {bad}; choose from {list(FAMILIES)}")
        if not fams:
            raise ConfigError(f"{me}: families must name at least one attack family")
        overlap = sorted(set(fams) & set(holdout))
        if overlap:
            raise ConfigError(f"{me}: families and holdout_families overlap: {overlap}")
        require_in_range(self, "holdout_fraction", holdout_fraction, "[0, 1)")
        require_int(self, "seed", seed)
        bad_pos = [p for p in positions if p not in POSITIONS]
        if bad_pos or not positions:
            raise ConfigError(f"{me}: positions must be a non-empty subset of {POSITIONS}, got {list(positions)}")
        self.families = fams
        self.holdout_families = holdout
        self.holdout_fraction = holdout_fraction
        self.goals = tuple(goals) if goals is not None else SENTIMENT_GOALS
        if isinstance(goals, str) or len(self.goals) < 1 or not all(isinstance(g, str) for g in self.goals):
            raise ConfigError(f"{me}: goals must be a non-empty list of goal names, got {goals!r}")
        if cues is None:
            cues = SENTIMENT_CUES if self.goals == SENTIMENT_GOALS else {i: (g,) for i, g in enumerate(self.goals)}
        self.cues = {int(k): tuple(v) for k, v in cues.items()}
        self.positions = tuple(positions)
        self.seed = seed
        self._split = {tid: self._template_split(t) for tid, t in TEMPLATES.items()}
        if not self._payloads("train"):
            raise ConfigError(
                f"{me}: no training payload templates left: hold out fewer of direct / hijack / extraction"
            )
        for fam in self.families:
            if fam != "mixture" and not self._pool("train", fam):
                raise ConfigError(f"{me}: family {fam!r} has no training templates left; lower holdout_fraction")

    # -- the holdout split ----------------------------------------------------------------
    def _template_split(self, template: Template) -> str:
        if template.family in self.holdout_families:
            return "eval"
        members = sorted(templates_of(template.family), key=lambda t: _unit_hash(t.template_id))
        n_eval = math.ceil(self.holdout_fraction * len(members)) if self.holdout_fraction > 0 else 0
        n_eval = min(n_eval, len(members) - 1)
        return "eval" if template in members[:n_eval] else "train"

    def template_ids(self, split: str) -> set[str]:
        """Ids of the templates of ``split`` (``train`` or ``eval``)."""
        require_choice(self, "split", split, _SPLITS)
        return {tid for tid, s in self._split.items() if s == split}

    def _pool(self, split: str, family: str) -> list[Template]:
        return [t for t in templates_of(family) if self._split[t.template_id] == split]

    def _payloads(self, split: str) -> list[Template]:
        return [t for fam in PAYLOAD_FAMILIES for t in self._pool(split, fam)]

    @property
    def eval_families(self) -> list[str]:
        """Families evaluated: the held-out ones, then the training ones (on held-out templates)."""
        out = list(self.holdout_families)
        for fam in self.families:
            if fam == "mixture" or self._pool("eval", fam):
                out.append(fam)
        return out

    # -- generation -----------------------------------------------------------------------
    def example_seed(self, split: str, index: int) -> int:
        """The seed of example ``index`` of data split ``split``: stable across processes."""
        return int(hashlib.sha256(f"{self.seed}:{split}:{index}".encode()).hexdigest()[:8], 16)

    def _cue(self, target: int, rng: random.Random) -> str:
        words = self.cues.get(target) or (self.goals[target],)
        return " and ".join(rng.sample(words, 2)) if len(words) >= 2 else words[0]

    def generate(self, text: str, family: str, *, target: int, split: str, seed: int) -> AttackExample:
        """Attack ``text`` with ``family`` toward goal ``target`` using ``split`` templates only.

        Args:
            text: the base text (the benign content the attack is inserted into).
            family: one of :data:`~secure_train.attacks.families.FAMILIES`.
            target: index into ``goals`` (for classifiers: the attacker's label).
            split: ``train`` or ``eval`` templates.
            seed: drives every random choice; the same arguments give the same example.
        """
        require_choice(self, "family", family, FAMILIES)
        require_choice(self, "split", split, _SPLITS)
        if not 0 <= target < len(self.goals):
            raise ConfigError(f"{type(self).__name__}: target must be in [0, {len(self.goals)}), got {target}")
        rng = random.Random(seed)
        payloads = self._payloads(split)
        wrapper: Template | None = None
        obf: Template | None = None
        if family in PAYLOAD_FAMILIES:
            payload_t = rng.choice(self._require(split, family))
        else:
            payload_t = rng.choice(payloads)
            if family in WRAPPER_FAMILIES:
                wrapper = rng.choice(self._require(split, family))
            elif family == "obfuscation":
                obf = rng.choice(self._require(split, family))
            else:  # mixture: payload x wrapper x obfuscation x position
                wrappers = [t for fam in WRAPPER_FAMILIES for t in self._pool(split, fam)]
                obfs = self._pool(split, "obfuscation")
                wrapper = rng.choice(wrappers) if wrappers else None
                obf = rng.choice(obfs) if obfs and rng.random() < 0.5 else None
        position = rng.choice(self.positions)
        goal = self.goals[target]
        payload = payload_t.text.format(goal=goal, cue=self._cue(target, rng))
        if obf is not None:
            payload = obfuscate(payload, obf.text, rng)
        if wrapper is not None and wrapper.family == "roleplay":
            payload = wrapper.text.format(payload=payload, goal=goal)
        if wrapper is not None and wrapper.family == "indirect":
            attacked = insert(text, wrapper.text.format(payload=payload), position, rng)
            attacked = " ".join(part for part in (wrapper.prefix, attacked, wrapper.suffix) if part)
        else:
            attacked = insert(text, payload, position, rng)
        components = tuple(t.template_id for t in (payload_t, wrapper, obf) if t is not None)
        if family == "mixture":
            template_id = "mixture/" + "+".join(components)
        else:
            own = {"indirect": wrapper, "roleplay": wrapper, "obfuscation": obf}.get(family, payload_t)
            assert own is not None
            template_id = own.template_id
        return AttackExample(attacked, family, template_id, components, position, goal, seed)

    def _require(self, split: str, family: str) -> list[Template]:
        pool = self._pool(split, family)
        if not pool:
            raise ConfigError(f"family {family!r} has no {split} templates")
        return pool

    def families_for(self, split: str) -> list[str]:
        """Families that make examples for a data split: training families for ``train``,
        :attr:`eval_families` otherwise."""
        return list(self.families) if split == "train" else self.eval_families

    def __repr__(self) -> str:
        return (
            f"AttackGenerator(families={self.families}, holdout_families={self.holdout_families}, "
            f"holdout_fraction={self.holdout_fraction}, goals={list(self.goals)}, seed={self.seed})"
        )
