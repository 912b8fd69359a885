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

__all__ = ["OPACUS_FSDP2_VERSION", "PRECISIONS", "check_trainer", "opacus_supports_fsdp2"]

PRECISIONS = ("32-true", "32", "bf16-mixed")
OPACUS_FSDP2_VERSION = "1.6"
"""The first Opacus release with FSDP2 ghost clipping (``grad_sample_mode="ghost_fsdp"``)."""


def opacus_supports_fsdp2(version: str = _OPACUS_VERSION) -> bool:
    """Whether Opacus ``version`` ships FSDP2 ghost clipping (``GradSampleModuleFastGradientClippingFSDP``)."""
    return _release(version) >= _release(OPACUS_FSDP2_VERSION)


def _release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``1.6.0`` or ``1.5.4.dev1`` (0 where not a number)."""
    import re

    parts = [int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def _check_model_parallel(strategy: ModelParallelStrategy, grad_sample_mode: str) -> None:
    """ModelParallelStrategy: data-parallel FSDP2 through Opacus's FSDP ghost clipping, nothing else."""
    if not opacus_supports_fsdp2():
        raise ConfigError(
            f"DifferentialPrivacy under ModelParallelStrategy needs Opacus's FSDP2 ghost clipping "
            f"(opacus>={OPACUS_FSDP2_VERSION}, grad_sample_mode='ghost_fsdp'), installed opacus {_OPACUS_VERSION}: "
            f"pip install 'opacus>={OPACUS_FSDP2_VERSION}'"
        )
    if grad_sample_mode != "ghost":
        raise ConfigError(
            f"DifferentialPrivacy under ModelParallelStrategy runs Opacus's FSDP ghost clipping "
            f"(opacus>={OPACUS_FSDP2_VERSION}, installed {_OPACUS_VERSION}) on FSDP2 (fully_shard) modules: set "
            f"grad_sample_mode='ghost' (Opacus has no FSDP version of {grad_sample_mode!r})"
        )
    try:
        tensor_parallel = strategy.device_mesh["tensor_parallel"].size()
    except RuntimeError:  # the processes are not up yet; the Poisson sampler's rank check still holds
        return
    if tensor_parallel > 1:
        raise ConfigError(
            f"DifferentialPrivacy under ModelParallelStrategy supports data-parallel FSDP2 only, got "
            f"tensor_parallel_size={tensor_parallel}: Opacus's FSDP ghost clipping computes per-example norms "
            "of whole layers (use ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1))"
        )


def check_trainer(trainer: pl.Trainer, grad_sample_mode: str) -> None:
    """Refuse a Trainer setting under which DP-SGD with ``grad_sample_mode`` would not be private.

    Raises:
        ConfigError: Lightning's FSDP1 ``FSDPStrategy``; ``ModelParallelStrategy`` with an Opacus
            before 1.6, a mode other than ``ghost``, or tensor parallelism; a strategy other than
            single device, DDP or model-parallel; ghost clipping under DDP; fp16 or half precision;
            ``gradient_clip_val``; gradient accumulation with ghost clipping.
    """
    strategy = trainer.strategy
    if isinstance(strategy, FSDPStrategy):
        raise ConfigError(
            "DifferentialPrivacy does not support FSDPStrategy (FSDP1 FullyShardedDataParallel): Opacus's FSDP "
            f"ghost clipping (opacus>={OPACUS_FSDP2_VERSION}, installed {_OPACUS_VERSION}) works on FSDP2 "
            "(fully_shard) modules only; use ModelParallelStrategy(tensor_parallel_size=1) with fully_shard "
            "applied in configure_model, and grad_sample_mode='ghost'"
        )
    if isinstance(strategy, ModelParallelStrategy):
        _check_model_parallel(strategy, grad_sample_mode)
    elif not isinstance(strategy, SingleDeviceStrategy | DDPStrategy):
        raise ConfigError(
            f"DifferentialPrivacy supports single-device, DDP and ModelParallelStrategy (FSDP2) strategies, "
            f"got {type(strategy).__name__}"
        )
    elif isinstance(strategy, DDPStrategy) and grad_sample_mode == "ghost":
        raise ConfigError(
            "grad_sample_mode='ghost' does not support DDP (Lightning's DDP reducer allows one backward per "
            "step and ghost clipping needs two); use grad_sample_mode='hooks'"
        )
    _check_precision_and_clipping(trainer, grad_sample_mode)


def _check_precision_and_clipping(trainer: pl.Trainer, grad_sample_mode: str) -> None:
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
