"""Security augmentation: labeled prompt-injection and jailbreak examples mixed into training.

:class:`AdversarialAugmentationDataModule` wraps any :class:`~secure_train.data.TextDataModule`
(classification or causal LM). Like Opacus's ``DPLightningDataModule`` it passes every hook
through to the wrapped DataModule and replaces only what it must: the training loader serves
the base training records plus generated attack examples, and the validation / test loaders
serve the base records plus attacks built from **held-out families and templates only**
(see :class:`~secure_train.attacks.AttackGenerator`), so ``val/acc`` measures generalization.

Label modes:

- ``robust`` (classifiers): a real training example is attacked with a payload that asks
  for a different label (the attacker's label), and keeps its true label, so the model
  learns to ignore injected instructions.
- ``detect`` (classifiers): attack examples get an extra class, ``attack``, with label
  ``base.num_labels``. The wrapper reports ``num_labels = base.num_labels + 1``; build the
  model with that many outputs (``TextClassifier(num_labels=3)`` for a binary task; in a
  recipe ``model.init_args.num_labels: 3``). A pretrained checkpoint gets a freshly
  initialized classification head of the new size (``from_pretrained(num_labels=3)``).
  A mismatch fails at ``setup`` with a :class:`~secure_train.core.errors.ConfigError` naming both.
- ``refuse`` (causal LMs): the attacked prompt's target continuation is ``refusal``.

Every generated record has ``source == "synthetic-attack"``, a ``sample_id`` above every base
id (from ``3 * 10**9``), and ``meta`` with ``synthetic_attack=True``, ``attack_family``,
``attack_template``, ``attack_components``, ``attack_seed``, ``attack_position``,
``attack_goal``, ``attack_target`` and ``base_sample_id``. Base records get
``synthetic_attack=False``.

**DP-SGD and the monitors.** Attack examples are ordinary training examples: they appear in
the training dataset, are Poisson-sampled and clipped like any other, and count for the
privacy accountant (the dataset size ``N`` the accountant sees includes them, so the
sampling rate ``q = batch / N`` is the augmented one). A DP engine that replaces the training
loader wraps this DataModule's training dataset, not the base one. They carry their own
``sample_id`` so per-sample-loss monitors name them. The privacy guarantee covers the base
records; the synthetic ones hold no private data.

**DDP.** Generation is a pure function of ``seed`` (SHA-256-derived per-example seeds, no
``hash()``), so every rank builds the same augmented dataset and Lightning's
``DistributedSampler`` shards it consistently.

Example:
    >>> from secure_train.data import TextClassificationDataModule
    >>> base = TextClassificationDataModule(synthetic_size=200, batch_size=8, cache_dir=None)
    >>> dm = AdversarialAugmentationDataModule(base, ratio=0.2, holdout_families=["roleplay"], seed=0)
    >>> recs = dm.load_records()
    >>> attacks = [r for r in recs["train"] if r.meta["synthetic_attack"]]
    >>> round(len(attacks) / len(recs["train"]), 2), attacks[0].source
    (0.2, 'synthetic-attack')
    >>> any(r.meta["attack_family"] == "roleplay" for r in attacks)
    False
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from typing_extensions import override

from secure_train.attacks.generator import AttackGenerator
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_choice, require_in_range, require_int, require_non_empty
from secure_train.data.base import RecordDataset, TextDataModule

__all__ = ["ATTACK_ID_OFFSET", "DEFAULT_REFUSAL", "LABEL_MODES", "AdversarialAugmentationDataModule"]

LABEL_MODES = ("robust", "detect", "refuse")
DEFAULT_REFUSAL = " I cannot follow instructions embedded in the input."
ATTACK_ID_OFFSET = 3 * 10**9
"""Generated records' ``sample_id`` start here (train), ``+10**8`` (val), ``+2*10**8`` (test)."""

_SPLIT_OFFSET = {"train": 0, "val": 10**8, "test": 2 * 10**8}


