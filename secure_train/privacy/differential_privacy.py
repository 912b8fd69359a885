"""DP-SGD for an unmodified LightningModule: Opacus per-sample gradients, clipping, noise,
Poisson sampling, an accountant that resumes, and a budget that stops training in time.

Why a callback (and not a strategy): DP-SGD needs four things from the run, and Lightning
offers each through a public API: the training loader (whatever its source: a DataModule, the
module's ``train_dataloader``, or a loader passed to ``trainer.fit(model, loader)``, every
training loader goes through the strategy's public ``process_dataloader`` hook, which this
callback wraps during ``fit`` to return a Poisson-sampled copy), the per-sample
gradient hooks (installed on the user's modules in place, so checkpoint keys are unchanged:
no ``_module.`` prefix), the optimizer (``trainer.optimizers`` is a public setter: the user's
optimizer is wrapped in an Opacus ``DPOptimizer`` at ``on_train_start``, once the loader, hence
the sample rate, is known; LR schedulers keep
working because the wrapper shares its ``param_groups``) and the backward pass (the
``on_before_backward`` / ``on_before_optimizer_step`` hooks). A strategy would have to
subclass each of Lightning's strategies (single device, DDP) to do the same, and would not
compose with the user's strategy choice. Nothing here reads a private Trainer attribute.

The parts: :mod:`~secure_train.privacy.loader_replacement` (the Poisson-sampled loader),
:mod:`~secure_train.privacy.trainer_checks` (what the Trainer may not do),
:mod:`~secure_train.privacy.budget` (planning σ and the steps a budget allows),
:mod:`~secure_train.privacy.grad_samples` (per-example gradients of a logical batch, ``hooks``)
and :mod:`~secure_train.privacy.ghost_clipping` (``ghost``); this module is the callback.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import ModelParallelStrategy
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample import GradSampleModule
from opacus.optimizers import (
    DistributedDPOptimizer,
    DPOptimizer,
    DPOptimizerFastGradientClipping,
    FSDPOptimizerFastGradientClipping,
)
from opacus.validators import ModuleValidator
from torch.distributed.fsdp import FSDPModule
from typing_extensions import override

from secure_train.core.audit_log import get_audit_log
from secure_train.core.distributed import destroy_process_group_at_exit
from secure_train.core.errors import ConfigError
from secure_train.privacy.budget import default_delta, max_steps_within, steps_from_trainer
from secure_train.privacy.ghost_clipping import GhostClipping, untie_shared_weights
from secure_train.privacy.grad_samples import prepare_grad_samples
from secure_train.privacy.loader_replacement import LoaderReplacement
from secure_train.privacy.poisson import PoissonBatchSampler
from secure_train.privacy.trainable import restrict_trainable
from secure_train.privacy.trainer_checks import check_trainer

__all__ = ["DifferentialPrivacy"]

_MODES = ("hooks", "ghost")
_ACCOUNTANTS = ("prv", "rdp")


class DifferentialPrivacy(Callback):
    """Train any LightningModule with DP-SGD (Opacus): clip each example's gradient, add noise.

    The training data is Poisson-sampled (each example joins a batch with probability
    ``q = batch_size * devices * accumulate_grad_batches / N``), an epoch is ``round(1/q)``
    steps, wherever the loader comes from: a DataModule, the module's ``train_dataloader``, or
    ``trainer.fit(model, loader)`` (the loader's dataset, collate and workers are kept, its
    sampler is replaced). A loader made by :func:`~secure_train.privacy.poisson_loader` is
    accepted as given: its ``sample_rate`` is the ``q`` accounted (under DDP with Lightning's
    distributed sampler, pass the plain loader instead: Lightning cannot re-create a batch
    sampler built outside its hooks; each rank then samples its own shard). The accountant (``prv`` or
    ``rdp``) composes one subsampled Gaussian per optimizer step. ε is logged as ``dp/epsilon``
    at each epoch end, written to the audit log
    (``privacy.epsilon``), and available any time from :meth:`epsilon`. When the next step
    would take ε past the budget (``max_epsilon``, else ``target_epsilon``), training stops
    after the last step that fits, with a ``privacy.budget_exhausted`` audit event.

    Args:
        target_epsilon: ε to reach at the end of the planned steps; the noise multiplier is
            derived (give this or ``noise_multiplier``).
        noise_multiplier: σ, the noise std in units of ``max_grad_norm``.
        delta: δ; default ``1 / N**1.1`` (below ``1/N``, as DP requires).
        max_grad_norm: per-example L2 clipping bound C.
        accountant: ``"prv"`` (tight) or ``"rdp"``.
        grad_sample_mode: ``"hooks"`` (per-sample gradients materialized; any supported
            layer, DDP, gradient accumulation) or ``"ghost"`` (ghost clipping: per-sample
            norms only, two backward passes; single process or ``ModelParallelStrategy``
            (FSDP2, data-parallel: Opacus's FSDP ghost clipping, opacus>=1.6; the module's
            ``configure_model`` applies ``fully_shard``), no accumulation, no tied weights).
            ``"ew"`` (expanded weights) is refused: it needs the module's ``forward`` to be called
            through Opacus's wrapper with positional tensors, which a LightningModule's
            ``training_step`` calling a Hugging Face model with keywords never does.
        steps: optimizer steps the budget is planned for; default from ``max_steps`` /
            ``max_epochs`` of the Trainer.
        max_epsilon: hard budget when ``noise_multiplier`` is given (default: no stop).
        untie_embeddings: under ghost clipping, give a tied output layer its own copy of the
            input embedding (ghost norms are per layer; a weight shared by two layers has a
            per-sample norm they cannot compute). Otherwise tied weights are refused.
        freeze_embeddings: freeze the model's input embeddings (fewer noisy parameters).
        trainable: train only the parameters matching these ``fnmatch`` patterns (e.g.
            ``["encoder.layer.5.*", "pooler.*", "classifier.*"]``) and freeze the rest; see
            :func:`~secure_train.privacy.trainable.restrict_trainable`. Less noise in total,
            often more utility at the same ε. The count is in the ``privacy.start`` event.
        seed: Poisson sampling seed (noise uses the default torch generator, or a secure
            one with ``secure_mode``).
        secure_mode: Opacus's floating-point-attack-resistant noise (needs ``torchcsprng``).

    Raises:
        ConfigError: for settings it cannot make private: no budget or noise, both, ``ew``,
            unsupported strategy / precision, gradient clipping by the Trainer, several
            optimizers, tied weights under ghost, ghost with DDP or accumulation, a loss that
            is not a mean of per-example losses (ghost), Lightning's FSDP1 ``FSDPStrategy``,
            ``ModelParallelStrategy`` without ghost or without ``fully_shard``, a training loader it cannot
            Poisson-sample (an ``IterableDataset``, a dataset without length, a custom batch
            sampler without ``batch_size``).

    Example:
        >>> dp = DifferentialPrivacy(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
        >>> dp.epsilon()  # nothing trained yet
        0.0
    """

    def __init__(
        self,
        *,
        target_epsilon: float | None = None,
        noise_multiplier: float | None = None,
        delta: float | None = None,
        max_grad_norm: float = 1.0,
        accountant: str = "prv",
        grad_sample_mode: str = "hooks",
        steps: int | None = None,
        max_epsilon: float | None = None,
        untie_embeddings: bool = False,
        freeze_embeddings: bool = False,
        trainable: Sequence[str] | None = None,
        seed: int = 0,
        secure_mode: bool = False,
    ) -> None:
        if (target_epsilon is None) == (noise_multiplier is None):
            raise ConfigError(
                f"give exactly one of target_epsilon and noise_multiplier, got "
                f"target_epsilon={target_epsilon}, noise_multiplier={noise_multiplier}"
            )
        if target_epsilon is not None and not target_epsilon > 0:
            raise ConfigError(f"target_epsilon must be > 0, got {target_epsilon}")
        if noise_multiplier is not None and not noise_multiplier >= 0:
            raise ConfigError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
        if delta is not None and not 0 < delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {delta}")
        if not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be > 0, got {max_grad_norm}")
        if accountant not in _ACCOUNTANTS:
            raise ConfigError(f"accountant must be one of {_ACCOUNTANTS}, got {accountant!r}")
        if grad_sample_mode == "ew":
            raise ConfigError(
                "grad_sample_mode='ew' (expanded weights) is not supported: it computes per-sample gradients "
                "only when the model's forward is called through Opacus's wrapper with positional tensors, "
                "and a LightningModule calling a Hugging Face model with keyword inputs never does; "
                "use 'hooks' or 'ghost'"
            )
        if grad_sample_mode not in _MODES:
            raise ConfigError(f"grad_sample_mode must be one of {_MODES}, got {grad_sample_mode!r}")
        if steps is not None and steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        if max_epsilon is not None and not max_epsilon > 0:
            raise ConfigError(f"max_epsilon must be > 0, got {max_epsilon}")
        self.target_epsilon = target_epsilon
        self.noise_multiplier = noise_multiplier
        self.delta = delta
        self.max_grad_norm = float(max_grad_norm)
        self.accountant_name = accountant
        self.grad_sample_mode = grad_sample_mode
        self.steps = steps
        self.max_epsilon = max_epsilon
        self.untie_embeddings = untie_embeddings
        self.freeze_embeddings = freeze_embeddings
        self.trainable = list(trainable) if trainable is not None else None
        self.trainable_parameters: int | None = None
        self.seed = seed
        self.secure_mode = secure_mode

        self.accountant = create_accountant(accountant)
        self.sample_rate: float | None = None
        self.num_samples: int | None = None
        self.planned_steps: int | None = None
        self._trainer_steps: int | None = None
        self.max_steps_in_budget: int | None = None
        self.steps_done = 0
        self.budget_exhausted = False
        self._accumulate = 1
        self._world_size = 1
        self._fsdp = False
        self._gsm: GradSampleModule | None = None
        self._ghost: GhostClipping | None = None
        self._optimizer: DPOptimizer | None = None
        self._original_optimizer: torch.optim.Optimizer | None = None
        self._sampler: PoissonBatchSampler | None = None
        self._loaders: LoaderReplacement | None = None
        self._micro_dummy: list[bool] = []
        self._loaded: dict[str, Any] | None = None

    # -- public ---------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        return f"DifferentialPrivacy{{mode={self.grad_sample_mode}, accountant={self.accountant_name}}}"

    @property
    def budget(self) -> float | None:
        """The ε that training must not exceed (``max_epsilon``, else ``target_epsilon``)."""
        return self.max_epsilon if self.max_epsilon is not None else self.target_epsilon

    def epsilon(self, delta: float | None = None) -> float:
        """ε spent so far at ``delta`` (default: the run's δ)."""
        if not self.accountant.history:
            return 0.0
        if any(sigma == 0 for sigma, _, _ in self.accountant.history):
            return math.inf  # a noiseless step is not private at all
        return float(self.accountant.get_epsilon(delta=delta or self._delta()))

    def provenance(self) -> dict[str, Any]:
        """The DP parameters and the ε spent, for signed checkpoint metadata and reports."""
        return {
            "mechanism": "DP-SGD (Poisson-subsampled Gaussian)",
            "library": "opacus",
            "accountant": self.accountant_name,
            "grad_sample_mode": self.grad_sample_mode,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "num_samples": self.num_samples,
            "delta": self._delta() if self.num_samples or self.delta else None,
            "steps": self.steps_done,
            "epsilon": self.epsilon() if self.num_samples or self.delta else 0.0,
            "target_epsilon": self.target_epsilon,
            "budget_epsilon": self.budget,
            "privacy_unit": "example (one sequence for causal LMs)",
            "sampling": "poisson",
            "trainable": self.trainable,
            "trainable_parameters": self.trainable_parameters,
        }

    # -- setup ----------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        destroy_process_group_at_exit()
        check_trainer(trainer, self.grad_sample_mode)
        self._world_size = trainer.world_size
        self._fsdp = isinstance(trainer.strategy, ModelParallelStrategy)
        self._accumulate = int(trainer.accumulate_grad_batches)
        self._loaders = LoaderReplacement(
            on_plan=self._plan, world_size=self._world_size, accumulate=self._accumulate, seed=self.seed
        )
        self._loaders.attach(trainer)
        if self.freeze_embeddings:
            for module in pl_module.modules():
                if isinstance(module, torch.nn.Embedding):
                    module.weight.requires_grad_(False)
        if self.trainable is not None:
            restrict_trainable(pl_module, self.trainable)
        self.trainable_parameters = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        if self.grad_sample_mode == "ghost":
            untie_shared_weights(pl_module, untie=self.untie_embeddings)
        errors = ModuleValidator.validate(pl_module, strict=False)
        if errors:
            raise ConfigError(
                f"DifferentialPrivacy cannot compute per-sample gradients for {type(pl_module).__name__}: "
                f"{'; '.join(str(e) for e in errors[:3])} (opacus.validators.ModuleValidator.fix replaces "
                "BatchNorm with GroupNorm)"
            )
        if self._fsdp:
            return  # Opacus's FSDP hooks go on the layers once configure_model has sharded them (on_fit_start)
        if self.grad_sample_mode == "ghost":
            self._ghost = GhostClipping(pl_module, max_grad_norm=self.max_grad_norm)
            self._gsm = self._ghost.gsm
        else:
            self._gsm = GradSampleModule(pl_module, loss_reduction="mean", strict=False)

    def _plan(self, trainer: pl.Trainer, q: float, n: int, steps_per_epoch: int) -> None:
        """Fix the sample rate, the planned steps and (from ``target_epsilon``) σ: the first loader's sampling."""
        self.sample_rate, self.num_samples = q, n
        planned = self.steps if self.steps is not None else steps_from_trainer(trainer, steps_per_epoch)
        if planned is None:
            raise ConfigError("DifferentialPrivacy needs steps=..., or Trainer max_epochs / max_steps, to plan ε")
        self.planned_steps = planned
        self._trainer_steps = planned if self.steps is None else steps_from_trainer(trainer, steps_per_epoch)
        if self.target_epsilon is not None and self.noise_multiplier is None:
            self.noise_multiplier = float(
                get_noise_multiplier(
                    target_epsilon=self.target_epsilon,
                    target_delta=self._delta(),
                    sample_rate=q,
                    steps=planned,
                    accountant=self.accountant_name,
                )
            )

    def _delta(self) -> float:
        if self.delta is not None:
            return self.delta
        if self.num_samples is None:
            raise ConfigError("delta is not known before setup: give delta=...")
        return default_delta(self.num_samples)

    def _noise_and_rate(self) -> tuple[float, float]:
        """``(noise_multiplier, sample_rate)`` of the planned run."""
        if self.noise_multiplier is None or self.sample_rate is None:
            raise ConfigError(
                "DifferentialPrivacy has no plan yet: the training loader was not replaced (is the callback "
                "attached to the Trainer that runs fit?)"
            )
        return self.noise_multiplier, self.sample_rate

    # -- optimizer ------------------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizers = trainer.optimizers
        if len(optimizers) != 1:
            raise ConfigError(f"DifferentialPrivacy needs exactly one optimizer, got {len(optimizers)}")
        if self._fsdp:
            if not any(isinstance(m, FSDPModule) for m in pl_module.modules()):
                raise ConfigError(
                    f"DifferentialPrivacy under {type(trainer.strategy).__name__} needs an FSDP2 module: apply "
                    f"torch.distributed.fsdp.fully_shard in {type(pl_module).__name__}.configure_model "
                    "(e.g. to each layer with parameters, then to the module)"
                )
            self._ghost = GhostClipping(pl_module, max_grad_norm=self.max_grad_norm, fsdp=True)
            self._gsm = self._ghost.gsm

    def _wrap_optimizer(self, trainer: pl.Trainer) -> None:
        """Wrap the user's optimizer in Opacus's (once the loader has fixed the sample rate)."""
        if self._loaded is not None:
            self._apply_loaded()
        noise, rate = self._noise_and_rate()
        if self.budget is None:
            self.max_steps_in_budget = None
        else:
            self.max_steps_in_budget = max_steps_within(
                self.budget,
                accountant=self.accountant_name,
                noise_multiplier=noise,
                sample_rate=rate,
                delta=self._delta(),
                limit=max(1, self.planned_steps or 1, self._trainer_steps or 1),
            )
        original = trainer.optimizers[0]
        expected = rate * (self.num_samples or 0) / self._world_size
        kwargs: dict[str, Any] = {
            "noise_multiplier": noise,
            "max_grad_norm": self.max_grad_norm,
            "expected_batch_size": expected,
            "loss_reduction": "mean",
            "secure_mode": self.secure_mode,
        }
        cls: type[DPOptimizer]
        if self._fsdp:
            cls = FSDPOptimizerFastGradientClipping  # noise / world size on each rank's shard
        elif self.grad_sample_mode == "ghost":
            cls = DPOptimizerFastGradientClipping
        elif self._world_size > 1:
            cls = DistributedDPOptimizer
        else:
            cls = DPOptimizer
        optimizer = cls(original, **kwargs)
        optimizer.attach_step_hook(self._on_noisy_step)
        self._original_optimizer, self._optimizer = original, optimizer
        trainer.optimizers = [optimizer]

    def _on_noisy_step(self, optimizer: DPOptimizer) -> None:
        noise, rate = self._noise_and_rate()
        self.accountant.step(noise_multiplier=noise, sample_rate=rate)
        self.steps_done += 1

    # -- steps ----------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        sampler = getattr(loader, "batch_sampler", None)
        if not isinstance(sampler, PoissonBatchSampler) or self._loaders is None or not self._loaders.planned:
            raise ConfigError(
                f"DifferentialPrivacy could not replace the training loader ({type(loader).__name__}) with a "
                f"Poisson-sampled one: did the strategy {type(trainer.strategy).__name__} wrap it?"
            )
        if sampler.world_size != self._world_size:
            raise ConfigError(
                f"the Poisson sampler sees {sampler.world_size} rank(s) but the Trainer has {self._world_size}: "
                "keep Trainer(use_distributed_sampler=True) so each rank samples its own shard"
            )
        self._sampler = sampler
        self._wrap_optimizer(trainer)
        if self.max_steps_in_budget is not None and self.planned_steps is not None:
            if self.max_steps_in_budget < self.planned_steps:
                warnings.warn(
                    f"the privacy budget eps={self.budget} allows {self.max_steps_in_budget} of the "
                    f"{self.planned_steps} planned steps; training will stop early",
                    stacklevel=2,
                )
        get_audit_log(trainer).record("privacy.start", source="DifferentialPrivacy", **self.provenance())

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        dummy = bool(self._sampler.dummy_flags.popleft()) if self._sampler and self._sampler.dummy_flags else False
        if not self._micro_dummy and self._would_exceed_budget() and self._optimizer is not None:
            # Fail closed: a step past the budget must never be released (Trainer(min_epochs=...) can
            # keep the loop running after should_stop).
            self._optimizer.signal_skip_step(True)
            trainer.should_stop = True
        self._micro_dummy.append(dummy)

    def _would_exceed_budget(self) -> bool:
        return self.max_steps_in_budget is not None and self.steps_done >= self.max_steps_in_budget

    @override
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self._ghost is None or self._optimizer is None:
            return
        self._ghost.before_backward(loss, self._optimizer, dummy=bool(self._micro_dummy and self._micro_dummy[-1]))

    @override
    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ghost is not None:
            self._ghost.after_backward()

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.grad_sample_mode == "hooks" and self._optimizer is not None:
            prepare_grad_samples(self._optimizer.params, self._micro_dummy, accumulate=self._accumulate)
        self._micro_dummy = []

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._micro_dummy or self.budget_exhausted:
            return  # mid-accumulation, or already reported
        if self._would_exceed_budget():
            self.budget_exhausted = True
            trainer.should_stop = True
            if self.planned_steps is not None and self.steps_done >= self.planned_steps:
                return  # the planned run is complete and used the budget it was planned for: not an early stop
            get_audit_log(trainer).record(
                "privacy.budget_exhausted",
                source="DifferentialPrivacy",
                steps=self.steps_done,
                epsilon=self.epsilon(),
                budget=self.budget,
                delta=self._delta(),
                planned_steps=self.planned_steps,
            )

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        eps = self.epsilon()
        pl_module.log("dp/epsilon", eps, sync_dist=False, rank_zero_only=True)
        get_audit_log(trainer).record(
            "privacy.epsilon",
            source="DifferentialPrivacy",
            epoch=trainer.current_epoch,
            steps=self.steps_done,
            epsilon=eps,
            delta=self._delta(),
        )

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        get_audit_log(trainer).record("privacy.end", source="DifferentialPrivacy", **self.provenance())

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self._ghost is not None:
            self._ghost.close()
            self._ghost = None
        elif self._gsm is not None:
            self._gsm._close()
        self._gsm = None
        if self._loaders is not None:
            self._loaders.detach()  # the class's process_dataloader shows again
        if self._original_optimizer is not None:
            trainer.optimizers = [self._original_optimizer]
            self._optimizer = None

    # -- resume ---------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "accountant": self.accountant_name,
            "history": [tuple(h) for h in self.accountant.history],
            "steps_done": self.steps_done,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "max_grad_norm": self.max_grad_norm,
            "delta": self._delta() if (self.num_samples or self.delta) else None,
            "budget_exhausted": self.budget_exhausted,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict)
        if self.sample_rate is not None:
            self._apply_loaded()

    def _apply_loaded(self) -> None:
        state, self._loaded = self._loaded, None
        if state is None:
            return
        if state["accountant"] != self.accountant_name:
            raise ConfigError(
                f"the checkpoint's privacy accountant is {state['accountant']!r}, this run's is "
                f"{self.accountant_name!r}: resume with the same accountant"
            )
        for key, mine in (("sample_rate", self.sample_rate), ("max_grad_norm", self.max_grad_norm)):
            if state[key] is not None and mine is not None and not math.isclose(state[key], mine, rel_tol=1e-9):
                raise ConfigError(f"the checkpoint was trained with {key}={state[key]}, this run has {key}={mine}")
        if state["noise_multiplier"] is not None and self.noise_multiplier != state["noise_multiplier"]:
            if self.target_epsilon is None:
                raise ConfigError(
                    f"the checkpoint was trained with noise_multiplier={state['noise_multiplier']}, "
                    f"this run has {self.noise_multiplier}"
                )
            self.noise_multiplier = float(state["noise_multiplier"])  # keep the noise the budget was planned with
        self.accountant.history = [tuple(h) for h in state["history"]]
        self.steps_done = int(state["steps_done"])
        self.budget_exhausted = bool(state["budget_exhausted"])
