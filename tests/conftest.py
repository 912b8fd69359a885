"""Shared fixtures: a tiny model, tiny data and a quiet Trainer, so callback tests run in seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from secure_train.data import CausalLMDataModule, TextClassificationDataModule  # noqa: E402
from secure_train.models import CausalLM, TextClassifier  # noqa: E402

MICRO_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
}
MICRO_GPT2 = {
    "model_type": "gpt2",
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 2,
    "n_positions": 128,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "pad_token_id": 0,
}


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["SECURE_TRAIN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["SECURE_TRAIN_VERDICTS"] = str(tmp_path_factory.mktemp("verdicts"))  # never ~/.local/state


def tiny_classifier(**kwargs: Any) -> TextClassifier:
    """A ~40k-parameter BERT classifier (vocab 512)."""
    kwargs.setdefault("config", MICRO_BERT)
    kwargs.setdefault("vocab_size", 512)
    kwargs.setdefault("lr", 2e-3)
    return TextClassifier(**kwargs)


def tiny_classification_data(**kwargs: Any) -> TextClassificationDataModule:
    kwargs.setdefault("synthetic_size", 320)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("vocab_size", 512)
    kwargs.setdefault("max_length", 32)
    return TextClassificationDataModule(**kwargs)


def tiny_causal_lm(**kwargs: Any) -> CausalLM:
    kwargs.setdefault("config", MICRO_GPT2)
    kwargs.setdefault("vocab_size", 512)
    return CausalLM(**kwargs)


def tiny_causal_data(**kwargs: Any) -> CausalLMDataModule:
    kwargs.setdefault("synthetic_size", 160)
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("vocab_size", 512)
    return CausalLMDataModule(**kwargs)


def quiet_trainer(root: Path, **kwargs: Any) -> pl.Trainer:
    """A CPU Trainer with no progress bar, no summary, no logger unless given."""
    kwargs.setdefault("max_epochs", 1)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("devices", 1)
    return pl.Trainer(
        default_root_dir=root,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def ddp_trainer(root: Path, **kwargs: Any) -> pl.Trainer:
    """:func:`quiet_trainer` over two CPU processes (gloo, ``ddp_spawn``)."""
    kwargs.setdefault("limit_val_batches", 0)
    return quiet_trainer(root, devices=2, strategy="ddp_spawn", **kwargs)


def write_rank_json(out: Path, trainer: pl.Trainer, doc: Any) -> None:
    """Each rank's record of what it saw, for :func:`read_rank_json` in the test process."""
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(doc))


def read_rank_json(out: Path, world_size: int = 2) -> list[Any]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world_size)]


TSV_ROWS = ["sentence\tlabel", "a fine film\t1", "dull and long\t0", "great acting\t1", "weak plot\t0"]
"""A small labeled TSV (header first), for tests that hash, sign or edit data files."""


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder: ``train.tsv`` (:data:`TSV_ROWS`) and ``dev.tsv`` (its first two rows)."""
    d = tmp_path / "data"
    d.mkdir()
    write_lines(d / "train.tsv", TSV_ROWS)
    write_lines(d / "dev.tsv", TSV_ROWS[:3])
    return d
