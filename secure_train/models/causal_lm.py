"""LightningModule for causal language modeling with any ``AutoModelForCausalLM``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from secure_train.models.base import HFModule

__all__ = ["TINY_GPT2", "CausalLM"]

TINY_GPT2: dict[str, Any] = {
    "model_type": "gpt2",
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 2,
    "n_positions": 256,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


class CausalLM(HFModule):
    """A causal LM from a local pretrained path or from a config (tiny GPT-2 by default).

    The loss of a sequence is the mean over its labeled tokens (labels ``-100`` are ignored),
    so each sequence is one unit for per-sample losses and DP-SGD. Logs ``train/loss``,
    ``val/loss``, ``val/ppl``.

    Example:
        >>> lm = CausalLM(vocab_size=50)
        >>> batch = {"input_ids": torch.tensor([[5, 6, 7, 1]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
        ...          "labels": torch.tensor([[5, 6, 7, 1]]), "sample_id": torch.tensor([0])}
        >>> lm.per_sample_loss(batch).shape
        torch.Size([1])
    """

    auto_class = AutoModelForCausalLM
    default_config = TINY_GPT2

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        vocab_size: int = 2048,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__(pretrained, config, vocab_size, lr, weight_decay, warmup_steps)
        self.save_hyperparameters()

    def per_sample_loss(self, batch: dict[str, torch.Tensor], logits: torch.Tensor | None = None) -> torch.Tensor:
        logits = self(batch) if logits is None else logits
        shift_logits = logits[:, :-1].float()
        shift_labels = batch["labels"][:, 1:]
        token_loss = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(shift_labels.shape)
        mask = (shift_labels != -100).to(token_loss.dtype)
        return (token_loss * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def _eval_step(self, batch: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        loss = self.per_sample_loss(batch).mean()
        n = batch["input_ids"].shape[0]
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self.log(f"{prefix}/ppl", loss.exp(), batch_size=n, sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test")

    @torch.no_grad()
    def generate_text(self, prompts: list[str], tokenizer: Any, max_new_tokens: int = 8) -> list[str]:
        """Greedy continuations of ``prompts`` (decoded, prompt removed)."""
        out = []
        for prompt in prompts:
            ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=self.device)
            gen = self.model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            out.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True))
        return out
