"""DP-SGD cost: median step time and peak memory, DP (hooks, ghost) vs non-private, in one run.

Each variant trains the same model on the same data in its own subprocess (so peak memory is
its own): a tiny BERT on the synthetic corpus on CPU by default. Step time is the median of
``on_train_batch_start`` -> ``on_train_batch_end`` after warm-up; it is split into forward +
backward (incl. Opacus's per-sample hooks; both passes under ghost) and the optimizer step
(clipping + noise + AdamW). Peak memory is the process's peak RSS growth during ``fit`` on CPU
(``/proc/self/status`` VmHWM after a reset) or ``torch.cuda.max_memory_allocated`` on GPU.
DP batches are Poisson-sampled (expected size = ``--batch-size``), so DP steps vary in size.

Example:
    python -m benchmarks.dp_overhead --steps 30
    python -m benchmarks.dp_overhead --preset bert-base --device cuda  # B=32, T=128 on a GPU
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

PRESETS: dict[str, dict[str, Any]] = {
    "tiny-bert": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny-bert")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="sequences are padded/truncated to this length")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["non-private", "hooks", "ghost"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    return p.parse_args(argv)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _worker(args: argparse.Namespace, mode: str, queue: Any) -> None:
    import lightning.pytorch as pl
    import torch

    from secure_train.data import TextClassificationDataModule
    from secure_train.models import TINY_BERT, TextClassifier
    from secure_train.privacy import DifferentialPrivacy

    torch.set_num_threads(1)
    timings: dict[str, list[float]] = {"step": [], "fwd_bwd": [], "opt": []}

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # type: ignore[no-untyped-def]
            self._sync()
            self.t0 = time.perf_counter()

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # type: ignore[no-untyped-def]
            self._sync()
            self.t1 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            self._sync()
            t2 = time.perf_counter()
            timings["step"].append(t2 - self.t0)
            timings["fwd_bwd"].append(self.t1 - self.t0)
            timings["opt"].append(t2 - self.t1)

        def _sync(self) -> None:
            if torch.cuda.is_available() and args.device == "cuda":
                torch.cuda.synchronize()

    pl.seed_everything(args.seed, verbose=False)
    n = args.batch_size * (args.steps + args.warmup + 2)
    dm = TextClassificationDataModule(
        synthetic_size=int(n / 0.9) + 1, max_length=args.max_length, batch_size=args.batch_size, vocab_size=4096
    )
    dm.setup("fit")
    model = TextClassifier(config={**TINY_BERT, **PRESETS[args.preset]}, vocab_size=len(dm.get_tokenizer()))
    callbacks: list[pl.Callback] = [Timer()]
    if mode != "non-private":
        callbacks.append(DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, grad_sample_mode=mode, accountant="rdp"))
    with tempfile.TemporaryDirectory() as root:
        trainer = common.make_trainer(
            accelerator=args.device,
            max_steps=args.steps + args.warmup,
            max_epochs=1,
            enable_progress_bar=False,
            callbacks=callbacks,
            default_root_dir=root,
        )
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            base = _rss_kib("VmRSS") * 1024
        trainer.fit(model, dm)
        peak = (torch.cuda.max_memory_allocated() if args.device == "cuda" else _rss_kib("VmHWM") * 1024) - base
    w = args.warmup
    queue.put(
        {
            "mode": mode,
            "step_ms": 1000 * statistics.median(timings["step"][w:]),
            "fwd_bwd_ms": 1000 * statistics.median(timings["fwd_bwd"][w:]),
            "opt_ms": 1000 * statistics.median(timings["opt"][w:]),
            "peak_mem_mb": peak / 2**20,
            "steps": len(timings["step"]) - w,
        }
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ctx = mp.get_context("spawn")
    rows: list[dict[str, Any]] = []
    for mode in args.modes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(args, mode, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    base = next(r for r in rows if r["mode"] == "non-private")
    for r in rows:
        r["time_x"] = r["step_ms"] / base["step_ms"]
        r["mem_x"] = r["peak_mem_mb"] / base["peak_mem_mb"] if base["peak_mem_mb"] > 0 else float("nan")
    meta = {
        "model": f"{args.preset} (BERT, random init)",
        "shape": f"batch {args.batch_size} (DP: Poisson, expected), length <= {args.max_length}",
        "device": args.device,
        "threads": "1 torch thread per process",
        "steps": f"{args.steps} timed after {args.warmup} warm-up",
    }
    common.write_results("dp_overhead", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
