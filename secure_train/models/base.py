"""Shared machinery of the Hugging Face LightningModules: build, forward, optimizer, checks.

Every ``from_pretrained`` / ``from_config`` call passes ``trust_remote_code=False``: a model
folder whose ``config.json`` names custom code (``auto_map``) is loaded with the library's own
class for its ``model_type`` or refused (:class:`ConfigError`), never executed or prompted for.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_in_range, require_int, require_positive

__all__ = ["HFModule"]

_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


class HFModule(pl.LightningModule):
    """Base of :class:`TextClassifier` and :class:`CausalLM`.

    ``training_step`` returns ``{"loss", "per_sample_loss", "sample_id"}`` so callbacks get
    each example's loss in ``on_train_batch_end(outputs=...)``; the most recent ones are also
    kept as ``last_per_sample_loss`` / ``last_sample_id`` (detached).
    """

    auto_class: Any = None
    default_config: dict[str, Any] = {}

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        vocab_size: int = 8192,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        **config_overrides: Any,
    ) -> None:
        super().__init__()
        require_positive(self, "lr", lr)
        require_in_range(self, "weight_decay", weight_decay, "[0, inf)")
        require_int(self, "warmup_steps", warmup_steps, minimum=0)
        require_int(self, "vocab_size", vocab_size, minimum=1)
        if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
            raise ConfigError(f"{type(self).__name__}: pretrained must be a path or hub name, got {pretrained!r}")
        if config is not None and not isinstance(config, Mapping):
            raise ConfigError(f"{type(self).__name__}: config must be a mapping, got {type(config).__name__}")
        if pretrained is not None and config is not None:
            raise ConfigError(f"{type(self).__name__}: give either pretrained (a path or hub name) or config, not both")
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.pretrained = pretrained
        if config_overrides.pop("trust_remote_code", False):
            raise ConfigError("trust_remote_code is not supported: a model folder's custom code is never run")
        if pretrained is not None:
            try:
                self.model: PreTrainedModel = self.auto_class.from_pretrained(
                    os.fspath(pretrained), trust_remote_code=False, **config_overrides
                )
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot load a model from {pretrained}: {str(err).splitlines()[0]}") from None
            self.model.train()  # from_pretrained returns eval mode; fine-tuning wants dropout on
        else:
            cfg = dict(self.default_config if config is None else config)
            cfg.setdefault("vocab_size", vocab_size)
            cfg.update(config_overrides)
            cfg.pop("trust_remote_code", None)
            model_type = cfg.pop("model_type", self.default_config.get("model_type"))
            try:
                hf_config: PretrainedConfig = AutoConfig.for_model(model_type, **cfg)  # a registered type only
                self.model = self.auto_class.from_config(hf_config, trust_remote_code=False)
            except ValueError as err:
                raise ConfigError(f"bad model config: {err}") from None
        accepted = inspect.signature(self.model.forward).parameters
        self._input_keys = tuple(k for k in _INPUT_KEYS if k in accepted)
        self.last_per_sample_loss: torch.Tensor | None = None
        self.last_sample_id: torch.Tensor | None = None

    # -- forward --------------------------------------------------------------------------
    def model_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch entries the wrapped model's ``forward`` accepts."""
        return {k: batch[k] for k in self._input_keys if k in batch}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Logits for a batch."""
        return self.model(**self.model_inputs(batch)).logits

    def per_sample_loss(self, batch: dict[str, torch.Tensor], logits: torch.Tensor | None = None) -> torch.Tensor:
        """One loss per example, shape ``(batch,)``."""
        raise NotImplementedError

    # -- steps ----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self(batch)
        losses = self.per_sample_loss(batch, logits)
        loss = losses.mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=losses.shape[0])
        self.last_per_sample_loss = losses.detach()
        self.last_sample_id = batch["sample_id"]
        return {"loss": loss, "per_sample_loss": self.last_per_sample_loss, "sample_id": batch["sample_id"]}

    # -- optimization ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        if self.warmup_steps <= 0:
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), self.warmup_steps + 1)
        warm = self.warmup_steps

        def schedule(step: int) -> float:
            return (step + 1) / warm if step < warm else max(0.0, (total - step) / (total - warm))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checks ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        tokenizer = getattr(datamodule, "tokenizer", None)
        if tokenizer is not None:
            emb = self.model.get_input_embeddings()
            rows = emb.num_embeddings if isinstance(emb, torch.nn.Embedding) else None
            if rows is not None and len(tokenizer) > rows:
                raise ConfigError(
                    f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} rows; "
                    "use the model's own tokenizer (data.tokenizer = model.pretrained) or raise model.vocab_size"
                )
