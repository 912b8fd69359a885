"""Overhead of the training monitors: median step time with all four at defaults vs none.

Both variants train the same model on the same data in the same process, interleaved
round by round (none, monitored, none, monitored, ...) so that load on the machine hits
both alike. Step time is the wall time between consecutive ``on_train_batch_start`` calls
(forward, backward, optimizer, every callback hook and data loading); the first
``--skip`` steps of each round are dropped.

Examples:
    python -m benchmarks.monitor_overhead                          # tiny BERT, synthetic corpus, CPU
    python -m benchmarks.monitor_overhead --rounds 5 --steps 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import lightning.pytorch as pl
import torch

from benchmarks import common
from secure_train.monitors import (
    ActivationMonitor,
    GradNormMonitor,
    LossSpikeMonitor,
)
from secure_train.monitors.sample_loss import SampleLossMonitor  # (retired, not exported)


class StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_start(self, *args: Any) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def monitors() -> list[pl.Callback]:
    return [LossSpikeMonitor(), GradNormMonitor(), ActivationMonitor(), SampleLossMonitor()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per round")
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps dropped from each round")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.max_steps = args.steps
    args.epochs = 1000
    times: dict[str, list[float]] = {"none": [], "all four monitors": []}
    for _ in range(args.rounds):
        for variant in times:
            dm = common.build_datamodule(args)
            model = common.build_model(args)
            timer = StepTimer()
            callbacks = [timer] + (monitors() if variant != "none" else [])
            common.fit(
                model,
                dm,
                args,
                callbacks,
                enable_progress_bar=False,
                default_root_dir=tempfile.mkdtemp(prefix="monitor-bench-"),
            )
            times[variant] += timer.times[args.skip :]
    base = statistics.median(times["none"])
    rows = [
        {
            "variant": variant,
            "steps_timed": len(values),
            "median_step_ms": 1000 * statistics.median(values),
            "ratio_vs_none": statistics.median(values) / base,
        }
        for variant, values in times.items()
    ]
    meta = {
        "model": args.model_path or "tiny-bert",
        "train": args.train or "synthetic",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "monitors": "LossSpikeMonitor, GradNormMonitor, ActivationMonitor, SampleLossMonitor (defaults)",
    }
    common.write_results("monitor_overhead", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