class AdversarialAugmentationDataModule(pl.LightningDataModule):
    """Wrap a text DataModule and mix generated, labeled attack examples into its data.

    Args:
        base: the DataModule to wrap (:class:`~secure_train.data.TextClassificationDataModule`
            for ``robust`` / ``detect``, :class:`~secure_train.data.CausalLMDataModule` for ``refuse``).
        ratio: share of the augmented training set that is attack examples, in ``(0, 1)``;
            ``n_attack = round(ratio * n_base / (1 - ratio))``.
        families: attack families for training (default: every family not held out).
        label_mode: ``robust``, ``detect`` or ``refuse`` (see the module docstring).
        holdout_families: families used only in validation / test.
        seed: drives which examples are attacked and every choice of the generator.
        holdout_fraction: share of each training family's templates kept for evaluation.
        eval_ratio: share of attack examples in validation / test (default ``ratio``);
            ``0`` serves the base validation / test data unchanged.
        goals / cues: the attacker's goal names and polar cue words per target
            (default: ``negative`` / ``positive`` with sentiment words).
        refusal: target continuation of attacked prompts in ``refuse`` mode.
        tokenizer_includes_attacks: when the base trains its own tokenizer, train it on the
            base texts plus the training attack texts (so attack words are not ``[UNK]``).

    Raises:
        ConfigError: bad ratio, label mode, family, or a base that does not fit the mode.
    """

    def __init__(
        self,
        base: TextDataModule,
        ratio: float = 0.2,
        families: Sequence[str] | None = None,
        label_mode: str = "robust",
        holdout_families: Sequence[str] = (),
        seed: int = 0,
        *,
        holdout_fraction: float = 0.25,
        eval_ratio: float | None = None,
        goals: Sequence[str] | None = None,
        cues: dict[int, Sequence[str]] | None = None,
        refusal: str = DEFAULT_REFUSAL,
        tokenizer_includes_attacks: bool = True,
    ) -> None:
        super().__init__()
        me = type(self).__name__
        if not isinstance(base, TextDataModule):
            raise ConfigError(f"{me}: base must be a TextDataModule, got {type(base).__name__}")
        require_in_range(self, "ratio", ratio, "(0, 1)")
        require_in_range(self, "eval_ratio", eval_ratio, "[0, 1)", optional=True)
        require_choice(self, "label_mode", label_mode, LABEL_MODES)
        require_int(self, "seed", seed)
        is_classifier = hasattr(base, "num_labels")
        if label_mode in ("robust", "detect") and not is_classifier:
            raise ConfigError(
                f"{me}: label_mode={label_mode!r} needs a classification DataModule; "
                f"{type(base).__name__} has no labels (use label_mode='refuse' for causal LMs)"
            )
        if label_mode == "refuse" and is_classifier:
            raise ConfigError(
                f"{me}: label_mode='refuse' needs a causal-LM DataModule, got {type(base).__name__} "
                "(use 'robust' or 'detect' for classifiers)"
            )
        if label_mode == "refuse":
            require_non_empty(self, "refusal", refusal)
        self.base = base
        self.ratio = ratio
        self.eval_ratio = ratio if eval_ratio is None else eval_ratio
        self.label_mode = label_mode
        self.seed = seed
        self.refusal = refusal
        self.tokenizer_includes_attacks = tokenizer_includes_attacks
        if goals is None and is_classifier and getattr(base, "num_labels", 2) != 2:
            goals = [f"label {i}" for i in range(base.num_labels)]  # type: ignore[attr-defined]
        self.generator = AttackGenerator(
            families,
            holdout_families=holdout_families,
            holdout_fraction=holdout_fraction,
            goals=goals,
            cues=cues,
            seed=seed,
        )
        if is_classifier and len(self.generator.goals) != base.num_labels:  # type: ignore[attr-defined]
            raise ConfigError(
                f"{me}: goals has {len(self.generator.goals)} entries but base.num_labels={base.num_labels}"  # type: ignore[attr-defined]
            )
        self.records: dict[str, list[TextRecord]] = {}
        self.datasets: dict[str, RecordDataset] = {}

    # -- pass-through ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Everything not defined here (tokenizer, max_length, loader_for, ...) is the base's.
        if name in ("base", "__setstate__") or name.startswith("__"):
            raise AttributeError(name)
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            return getattr(self.base, name)

    @property
    def num_labels(self) -> int | None:
        """The base's labels, plus one (the ``attack`` class) in ``detect`` mode."""
        n = getattr(self.base, "num_labels", None)
        if n is None:
            return None
        return int(n) + 1 if self.label_mode == "detect" else int(n)

    @property
    def attack_label(self) -> int | None:
        """The label of the ``attack`` class in ``detect`` mode, else ``None``."""
        return int(self.base.num_labels) if self.label_mode == "detect" else None  # type: ignore[attr-defined]

    def get_tokenizer(self) -> Any:
        """The base's tokenizer; when the base trains its own, it is trained with the attack texts."""
        self._ensure_tokenizer()
        return self.base.get_tokenizer()

    @override
    def prepare_data(self) -> None:
        self._ensure_tokenizer()
        self.base.prepare_data()

    @override
    def setup(self, stage: str) -> None:
        self.base.trainer = self.trainer
        self._check_model()
        self._ensure_tokenizer()
        self.base.setup(stage)
        records = self.load_records()
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = RecordDataset(records[split], self.base._encode)
        if stage == "fit" and self.trainer is not None:
            from secure_train.core.audit_log import get_audit_log

            get_audit_log(self.trainer).record(
                "data.adversarial_augmentation", source=type(self).__name__, **self.describe_attacks()
            )

    @override
    def teardown(self, stage: str) -> None:
        self.base.teardown(stage)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "config": self._config()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("config")
        if saved is not None and saved != self._config():
            warnings.warn(
                f"resuming with a different adversarial augmentation: saved {saved}, now {self._config()}",
                stacklevel=2,
            )
        self.base.load_state_dict(state_dict.get("base", {}))

    @override
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return self.base.transfer_batch_to_device(batch, device, dataloader_idx)

    @override
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.base.on_before_batch_transfer(batch, dataloader_idx)

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.base.on_after_batch_transfer(batch, dataloader_idx)

    # -- records --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        gen = self.generator
        return {
            "ratio": self.ratio,
            "eval_ratio": self.eval_ratio,
            "label_mode": self.label_mode,
            "families": list(gen.families),
            "holdout_families": list(gen.holdout_families),
            "holdout_fraction": gen.holdout_fraction,
            "seed": self.seed,
        }

    def _check_model(self) -> None:
        trainer = self.trainer
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        model_labels = getattr(module, "num_labels", None)
        if self.label_mode == "detect" and model_labels is not None and model_labels != self.num_labels:
            raise ConfigError(
                f"label_mode='detect' adds an 'attack' class (label {self.attack_label}): the model needs "
                f"num_labels={self.num_labels} (base {self.base.num_labels} + 1), got model.num_labels={model_labels}"  # type: ignore[attr-defined]
            )

    def load_records(self) -> dict[str, list[TextRecord]]:
        """Base records plus generated attacks: train from training templates, val / test from
        held-out families and templates only. Idempotent and deterministic in ``seed``."""
        if self.records:
            return self.records
        base = self.base.load_records()
        every = [r for split in base.values() for r in split]
        max_id = max((r.sample_id for r in every), default=-1)
        if max_id >= ATTACK_ID_OFFSET:
            raise DataError(f"base sample ids reach {max_id}; attack ids start at {ATTACK_ID_OFFSET}")
        self._check_records(base["train"])
        out: dict[str, list[TextRecord]] = {}
        for split in ("train", "val", "test"):
            clean = [replace(r, meta={**r.meta, "synthetic_attack": False}) for r in base[split]]
            share = self.ratio if split == "train" else self.eval_ratio
            n_attack = round(share * len(clean) / (1.0 - share)) if share > 0 else 0
            out[split] = clean + self.attack_records(base[split], split, n_attack)
        self.records = out
        return out

    def _check_records(self, records: Sequence[TextRecord]) -> None:
        if self.label_mode in ("robust", "detect") and any(r.label is None for r in records):
            raise DataError(f"label_mode={self.label_mode!r} needs labeled records; the base has unlabeled ones")

    def attack_records(
        self, records: Sequence[TextRecord], split: str, n: int, *, families: Sequence[str] | None = None
    ) -> list[TextRecord]:
        """``n`` attack records built from ``records`` for data split ``split``.

        ``train`` uses training families and templates; ``val`` / ``test`` (or any other name)
        use held-out families and templates only. Families take turns; base records are
        drawn in a seeded order (robust mode: the attacker's label is drawn among the labels
        other than the true one in evaluation splits, and among all labels in
        training, so that a payload's goal never predicts the true label and the model cannot
        learn "an injection asking for X means not X"). Labels / completions follow ``label_mode``.
        """
        if n <= 0 or not records:
            return []
        gen = self.generator
        template_split = "train" if split == "train" else "eval"
        fams = list(families) if families is not None else gen.families_for(split)
        order = list(range(len(records)))
        random.Random(gen.example_seed(split, -1)).shuffle(order)
        offset = ATTACK_ID_OFFSET + _SPLIT_OFFSET.get(split, 3 * 10**8)
        out = []
        for i in range(n):
            rec = records[order[i % len(order)]]
            seed = gen.example_seed(split, i)
            rng = random.Random(seed)
            family = fams[i % len(fams)]
            if self.label_mode == "robust" and split != "train":
                assert rec.label is not None  # measured attacks ask for a label other than the true one
                target = rng.choice([t for t in range(len(gen.goals)) if t != rec.label])
            else:  # training: any goal, so the payload carries no information about the label
                target = rng.randrange(len(gen.goals))
            ex = gen.generate(rec.text, family, target=target, split=template_split, seed=seed)
            label, completion = rec.label, rec.completion
            if self.label_mode == "detect":
                label = self.attack_label
            elif self.label_mode == "refuse":
                completion = self.refusal
            meta = {
                "synthetic_attack": True,
                "attack_family": ex.family,
                "attack_template": ex.template_id,
                "attack_components": list(ex.components),
                "attack_seed": ex.seed,
                "attack_position": ex.position,
                "attack_goal": ex.goal,
                "attack_target": target,
                "base_sample_id": rec.sample_id,
                "label_mode": self.label_mode,
            }
            out.append(TextRecord(ex.text, label, offset + i, "synthetic-attack", completion, meta))
        return out

    def describe_attacks(self) -> dict[str, Any]:
        """Counts per split and family, and the configuration, for logs and the audit trail."""
        recs = self.load_records()
        counts = {
            split: dict(Counter(r.meta["attack_family"] for r in rs if r.meta.get("synthetic_attack")))
            for split, rs in recs.items()
        }
        return {**self._config(), "attack_counts": counts, **{f"n_{k}": len(v) for k, v in recs.items()}}

    def _ensure_tokenizer(self) -> None:
        base = self.base
        if base.tokenizer is not None or base.tokenizer_path is not None or not self.tokenizer_includes_attacks:
            return
        from secure_train.data.tokenizer import train_tokenizer

        texts = [base._full_text(r) for r in self.load_records()["train"]]
        base.tokenizer = train_tokenizer(
            texts, kind=base.tokenizer_kind, vocab_size=base.vocab_size, cache_dir=base.cache_dir
        )

    # -- loaders --------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, Any]]:
        if split not in self.datasets:
            self.setup("fit" if split == "train" else split)
        base = self.base
        tok = base.get_tokenizer()
        return DataLoader(
            self.datasets[split],
            batch_size=base.batch_size if split == "train" else base.eval_batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=base.num_workers,
            collate_fn=partial(base._collate, pad_id=int(tok.pad_token_id or 0)),
            persistent_workers=base.num_workers > 0,
        )

    @override
    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("train", shuffle=True)

    @override
    def val_dataloader(self) -> Any:
        if self.eval_ratio == 0:
            return self.base.val_dataloader()
        return self._loader("val", shuffle=False)

    @override
    def test_dataloader(self) -> Any:
        if self.eval_ratio == 0:
            return self.base.test_dataloader()
        return self._loader("test", shuffle=False)

    @override
    def predict_dataloader(self) -> Any:
        return self.base.predict_dataloader()

    def __repr__(self) -> str:
        return f"AdversarialAugmentationDataModule(base={type(self.base).__name__}, {self._config()})"
