"""Replace the training loader, wherever it comes from, with a Poisson-sampled copy.

Lightning passes each training loader, whatever its source (a DataModule, the module's
``train_dataloader``, or ``trainer.fit(model, loader)``), to the strategy's public
``process_dataloader`` hook after injecting its distributed sampler. :class:`LoaderReplacement`
wraps that hook for the duration of ``fit`` and returns a copy of the loader that keeps its
dataset, collate function and workers but draws batches with a
:class:`~secure_train.privacy.poisson.PoissonBatchSampler`, so ``trainer.fit(model, loader)``
needs nothing from the user.

Example:
    >>> from torch.utils.data import DataLoader
    >>> plans = []
    >>> replacement = LoaderReplacement(on_plan=lambda *args: plans.append(args[1:]))
    >>> private = replacement.private_loader(None, DataLoader(list(range(100)), batch_size=10))
    >>> type(private.batch_sampler).__name__, plans
    ('PoissonBatchSampler', [(0.1, 100, 10)])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sized
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import RunningStage
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset

from secure_train.core.errors import ConfigError
from secure_train.privacy.poisson import PoissonBatchSampler

__all__ = ["LoaderReplacement"]

PlanHook = Callable[[Any, float, int, int], None]
"""Called once, with ``(trainer, sample_rate, num_samples, steps_per_epoch)``, on the first loader."""


class LoaderReplacement:
    """Route every training loader of a ``fit`` through :meth:`private_loader`.

    Args:
        on_plan: called with ``(trainer, sample_rate, num_samples, steps_per_epoch)`` when the
            first loader fixed the sampling; a reloaded loader must keep both.
        world_size: ranks (the expected batch of all ranks together is what ``q`` counts).
        accumulate: micro-batches per logical batch (``Trainer(accumulate_grad_batches=...)``).
        seed: Poisson sampling seed (a loader from ``poisson_loader`` keeps its own).

    Attributes:
        sample_rate / num_samples: the sampling of the first loader (``None`` before it).

    Raises:
        ConfigError: from :meth:`private_loader`, for a loader it cannot Poisson-sample.
    """

    def __init__(self, *, on_plan: PlanHook, world_size: int = 1, accumulate: int = 1, seed: int = 0) -> None:
        self.on_plan = on_plan
        self.world_size = world_size
        self.accumulate = accumulate
        self.seed = seed
        self.sample_rate: float | None = None
        self.num_samples: int | None = None
        self._patched: Any = None

    @property
    def planned(self) -> bool:
        """Whether a training loader was replaced (and the run planned) in this ``fit``."""
        return self.sample_rate is not None

    def attach(self, trainer: pl.Trainer) -> None:
        """Wrap ``trainer.strategy.process_dataloader`` (an instance attribute over the class's method)."""
        strategy = trainer.strategy
        original: Callable[[object], object] = strategy.process_dataloader

        def process_dataloader(dataloader: object) -> object:
            if trainer.state.stage == RunningStage.TRAINING:
                dataloader = self.private_loader(trainer, dataloader)
            return original(dataloader)

        strategy.process_dataloader = process_dataloader  # type: ignore[method-assign]
        self._patched = strategy

    def detach(self) -> None:
        """Undo :meth:`attach`: the strategy's own ``process_dataloader`` shows again."""
        if self._patched is not None:
            del self._patched.process_dataloader
            self._patched = None

    def private_loader(self, trainer: pl.Trainer | None, loader: object) -> DataLoader[Any]:
        """A Poisson-sampled copy of the training ``loader``; plans the run on first use."""
        if not isinstance(loader, DataLoader):
            raise ConfigError(
                f"DifferentialPrivacy needs the training data as one torch DataLoader, got {type(loader).__name__}"
            )
        dataset = loader.dataset
        if isinstance(dataset, IterableDataset) or not isinstance(dataset, Sized):
            raise ConfigError(
                f"DifferentialPrivacy cannot Poisson-sample {type(dataset).__name__}: DP-SGD draws examples by index, "
                "so the training dataset must be map-style with a length (not an IterableDataset)"
            )
        n = len(dataset)
        if n == 0:
            raise ConfigError("the training dataset is empty")
        given = loader.batch_sampler if isinstance(loader.batch_sampler, PoissonBatchSampler) else None
        if given is not None:  # poisson_loader(loader): its rate is the one accounted
            q, seed, steps_per_epoch = given.sample_rate, given.seed, given.steps_per_epoch
        elif loader.batch_size is None:
            raise ConfigError(
                "the training DataLoader has a custom batch_sampler, so its expected batch size is unknown: give it "
                "a batch_size, or pass secure_train.privacy.poisson_loader(loader, sample_rate=...)"
            )
        else:
            q = min(1.0, loader.batch_size * self.world_size * self.accumulate / n)
            seed, steps_per_epoch = self.seed, max(1, round(1.0 / q))
        if self.planned and not (math.isclose(q, self.sample_rate or 0.0, rel_tol=1e-12) and n == self.num_samples):
            raise ConfigError(
                f"the reloaded training loader has sample rate {q} over {n} examples, the run was planned with "
                f"{self.sample_rate} over {self.num_samples}: keep the training data fixed under DP"
            )
        if isinstance(loader.sampler, DistributedSampler):
            base: Any = loader.sampler  # Lightning's: its rank / num_replicas pick this rank's shard
        elif self.world_size > 1:
            rank = trainer.global_rank if trainer is not None else 0
            base = DistributedSampler(dataset, num_replicas=self.world_size, rank=rank, shuffle=False)
        else:
            base = range(n)
        sampler = PoissonBatchSampler(base, q, steps_per_epoch, accumulate=self.accumulate, seed=seed)
        private = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
            persistent_workers=loader.persistent_workers,
        )
        if not self.planned:
            self.sample_rate, self.num_samples = q, n
            self.on_plan(trainer, q, n, steps_per_epoch)
        return private
