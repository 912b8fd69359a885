"""Rendering time of ``secure-train report`` on a run with many logged steps.

Generates a synthetic run directory the way a long monitored, signed run leaves it: a
``metrics.csv`` (CSVLogger layout: loss, loss-spike threshold, global gradient norm,
activation mean/std/max_abs/kurtosis of two modules, per-epoch validation accuracy and ε), a
hash-chained audit log with ``checkpoint.signed`` every 1000 steps, injected anomalies with
their actions, per-epoch ``privacy.epsilon`` events and a signed head, and ten small signed
checkpoints. Then times the report (read + verify + build + HTML/Markdown/JSON), repeated.

    nice -n 10 python -m benchmarks.report_render --steps 100000 --repeats 3

Writes ``benchmarks/results/report_render.json``.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks import common
from secure_train.core.audit_log import AuditLog
from secure_train.integrity import sign_audit_head, write_signed
from secure_train.response.report import ReportRenderer, SecurityReport

MODULES = ("model.bert.encoder.layer.0", "model.bert.encoder.layer.1")


def synthetic_run(
    root: Path,
    *,
    steps: int = 100_000,
    steps_per_epoch: int = 1000,
    seed: int = 0,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Path:
    """Write a run directory with ``steps`` logged steps; returns it."""
    rng = random.Random(seed)
    key = key or ec.generate_private_key(ec.SECP256R1())
    run = root / "runs" / "long" / "version_0"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    spikes = set(rng.sample(range(500, steps), 20))
    cols = ["epoch", "step", "train/loss", "loss_spike/threshold", "grad_norm/global", "val/acc", "dp/epsilon"]
    for m in MODULES:
        cols += [f"activation/{m}/{s}" for s in ("kurtosis", "max_abs", "mean", "std")]
    log = AuditLog(run / "audit.jsonl")
    log.record("run.start", source="AuditTrail", stage="fit", model="TextClassifier", world_size=1)
    log.record("integrity.configured", source="CheckpointSigning", key_fingerprint="synthetic")
    log.record(
        "privacy.start",
        source="DifferentialPrivacy",
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        delta=1e-5,
        budget_epsilon=8.0,
        epsilon=0.0,
        steps=0,
    )
    with (run / "metrics.csv").open("w") as fh:
        fh.write(",".join(cols) + "\n")
        for step in range(steps):
            epoch = step // steps_per_epoch
            loss = 2.0 * math.exp(-step / (steps / 4)) + 0.3 + rng.gauss(0, 0.03)
            if step in spikes:
                loss *= 25
                action = rng.choice(["warn", "skip", "rollback"])
                log.record(
                    "monitor.anomaly",
                    source="LossSpikeMonitor",
                    step=step,
                    monitor="LossSpikeMonitor",
                    metric="loss",
                    value=loss,
                    threshold=loss / 5,
                    action=action,
                    **({"restored_step": step - 50} if action == "rollback" else {}),
                )
            grad = 0.5 + rng.random() * 0.2 + (30 if step in spikes else 0)
            row = [str(epoch), str(step), f"{loss:.6g}", f"{loss * 3:.6g}", f"{grad:.6g}", "", ""]
            for i, _ in enumerate(MODULES):
                row += [
                    f"{3 + rng.random():.5g}",
                    f"{4 + i + rng.random():.5g}",
                    f"{rng.gauss(0, 0.01):.5g}",
                    f"{1 + rng.gauss(0, 0.02):.5g}",
                ]
            if (step + 1) % steps_per_epoch == 0:
                eps = 8.0 * math.sqrt((step + 1) / steps)
                row[5], row[6] = f"{0.6 + 0.3 * step / steps:.4f}", f"{eps:.4f}"
                log.record(
                    "privacy.epsilon",
                    source="DifferentialPrivacy",
                    epoch=epoch,
                    steps=step + 1,
                    epsilon=eps,
                    delta=1e-5,
                )
            if (step + 1) % 1000 == 0:
                log.record(
                    "checkpoint.signed",
                    source="SignedCheckpointIO",
                    path=f"checkpoints/step={step + 1}.ckpt",
                    global_step=step + 1,
                )
            fh.write(",".join(row) + "\n")
    for i in range(10):
        buf = io.BytesIO()
        torch.save({"global_step": (i + 1) * steps // 10, "state_dict": {"w": torch.zeros(256)}}, buf)
        events, head = log.head
        write_signed(
            buf.getvalue(),
            run / "checkpoints" / f"step={(i + 1) * steps // 10}.ckpt",
            key,
            fsync=False,
            provenance={"global_step": (i + 1) * steps // 10, "audit_head": {"events": events, "head": head}},
        )
    log.record("run.end", source="AuditTrail", stage="fit", global_step=steps, interrupted=False)
    sign_audit_head(run / "audit.jsonl", key, reason="end of run")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "report_render.json"))
    args = parser.parse_args(argv)
    key = ec.generate_private_key(ec.SECP256R1())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with common.timed() as t:
            run = synthetic_run(Path(tmp), steps=args.steps, key=key)
        gen = t.seconds
        csv_mb = (run / "metrics.csv").stat().st_size / 1e6
        for with_key in (False, True):
            times = []
            for _ in range(args.repeats):
                with common.timed() as t:
                    report = SecurityReport.from_run(
                        run, public_key=key.public_key() if with_key else None, use_verdict_store=False
                    )
                    paths = ReportRenderer([report]).write(Path(tmp) / "out")
                times.append(t.seconds)
            verdict = report.to_dict()["integrity"]["verdict"]
            rows.append(
                {
                    "steps": args.steps,
                    "public_key": with_key,
                    "median_s": statistics.median(times),
                    "max_s": max(times),
                    "repeats": args.repeats,
                    "verdict": verdict,
                    "html_kb": paths["html"].stat().st_size / 1e3,
                }
            )
    print(f"run: {args.steps} logged steps, metrics.csv {csv_mb:.1f} MB (generated in {gen:.1f} s)")
    print(f"{'steps':>8} {'--public-key':>12} {'median s':>9} {'max s':>7} {'html KB':>8} verdict")
    for r in rows:
        print(
            f"{r['steps']:>8} {str(r['public_key']):>12} {r['median_s']:>9.2f} {r['max_s']:>7.2f} "
            f"{r['html_kb']:>8.0f} {r['verdict']}"
        )
    out = common.write_json(args.out, {"metrics_csv_mb": csv_mb, "rows": rows}, indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
