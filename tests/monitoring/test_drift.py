"""DriftMonitor: alerts on label and covariate shift, none on an unchanged stream; callback and CLI."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import quiet_trainer, tiny_classification_data, tiny_classifier

from secure_train.cli import main as cli_main
from secure_train.core.audit_log import read_events
from secure_train.core.errors import ConfigError
from secure_train.monitoring import DriftMonitor
from secure_train.monitors import AuditTrail


def _stream(n: int, rng: np.random.Generator, p_pos: float = 0.5, sharp: float = 4.0) -> torch.Tensor:
    """Class probabilities of a confident binary classifier (``sharp`` sets the confidence)."""
    labels = rng.random(n) < p_pos
    margin = np.abs(rng.normal(sharp, 1.5, n))
    logit = np.where(labels, margin, -margin)
    p1 = 1 / (1 + np.exp(-logit))
    return torch.tensor(np.stack([1 - p1, p1], 1), dtype=torch.float32)


def test_no_false_alert_over_20_windows_then_alerts_on_shift() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(reference=_stream(2000, rng))
    unchanged = [monitor.compare(_stream(300, rng)) for _ in range(20)]
    assert sum(r.alert for r in unchanged) == 0, [r.reasons for r in unchanged if r.alert]
    label_shift = monitor.compare(_stream(300, rng, p_pos=0.8))
    assert label_shift.alert and any("js" in x or "psi" in x for x in label_shift.reasons)
    covariate = monitor.compare(_stream(300, rng, sharp=1.0))  # corrupted inputs: confidence collapses
    assert covariate.alert and any("ks" in x for x in covariate.reasons)
    assert covariate.psi_confidence > 0.25 and label_shift.label_current[1] > 0.7


def test_constructor_checks_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="psi_threshold"):
        DriftMonitor(psi_threshold=0)
    with pytest.raises(ConfigError, match="ks_alpha"):
        DriftMonitor(ks_alpha=1.5)
    with pytest.raises(ConfigError, match="no reference"):
        DriftMonitor().compare(torch.ones(3, 2) / 2)


def _corrupt(text: str, rng: random.Random) -> str:
    """Covariate shift: keep one word in four and pad with noise tokens."""
    words = [w for w in text.split() if rng.random() < 0.25]
    return " ".join(words + rng.sample(["xq", "zv", "qk", "vj", "wx", "jj"], 4))


def test_callback_alerts_on_corrupted_validation_and_resumes(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    model = tiny_classifier()
    dm = tiny_classification_data(synthetic_size=600)
    monitor = DriftMonitor(min_samples=20)
    audit = AuditTrail(tmp_path / "audit.jsonl")
    quiet_trainer(tmp_path, max_epochs=4, limit_val_batches=0).fit(model, dm)
    trainer = quiet_trainer(tmp_path, callbacks=[monitor, audit])
    trainer.validate(model, dm, verbose=False)  # first validation: the reference
    trainer.validate(model, dm, verbose=False)  # same data: no alert
    assert monitor.reports and not monitor.reports[-1].alert
    rng = random.Random(0)
    dm.datasets["val"] = type(dm.datasets["val"])(
        [replace(r, text=_corrupt(r.text, rng)) for r in dm.records["val"]], dm._encode
    )
    trainer.validate(model, dm, verbose=False)
    assert monitor.reports[-1].alert, monitor.reports[-1]
    events = read_events(tmp_path / "audit.jsonl")
    assert [e["type"] for e in events if e["type"].startswith("drift")] == ["drift.reference", "drift.alert"]
    assert trainer.callback_metrics["drift/alert"] == 1.0
    # state survives a checkpoint round trip
    fresh = DriftMonitor(min_samples=20)
    fresh.load_state_dict(monitor.state_dict())
    assert len(fresh.reports) == 2 and fresh.compare(torch.tensor([[0.5, 0.5]] * 50)).n_reference > 0


def _write_log(path: Path, probs: torch.Tensor) -> Path:
    path.write_text("".join(json.dumps({"probs": p}) + "\n" for p in probs.tolist()))
    return path


def test_cli_drift_on_inference_logs(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    ref = _write_log(tmp_path / "ref.jsonl", _stream(1000, rng))
    same = _write_log(tmp_path / "same.jsonl", _stream(2000, rng))
    shifted = _write_log(tmp_path / "shifted.jsonl", _stream(400, rng, p_pos=0.9))
    assert cli_main(["drift", str(ref), str(same), "--window", "100"]) == 0
    assert "0 alert(s) in 20 window(s)" in capsys.readouterr().out
    assert cli_main(["drift", str(ref), str(shifted), "--out", str(tmp_path / "r.json")]) == 1
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["alerts"] == 1
    events = [e["type"] for e in read_events(tmp_path / "audit.jsonl")]
    assert events == ["drift.checked", "drift.alert"]
    (tmp_path / "bad.jsonl").write_text("{}\n")
    assert cli_main(["drift", str(ref), str(tmp_path / "bad.jsonl")]) == 2
    assert "needs 'probs'" in capsys.readouterr().err
