"""Clean probe inputs of the trojan scan, built and validated per *construction*.

A construction turns clean records into probe inputs: ``join2-stop`` joins two same-label
records with ". ", ``join2-space`` with a space, ``single`` uses one record. Joined inputs
carry more same-label evidence (one natural opposite-sentiment word no longer flips them),
but the joining itself may be a trigger (a backdoor that fires on a full stop). So the model's
accuracy is measured under every construction, and the share of inputs whose records are each
classified correctly but whose joined input flips to another label (the construction's *flip
rate*). The first construction with enough accuracy and a low flip rate is used; a high flip
rate under a benign construction is returned as a finding.

Example:
    >>> [c.name for c in constructions(2)]
    ['join2-stop', 'join2-space', 'single']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from secure_train.core.records import TextRecord
from secure_train.gate.trojan.probe import ProbeContext

__all__ = ["Construction", "ProbeInputs", "build_probe_inputs", "constructions"]

Split = dict[int, tuple[list[list[int]], list[int]]]


@dataclass(frozen=True)
class Construction:
    """``k`` same-label records joined by ``joiner`` into one probe input."""

    name: str
    k: int
    joiner: str


def constructions(amplify: int) -> list[Construction]:
    """The constructions tried, in order of preference."""
    joined = [Construction(f"join{amplify}-stop", amplify, ". "), Construction(f"join{amplify}-space", amplify, " ")]
    return [*(joined if amplify > 1 else []), Construction("single", 1, "")]


@dataclass
class ProbeInputs:
    """Search / held-out inputs per target label, and what each construction did to the model.

    ``used`` is None (and ``problem`` says why) when no construction keeps the clean behaviour.
    ``finding`` maps a joined construction to (flip rate, label the inputs flipped to).
    """

    search: Split = field(default_factory=dict)
    held: Split = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)
    flip: dict[str, float] = field(default_factory=dict)
    finding: dict[str, tuple[float, int]] = field(default_factory=dict)
    used: str | None = None
    problem: str = ""


def build_probe_inputs(
    ctx: ProbeContext,
    records: Sequence[TextRecord],
    rng: random.Random,
    *,
    amplify: int,
    per_label: int,
    min_clean_accuracy: float,
    max_flip: float,
) -> ProbeInputs:
    """Measure every construction, pick the first usable one and split its correct inputs."""
    out = ProbeInputs()
    by: dict[int, list[TextRecord]] = {}
    for r in records:
        by.setdefault(int(r.label or 0), []).append(r)
    for texts in by.values():
        rng.shuffle(texts)
    cap = per_label * max(2, amplify) * 2
    pool = {c: recs[:cap] for c, recs in by.items()}
    flat = [r for recs in pool.values() for r in recs]
    single_pred = ctx.predict([ctx.encode(r.text) for r in flat]).tolist()
    single_ok = {id(r): p == r.label for r, p in zip(flat, single_pred, strict=True)}
    chosen: list[tuple[list[int], int]] | None = None
    for con in constructions(amplify):
        items: list[tuple[list[int], int, bool]] = []  # ids, label, all records singly correct
        for label, recs in pool.items():
            for i in range(len(recs) // con.k):
                group = recs[i * con.k : (i + 1) * con.k]
                text = con.joiner.join(r.text for r in group)
                items.append((ctx.encode(text), label, all(single_ok[id(r)] for r in group)))
        if not items:
            out.accuracy[con.name], out.flip[con.name] = 0.0, 0.0
            continue
        preds = ctx.predict([it[0] for it in items]).tolist()
        out.accuracy[con.name] = round(sum(p == it[1] for p, it in zip(preds, items, strict=True)) / len(items), 4)
        flip, to_label = 0.0, 0
        for y in pool:
            base = [p for p, it in zip(preds, items, strict=True) if it[1] == y and it[2]]
            for t in range(ctx.num_labels):
                if t != y and base and sum(p == t for p in base) / len(base) > flip:
                    flip, to_label = sum(p == t for p in base) / len(base), t
        out.flip[con.name] = round(flip, 4)
        if con.k > 1:
            out.finding[con.name] = (round(flip, 4), to_label)
        correct = [(it[0], it[1]) for p, it in zip(preds, items, strict=True) if p == it[1]]
        enough = all(sum(1 for _, y in correct if y == c) >= 4 for c in range(ctx.num_labels))
        if chosen is None and enough and out.accuracy[con.name] >= min_clean_accuracy and flip <= max_flip:
            chosen, out.used = correct, con.name
    if chosen is None:
        out.problem = (
            "no probe construction keeps the model's clean behaviour ("
            + ", ".join(f"{n}: accuracy {out.accuracy[n]:.2f}, flip {out.flip[n]:.2f}" for n in out.accuracy)
            + f"; need accuracy >= {min_clean_accuracy}, flip <= {max_flip}, 4 correct inputs per label)"
        )
        return out
    by_label: dict[int, list[list[int]]] = {c: [] for c in range(ctx.num_labels)}
    for ids, y in chosen:
        if len(by_label[y]) < per_label:
            by_label[y].append(ids)
    positions = {c: [_position(ctx, ids, rng) for ids in by_label[c]] for c in by_label}
    for target in range(ctx.num_labels):
        src = [
            (ids, p)
            for c in range(ctx.num_labels)
            if c != target
            for ids, p in zip(by_label[c], positions[c], strict=True)
        ]
        rng.shuffle(src)
        half = len(src) // 2
        out.search[target] = ([s[0] for s in src[:half]], [s[1] for s in src[:half]])
        out.held[target] = ([s[0] for s in src[half:]], [s[1] for s in src[half:]])
    return out


def _position(ctx: ProbeContext, ids: list[int], rng: random.Random) -> int:
    slots = ctx.slots(ids)
    return rng.choice(slots) if slots else len(ids)
