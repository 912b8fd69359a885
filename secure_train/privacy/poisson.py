"""Poisson sampling of the training data, the sampling DP-SGD accounting assumes.

Every example of the (rank's shard of the) dataset joins each logical batch independently
with probability ``sample_rate``, so batch sizes vary; an epoch is ``round(1 / sample_rate)``
logical batches. Shuffling with fixed-size batches is a different mechanism, and accounting
it as Poisson over-states the privacy it gives (the trap of ``dp-transformers``): this
sampler is the only thing :class:`~secure_train.privacy.DifferentialPrivacy` trains on.

Under DDP, :class:`DifferentialPrivacy` builds this batch sampler over the ``DistributedSampler``
Lightning injects into the training loader (or its own when ``use_distributed_sampler=False``);
only that sampler's ``rank`` / ``num_replicas`` are used: rank ``r`` owns the
examples ``r, r + W, r + 2W, ...`` (no padding, no duplicates) and samples them with the
same rate, so the union over ranks is one Poisson batch of the whole dataset.

With ``accumulate > 1`` each logical batch is split into ``accumulate`` micro-batches (one
per ``training_step``, one noise draw per logical batch: virtual steps). An empty micro-batch
cannot be fed to a model, so it is replaced by example 0 and flagged in :attr:`dummy_flags`;
:class:`DifferentialPrivacy` zeroes that example's gradient, so the step is the noise-only
step that an empty Poisson batch calls for.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_in_range, require_int

__all__ = ["PoissonBatchSampler", "poisson_loader"]


class PoissonBatchSampler(BatchSampler):
    """Batches where every example is included independently with probability ``sample_rate``.

    Args:
        sampler: what Lightning gives: a ``SequentialSampler`` (or any sized sampler) over the
            dataset, or a ``DistributedSampler`` whose ``rank`` / ``num_replicas`` pick the shard.
        sample_rate: inclusion probability ``q`` in ``(0, 1]``.
        steps_per_epoch: logical batches per epoch; default ``round(1 / q)``.
        accumulate: micro-batches per logical batch (``Trainer(accumulate_grad_batches=...)``).
        seed: base seed; the stream of epoch ``e`` on rank ``r`` depends on ``(seed, e, r)`` only.

    Example:
        >>> s = PoissonBatchSampler(range(1000), sample_rate=0.05, seed=1)
        >>> sizes = [len(b) for b in s]
        >>> len(sizes), 40 <= sum(sizes) / len(sizes) <= 60
        (20, True)
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sized,
        sample_rate: float,
        steps_per_epoch: int | None = None,
        accumulate: int = 1,
        seed: int = 0,
    ) -> None:
        require_in_range(self, "sample_rate", sample_rate, "(0, 1]")
        require_int(self, "accumulate", accumulate, minimum=1)
        require_int(self, "steps_per_epoch", steps_per_epoch, minimum=1, optional=True)
        require_int(self, "seed", seed)
        self.sampler = sampler  # type: ignore[assignment]
        self.sample_rate = float(sample_rate)
        self.steps_per_epoch = steps_per_epoch or max(1, round(1.0 / sample_rate))
        self.accumulate = accumulate
        self.seed = seed
        self.epoch = 0
        if isinstance(sampler, DistributedSampler):
            self.rank, self.world_size = int(sampler.rank), int(sampler.num_replicas)
            n = len(sampler.dataset)  # type: ignore[arg-type]
        else:
            self.rank, self.world_size = 0, 1
            n = len(sampler)  # type: ignore[arg-type]
        self.num_samples = n
        self.shard_size = len(range(self.rank, n, self.world_size))
        # BatchSampler attributes Lightning reads when it re-creates the sampler.
        self.batch_size = max(1, round(sample_rate * self.shard_size))
        self.drop_last = False
        self.dummy_flags: deque[bool] = deque()
        """One flag per yielded micro-batch, in order: True where it stands in for an empty one."""

    @property
    def shard(self) -> torch.Tensor:
        """This rank's example indices ``rank, rank + W, ...`` (built on demand: 8 bytes an example)."""
        return torch.arange(self.rank, self.num_samples, self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start: a new, reproducible stream."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(hash((self.seed, self.epoch, self.rank)) & 0x7FFFFFFFFFFFFFFF)
        self.dummy_flags.clear()
        for _ in range(self.steps_per_epoch):
            mask = torch.rand(self.shard_size, generator=gen) < self.sample_rate
            chosen = (mask.nonzero().squeeze(1) * self.world_size + self.rank).tolist()  # = shard[mask]
            for chunk in _split(chosen, self.accumulate):
                self.dummy_flags.append(not chunk)
                yield chunk if chunk else [0]


def _split(items: list[int], parts: int) -> list[list[int]]:
    size = math.ceil(len(items) / parts) if items else 0
    return [items[i * size : (i + 1) * size] for i in range(parts)]


def poisson_loader(
    loader: DataLoader[Any], sample_rate: float | None = None, *, accumulate: int = 1, seed: int = 0
) -> DataLoader[Any]:
    """A copy of ``loader`` (same dataset, collate, workers) that samples with :class:`PoissonBatchSampler`.

    ``trainer.fit(model, poisson_loader(loader, sample_rate=q))`` under
    :class:`~secure_train.privacy.DifferentialPrivacy` trains and accounts at exactly this ``q``
    (a plain ``loader`` is resampled at ``batch_size / N`` by the callback itself).

    Args:
        loader: the training loader to replace.
        sample_rate: default ``loader.batch_size * accumulate / len(dataset)`` (expected logical batch).
        accumulate: micro-batches per logical batch.
        seed: sampling seed.

    Example:
        >>> dl = poisson_loader(DataLoader(list(range(100)), batch_size=10))
        >>> dl.batch_sampler.sample_rate, len(dl)
        (0.1, 10)
    """
    require_in_range("poisson_loader", "sample_rate", sample_rate, "(0, 1]", optional=True)
    require_int("poisson_loader", "accumulate", accumulate, minimum=1)
    dataset = loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ConfigError("the training dataset is empty")
    if sample_rate is None:
        if loader.batch_size is None:
            raise ConfigError("the training loader has no batch_size: give sample_rate")
        sample_rate = min(1.0, loader.batch_size * accumulate / n)
    return DataLoader(
        dataset,
        batch_sampler=PoissonBatchSampler(range(n), sample_rate, accumulate=accumulate, seed=seed),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
    )
