import subprocess
import sys
from pathlib import Path

import pytest

from secure_train.cli import main
from secure_train.core.audit_log import read_events, verify

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_recipe_end_to_end(tmp_path):
    """The README's quickstart command, shortened to a few steps."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "secure_train",
            "fit",
            "--config",
            str(ROOT / "recipes/quickstart.yaml"),
            "--trainer.max_steps=6",
            "--trainer.log_every_n_steps=2",
            "--trainer.limit_val_batches=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--data.init_args.synthetic_size=300",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "quickstart" / "version_0"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert list((run_dir / "checkpoints").glob("*.ckpt"))
    assert verify(run_dir / "audit.jsonl").ok
    types = [e["type"] for e in read_events(run_dir / "audit.jsonl")]
    assert types[0] == "run.start" and types[-1] == "run.end", types

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "secure_train",
            "validate",
            "--config",
            str(ROOT / "recipes/quickstart.yaml"),
            "--ckpt_path",
            str(run_dir / "checkpoints" / "last.ckpt"),
            "--trainer.limit_val_batches=2",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--data.init_args.synthetic_size=300",
            "--trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val/acc" in proc.stdout
    audit = tmp_path / "quickstart" / "version_1" / "audit.jsonl"
    events = [e for e in read_events(audit) if e["type"].startswith("run.")]
    assert [(e["type"], e["payload"]["stage"]) for e in events] == [("run.start", "validate"), ("run.end", "validate")]


def test_bad_data_path_is_one_line(tmp_path, capsys):
    code = main(
        [
            "fit",
            "--config",
            str(ROOT / "recipes/quickstart.yaml"),
            "--trainer.max_steps=1",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--data.init_args.train_path=/nope/train.tsv",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "secure-train: error: /nope/train.tsv: no such file"


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_every_recipe_parses(recipe):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(ROOT / "recipes" / recipe), "--print_config"])
    assert exc.value.code == 0


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "fit",
        "audit",
        "keygen",
        "verify",
        "export",
        "scan",
        "data",
        "gate",
        "approve",
        "drift",
        "diff-train",
    ):
        assert name in out
