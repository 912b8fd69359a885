"""Issue 11, item 8: every run gets its own audit log and config, whatever the logger. With a
logger that has no versioned folder (WandbLogger, none at all) runs used to share
`<save_dir>/audit.jsonl` (appended) and `<save_dir>/config.yaml` (overwritten)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from secure_train.cli import main as cli_main
from secure_train.core.audit_log import read_events, verify
from secure_train.monitors import AuditTrail
from secure_train.monitors.audit_trail import run_log_dir

BORING = [
    "--model=lightning.pytorch.demos.boring_classes.BoringModel",
    "--data=lightning.pytorch.demos.boring_classes.BoringDataModule",
    "--trainer.max_steps=2",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


def _run_files(root: Path) -> dict[str, list[Path]]:
    return {name: sorted(root.rglob(name)) for name in ("audit.jsonl", "config.yaml")}


def _assert_separate_runs(root: Path, snapshot: dict[Path, bytes]) -> list[Path]:
    """Two runs under ``root``: two folders, each with one audit log (one run) and one config;
    nothing the first run wrote was changed by the second."""
    files = _run_files(root)
    assert len(files["audit.jsonl"]) == 2 and len(files["config.yaml"]) == 2, files
    dirs = [p.parent for p in files["audit.jsonl"]]
    assert dirs == [p.parent for p in files["config.yaml"]] and dirs[0] != dirs[1]
    for log in files["audit.jsonl"]:
        assert verify(log).ok
        events = [e["type"] for e in read_events(log) if e["type"].startswith("run.")]
        assert events == ["run.start", "run.end"], (log, events)
        assert list((log.parent / "checkpoints").glob("*.ckpt")), f"no checkpoint kept with {log}"
    for path, data in snapshot.items():
        assert path.read_bytes() == data, f"{path} was changed by the second run"
    return dirs


def _fit_twice(root: Path, *extra: str, after_each=None) -> list[Path]:
    snapshot: dict[Path, bytes] = {}
    for _ in range(2):
        assert cli_main(["fit", *BORING, *extra]) == 0
        if after_each is not None:
            after_each()
        if not snapshot:
            snapshot = {p: p.read_bytes() for ps in _run_files(root).values() for p in ps}
            assert len(snapshot) == 2, snapshot
    return _assert_separate_runs(root, snapshot)


def test_cli_without_logger_two_runs_two_logs(tmp_path: Path) -> None:
    root = tmp_path / "out"
    dirs = _fit_twice(root, "--trainer.logger=false", f"--trainer.default_root_dir={root}")
    assert all(d.parent == root and d.name.startswith("run-") for d in dirs), dirs
    assert not (root / "audit.jsonl").exists() and not (root / "config.yaml").exists()
    assert not (root / "checkpoints").exists()  # each run's checkpoints stay with its log


@pytest.mark.slow
def test_cli_wandb_offline_two_runs_two_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    logger = ["--trainer.logger=lightning.pytorch.loggers.WandbLogger", f"--trainer.logger.save_dir={root}",
              "--trainer.logger.project=proj"]  # fmt: skip
    dirs = _fit_twice(root, *logger, after_each=wandb.finish)  # a finished run, as at process exit
    # <save_dir>/<project>/<run id>: the folder whose checkpoints/ Lightning uses for that run
    assert all(d.parent == root / "proj" for d in dirs), dirs
    assert not (root / "audit.jsonl").exists() and not (root / "config.yaml").exists()


def test_python_trainer_runs_get_their_own_folders(tmp_path: Path) -> None:
    """Without a logger, two Trainers on one root; and a fixed CSV version that already holds a
    run's audit log is not reused."""
    logs = []
    for _ in range(2):
        trail = AuditTrail()
        trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, max_steps=1, limit_val_batches=0,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[trail])  # fmt: skip
        trainer.fit(BoringModel())
        assert trail.audit_log is not None
        logs.append(trail.audit_log.path)
        assert run_log_dir(trainer) == trail.audit_log.path.parent  # stable for the trainer
    assert logs[0] != logs[1] and all(p.is_file() for p in logs)
    assert [len(read_events(p)) for p in logs] == [2, 2]
    fixed = []
    for _ in range(2):
        trail = AuditTrail()
        trainer = pl.Trainer(logger=CSVLogger(tmp_path / "csv", name="n", version="fixed"), max_steps=1,
                             limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False, callbacks=[trail])  # fmt: skip
        trainer.fit(BoringModel())
        assert trail.audit_log is not None
        fixed.append(trail.audit_log.path)
    assert fixed[0] == tmp_path / "csv" / "n" / "fixed" / "audit.jsonl"
    assert fixed[1].parent.parent == fixed[0].parent and fixed[1].parent.name.startswith("run-")
    assert [len(read_events(p)) for p in fixed] == [2, 2]
    assert os.path.commonpath(fixed) == str(fixed[0].parent)
