"""What a Trainer must look like for DP-SGD to be private: strategy, precision, clipping, accumulation.

Example:
    >>> import lightning.pytorch as pl
    >>> check_trainer(pl.Trainer(gradient_clip_val=1.0, logger=False), "hooks")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Trainer(gradient_clip_val=1.0) clips the batch gradient, ...
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy, SingleDeviceStrategy
from opacus import __version__ as _OPACUS_VERSION

from secure_train.core.errors import ConfigError

__all__ = ["PRECISIONS", "check_trainer"]

PRECISIONS = ("32-true", "32", "bf16-mixed")


def check_trainer(trainer: pl.Trainer, grad_sample_mode: str) -> None:
    """Refuse a Trainer setting under which DP-SGD with ``grad_sample_mode`` would not be private.

    Raises:
        ConfigError: FSDP / model-parallel, a strategy other than single device or DDP, ghost
            clipping under DDP, fp16 or half precision, ``gradient_clip_val``, gradient
            accumulation with ghost clipping.
    """
    strategy = trainer.strategy
    if isinstance(strategy, FSDPStrategy | ModelParallelStrategy):
        raise ConfigError(
            f"DifferentialPrivacy does not support {type(strategy).__name__}: Opacus ships FSDP ghost clipping "
            f"(opacus>=1.6, installed {_OPACUS_VERSION}) for FSDP2 (fully_shard) modules sharded by its own "
            "FSDP2Wrapper, which Lightning's FSDPStrategy (FSDP1 FullyShardedDataParallel) does not produce and "
            "which is not wired to ModelParallelStrategy here yet; use a single device or DDP"
        )
    if not isinstance(strategy, SingleDeviceStrategy | DDPStrategy):
        raise ConfigError(
            f"DifferentialPrivacy supports single-device and DDP strategies, got {type(strategy).__name__}"
        )
    if isinstance(strategy, DDPStrategy) and grad_sample_mode == "ghost":
        raise ConfigError(
            "grad_sample_mode='ghost' does not support DDP (Lightning's DDP reducer allows one backward per "
            "step and ghost clipping needs two); use grad_sample_mode='hooks'"
        )
    if str(trainer.precision) not in PRECISIONS:
        raise ConfigError(
            f"DifferentialPrivacy supports precision 32-true and bf16-mixed, got {trainer.precision!r}: "
            "fp16 loss scaling would scale per-sample gradients before clipping, and half-precision "
            "parameters would round the noise"
        )
    if trainer.gradient_clip_val:
        raise ConfigError(
            f"Trainer(gradient_clip_val={trainer.gradient_clip_val}) clips the batch gradient, which breaks "
            "DP-SGD's sensitivity bound; per-example clipping is DifferentialPrivacy(max_grad_norm=...)"
        )
    if trainer.accumulate_grad_batches > 1 and grad_sample_mode == "ghost":
        raise ConfigError(
            f"accumulate_grad_batches={trainer.accumulate_grad_batches} is supported with "
            "grad_sample_mode='hooks' only"
        )
