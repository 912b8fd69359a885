"""Training monitors: detection, actions (warn / skip / halt / rollback), logging, resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import MICRO_BERT, tiny_classification_data
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from secure_train.core.audit_log import read_events
from secure_train.core.errors import ConfigError
from secure_train.models import TextClassifier
from secure_train.monitors import (
    ActivationMonitor,
    GradNormMonitor,
    LossSpikeMonitor,
    RunningStats,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    pl.seed_everything(0, verbose=False)


class Spiky(TextClassifier):
    """Tiny classifier whose loss is multiplied (or made NaN) at chosen steps."""

    def __init__(
        self,
        spikes: dict[int, float] | None = None,
        rank: int | None = None,
        nan_grad_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("config", MICRO_BERT)
        kwargs.setdefault("vocab_size", 512)
        kwargs.setdefault("lr", 2e-3)
        super().__init__(**kwargs)
        self.spikes = spikes or {}
        self.spike_rank = rank
        self.nan_grad_step = nan_grad_step

    def on_after_backward(self) -> None:
        # After DDP's all-reduce: only this rank's gradients become NaN.
        if self.global_step == self.nan_grad_step and self.global_rank == 1:
            next(self.parameters()).grad.fill_(math.nan)  # type: ignore[union-attr]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        out = super().training_step(batch, batch_idx)
        factor = self.spikes.get(self.global_step)
        if factor is not None and (self.spike_rank is None or self.global_rank == self.spike_rank):
            out["loss"] = out["loss"] * factor
        return out


class ListLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "list"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def keys(self) -> set[str]:
        return {k for _, m in self.metrics for k in m}


class StepRecorder(pl.Callback):
    """Records, per optimizer step, whether gradients reached the optimizer and the weights after it."""

    def __init__(self, keep_weights: bool = False) -> None:
        self.skipped: list[int] = []
        self.weights: dict[int, torch.Tensor] = {}
        self.keep_weights = keep_weights

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if all(p.grad is None for p in pl_module.parameters()):
            self.skipped.append(trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.keep_weights:
            self.weights[trainer.global_step] = torch.cat([p.detach().flatten() for p in pl_module.parameters()])


def trainer_for(tmp_path: Path, callbacks: list[pl.Callback], **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("max_epochs", 2)
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=callbacks,
        **kwargs,
    )


def anomaly_events(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    if not path.exists():
        return []
    return [e["payload"] for e in read_events(path) if e["type"] == "monitor.anomaly"]


# -- the shared statistics -------------------------------------------------------------------
def test_running_stats_flags_spikes_and_non_finite_only() -> None:
    torch.manual_seed(0)
    stats = RunningStats(window=32, warmup=10, k=6.0, log_space=True, min_ratio=3.0)
    noise = (torch.randn(200) * 0.2).exp()  # lognormal noise around 1
    flags = [bool(stats.update(v.reshape(1))[0][0]) for v in noise]
    assert not any(flags)
    assert bool(stats.update(torch.tensor([40.0]))[0][0])
    assert bool(stats.update(torch.tensor([math.nan]))[0][0])
    assert bool(stats.update(torch.tensor([math.inf]))[0][0])
    # A spike does not enter the window: the next ordinary value is fine.
    assert not bool(stats.update(torch.tensor([1.1]))[0][0])


def test_running_stats_warmup_abs_max_two_sided_and_state_roundtrip() -> None:
    stats = RunningStats(window=8, warmup=4, k=3.0, abs_max=100.0, two_sided=True, method="std")
    assert bool(stats.update(torch.tensor([500.0]))[0][0])  # abs_max counts during warm-up
    for v in (10.0, 11.0, 9.0, 10.5, 9.5):
        stats.update(torch.tensor([v]))
    assert bool(stats.update(torch.tensor([-50.0]))[0][0])  # far below: two-sided
    restored = RunningStats(window=8, warmup=4, k=3.0, abs_max=100.0, two_sided=True, method="std")
    restored.load_state_dict(stats.state_dict())
    for v in (10.2, 30.0):
        a, ta = stats.update(torch.tensor([v]))
        b, tb = restored.update(torch.tensor([v]))
        assert bool(a[0]) == bool(b[0]) and torch.allclose(ta, tb)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window"),
        ({"warmup": 500}, "warmup"),
        ({"method": "iqr"}, "method"),
        ({"min_ratio": 0.5}, "min_ratio"),
    ],
)
def test_running_stats_checks_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunningStats(**kwargs)


def test_monitors_check_arguments() -> None:
    with pytest.raises(ValueError, match="action"):
        LossSpikeMonitor(action="explode")
    with pytest.raises(ValueError, match="band"):
        ActivationMonitor(band=0.5)
    with pytest.raises(ValueError, match="check_every_n_steps"):
        GradNormMonitor(check_every_n_steps=0)


@pytest.mark.parametrize("monitor_cls", [LossSpikeMonitor, GradNormMonitor])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be an integer >= 1, got 0"),
        ({"window": 8, "warmup": 9}, "warmup must be in [0, window=8], got 9"),
        ({"k": -1.0}, "k must be in [0, inf), got -1.0"),
        ({"min_ratio": 0.5}, "min_ratio must be in [1, inf), got 0.5"),
        ({"abs_max": 0}, "abs_max must be > 0, got 0"),
        ({"action": "explode"}, "action must be one of ('warn', 'skip', 'halt', 'rollback'), got 'explode'"),
        ({"check_every_n_steps": "5"}, "check_every_n_steps must be an integer >= 1, got '5'"),
        ({"rollback_skip_batches": -1}, "rollback_skip_batches must be an integer >= 0, got -1"),
    ],
)
def test_spike_monitors_share_checked_settings(monitor_cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        monitor_cls(**kwargs)
    assert str(err.value) == f"{monitor_cls.__name__}: {message}"


@pytest.mark.parametrize("monitor_cls", [LossSpikeMonitor, GradNormMonitor])
def test_spike_monitors_keep_their_settings(monitor_cls: type) -> None:
    monitor = monitor_cls(window=16, warmup=8, k=4.0, min_ratio=2.0, abs_max=1e3, action="skip")
    assert (monitor.window, monitor.warmup, monitor.k, monitor.min_ratio, monitor.abs_max) == (16, 8, 4.0, 2.0, 1e3)
    stats = monitor.stats
    assert (stats.window, stats.warmup, stats.k, stats.min_ratio, stats.abs_max, stats.log_space) == (
        16, 8, 4.0, 2.0, 1e3, True
    )
    assert monitor.action == "skip"


# -- detection and actions ---------------------------------------------------------------------
@pytest.mark.slow
def test_clean_run_raises_no_alarm_and_logs_namespaced_keys(tmp_path: Path) -> None:
    logger = ListLogger()
    monitors = [
        LossSpikeMonitor(),
        GradNormMonitor(log_every_n_steps=5),
        ActivationMonitor(sample_every_n_steps=5, baseline_after_steps=5),
    ]
    trainer = trainer_for(tmp_path, monitors, max_epochs=4, logger=logger, log_every_n_steps=5)
    trainer.fit(Spiky(), tiny_classification_data())
    assert [m.num_anomalies for m in monitors] == [0, 0, 0]
    keys = logger.keys()
    assert "grad_norm/global" in keys
    assert "grad_norm/model.bert.encoder.layer.0.output.dense" in keys
    assert "activation/model.bert.encoder.layer.1/kurtosis" in keys
    assert "loss_spike/threshold" in keys
    assert monitors[2].module_names == ["model.bert.encoder.layer.0", "model.bert.encoder.layer.1"]
    assert monitors[2].baseline is not None


def test_loss_spike_warn_reports_the_injection_step(tmp_path: Path) -> None:
    monitor = LossSpikeMonitor(warmup=8, check_every_n_steps=7)
    logger = ListLogger()
    trainer = trainer_for(tmp_path, [monitor], logger=logger)
    trainer.fit(Spiky({13: 1000.0}), tiny_classification_data())
    events = anomaly_events(tmp_path)
    assert [(e["step"], e["metric"], e["action"]) for e in events] == [(13, "loss", "warn")]
    assert events[0]["value"] > events[0]["threshold"]
    assert "anomaly/LossSpikeMonitor/loss" in logger.keys()


def test_skip_applies_neither_the_update_nor_the_optimizer_state(tmp_path: Path) -> None:
    recorder = StepRecorder(keep_weights=True)
    states: dict[int, int] = {}

    class OptState(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
            opt = trainer.optimizers[0]
            states[trainer.global_step] = int(next(iter(opt.state.values()))["step"])

    trainer = trainer_for(tmp_path, [GradNormMonitor(warmup=8, action="skip"), recorder, OptState()])
    trainer.fit(Spiky({12: math.nan}), tiny_classification_data())
    assert recorder.skipped == [12]
    # global_step counts the skipped step (13 after it), weights and Adam's step count do not move.
    assert torch.equal(recorder.weights[12], recorder.weights[13])
    assert states[13] == states[12]
    assert states[14] == states[12] + 1
    assert torch.isfinite(recorder.weights[max(recorder.weights)]).all()
    assert [(e["step"], e["action"]) for e in anomaly_events(tmp_path)] == [(12, "skip")]


def test_halt_saves_a_checkpoint_and_stops(tmp_path: Path) -> None:
    monitor = LossSpikeMonitor(warmup=8, action="halt")
    trainer = trainer_for(tmp_path, [monitor], max_epochs=5)
    trainer.fit(Spiky({11: math.inf}), tiny_classification_data())
    assert trainer.global_step == 12 and trainer.should_stop
    ckpt = tmp_path / "monitor-halt" / "step=12.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    types = [e["type"] for e in read_events(tmp_path / "audit.jsonl") if e["type"].startswith("monitor.")]
    assert types == ["monitor.anomaly", "monitor.halt"]


def test_rollback_restores_good_weights_and_skips_batches(tmp_path: Path) -> None:
    recorder = StepRecorder(keep_weights=True)
    monitor = LossSpikeMonitor(warmup=8, action="rollback", snapshot_every_n_steps=4, rollback_skip_batches=3)
    trainer = trainer_for(tmp_path, [monitor, recorder], max_epochs=3)
    trainer.fit(Spiky({18: 1e4}), tiny_classification_data())
    (event,) = anomaly_events(tmp_path)
    assert event["step"] == 18 and event["action"] == "rollback"
    restored = event["restored_step"]
    # Snapshots at 12 and 16: 16 is still pending (no clean interval after it), 12 is the good one.
    assert restored == 12
    assert torch.equal(recorder.weights[19], recorder.weights[restored])
    assert recorder.skipped == [18, 19, 20, 21]
    # weights[n] is taken after step n - 1: steps 19-21 are skipped, step 22 trains again.
    assert torch.equal(recorder.weights[22], recorder.weights[19])
    assert not torch.equal(recorder.weights[23], recorder.weights[22])


def test_activation_monitor_hooks_only_on_sampling_steps_and_flags_explosion(tmp_path: Path) -> None:
    monitor = ActivationMonitor(sample_every_n_steps=3, baseline_after_steps=3, baseline_samples=2)
    hooked: dict[int, int] = {}

    class HookCount(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
            layer = pl_module.model.bert.encoder.layer[0]
            hooked[trainer.global_step - 1] = len(layer._forward_hooks)

    class Explode(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
            if trainer.global_step == 15:
                layer = pl_module.model.bert.encoder.layer[1]
                self.handle = layer.register_forward_hook(
                    lambda m, i, o: o * 1000.0 if isinstance(o, torch.Tensor) else (o[0] * 1000.0, *o[1:])
                )

        def on_train_batch_end(self, *args: Any) -> None:
            if getattr(self, "handle", None) is not None:
                self.handle.remove()
                self.handle = None

    trainer = trainer_for(tmp_path, [Explode(), monitor, HookCount()])
    trainer.fit(Spiky(), tiny_classification_data())
    assert set(hooked.values()) == {0}  # hooks never outlive their step
    events = anomaly_events(tmp_path)
    assert {e["step"] for e in events} == {15}
    assert {e["metric"] for e in events} >= {"model.bert.encoder.layer.1/std", "model.bert.encoder.layer.1/max_abs"}


# -- retired per-sample-loss monitor -------------------------------------------------------------
def test_sample_loss_monitor_is_retired() -> None:
    # It did not find poisoned samples (benchmarks/monitor_detection.py --parts d): not offered as a defense.
    import secure_train.monitors as callbacks
    from secure_train.monitors.sample_loss import SampleLossMonitor

    assert "SampleLossMonitor" not in callbacks.__all__ and not hasattr(callbacks, "SampleLossMonitor")
    root = Path(__file__).resolve().parents[2]
    assert not any("callbacks.SampleLossMonitor" in p.read_text() for p in (root / "recipes").glob("*.yaml"))
    with pytest.warns(FutureWarning, match="retired"):
        SampleLossMonitor()


# -- resume ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_restores_statistics_and_trajectories(tmp_path: Path) -> None:
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)

    def monitors() -> list[pl.Callback]:
        return [LossSpikeMonitor(warmup=4), GradNormMonitor(warmup=4)]

    first = monitors()
    trainer = trainer_for(tmp_path, [*first, ckpt_cb], max_epochs=1, enable_checkpointing=True)
    trainer.fit(Spiky(), tiny_classification_data())
    loss_state = first[0].stats.state_dict()

    resumed = monitors()
    seen_at_start: dict[str, Any] = {}

    class Peek(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            seen_at_start["loss_values"] = resumed[0].stats.state_dict()["values"].clone()
            seen_at_start["grad_count"] = resumed[1].stats.count

    trainer = trainer_for(tmp_path, [*resumed, Peek()], max_epochs=2)
    trainer.fit(Spiky(), tiny_classification_data(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert torch.equal(seen_at_start["loss_values"], loss_state["values"])
    assert seen_at_start["grad_count"] == first[1].stats.count > 0


def test_grad_norm_logs_the_clipped_norm_when_clipping(tmp_path: Path) -> None:
    logger = ListLogger()
    monitor = GradNormMonitor(log_every_n_steps=2, per_layer=True)
    trainer = trainer_for(tmp_path, [monitor], max_epochs=1, logger=logger, gradient_clip_val=0.01)
    trainer.fit(Spiky(), tiny_classification_data())
    pre = [m["grad_norm/global"] for _, m in logger.metrics if "grad_norm/global" in m]
    post = [m["grad_norm/global_clipped"] for _, m in logger.metrics if "grad_norm/global_clipped" in m]
    assert pre and post and len(pre) == len(post)
    assert max(post) <= 0.01 + 1e-4 < min(pre)  # measured before clipping, and after it
    assert monitor.metric_names[0] == "global" and len(monitor.metric_names) == 1 + len(monitor.layer_names)
