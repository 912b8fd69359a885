"""``fit --ckpt_path`` with signing: hyper-parameters and weights come from the same verified bytes.

The attack (issue 11, item 3): while ``secure-train fit --ckpt_path last.ckpt`` runs, a
thread keeps swapping ``last.ckpt`` between the genuine signed file and an unsigned copy
with other hyper-parameters (``lr``, ``warmup_steps``) and other weights. Each run must
either be refused or use the genuine checkpoint for everything: the merged config
(``config.yaml``), the logged ``hparams.yaml``, the model's hyper-parameters and weights,
and the ``checkpoint.verified`` audit event.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from secure_train.cli import SecureTrainCLI
from secure_train.core.audit_log import read_events
from secure_train.core.errors import SecureTrainError
from secure_train.integrity import IntegrityError, generate_keypair, load_checkpoint, signature_path

ROOT = Path(__file__).resolve().parents[2]
GENUINE_LR, GENUINE_WARMUP = 0.001, 50
FORGED_LR, FORGED_WARMUP = 0.5, 7
TRIES = 10


def _args(save_dir: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(ROOT / "recipes/quickstart-signed.yaml"),
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={save_dir}",
        "--data.init_args.synthetic_size=64",
        "--data.init_args.batch_size=32",
        "--data.init_args.max_length=16",
        *extra,
    ]


@pytest.fixture
def signed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A genuine signed ``last.ckpt`` from a one-step quickstart fit; returns (last.ckpt, public key)."""
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    monkeypatch.chdir(tmp_path)
    SecureTrainCLI(args=_args(tmp_path / "runs"))
    last = tmp_path / "runs" / "quickstart-signed" / "version_0" / "checkpoints" / "last.ckpt"
    assert signature_path(last).is_file()
    return last, pub


def _forged_copy(genuine: Path, out: Path) -> dict[str, torch.Tensor]:
    """An unsigned copy of ``genuine`` with other hyper-parameters and zeroed weights."""
    ckpt: dict[str, Any] = torch.load(genuine, weights_only=True)
    assert ckpt["hyper_parameters"]["lr"] == GENUINE_LR
    ckpt["hyper_parameters"]["lr"] = FORGED_LR
    ckpt["hyper_parameters"]["warmup_steps"] = FORGED_WARMUP
    ckpt["state_dict"] = {k: torch.zeros_like(v) for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, out)
    return ckpt["state_dict"]


class _Swapper(threading.Thread):
    """Swap ``target`` between two files by atomic rename, as fast as it can."""

    def __init__(self, target: Path, genuine: Path, forged: Path) -> None:
        super().__init__(daemon=True)
        self.target, self.sources, self.stop = target, (genuine, forged), threading.Event()
        self.swaps = 0

    def run(self) -> None:
        tmp = self.target.with_name(".swap")
        while not self.stop.is_set():
            for src in self.sources:
                tmp.unlink(missing_ok=True)
                os.link(src, tmp)
                os.replace(tmp, self.target)
                self.swaps += 1
                time.sleep(0.0002)


@pytest.mark.slow
def test_swap_loop_never_gets_unsigned_bytes_into_config_hparams_or_model(
    tmp_path: Path,
    signed_run: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last, pub = signed_run
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where the snapshots go
    genuine_state = load_checkpoint(last, pub)["state_dict"]
    genuine = tmp_path / "genuine.ckpt"
    os.link(last, genuine)
    forged = tmp_path / "forged.ckpt"
    _forged_copy(genuine, forged)

    swapper = _Swapper(last, genuine, forged)
    swapper.start()
    refused, completed, contaminated = 0, 0, []
    try:
        for i in range(TRIES):
            save_dir = tmp_path / f"resume{i}"
            try:
                cli = SecureTrainCLI(args=_args(save_dir, "--ckpt_path", str(last)))
            except SecureTrainError as err:  # the unsigned copy was read: refused, fine
                assert isinstance(err, IntegrityError), err
                refused += 1
                continue
            completed += 1
            run_dir = save_dir / "quickstart-signed" / "version_0"
            saved = yaml.safe_load((run_dir / "config.yaml").read_text())
            config = saved["model"]["init_args"]
            snapshot = cli.ckpt_snapshot
            assert saved["ckpt_path"] == str(last)  # config.yaml names the file as given ...
            assert cli.trainer.ckpt_path == str(snapshot.path) != str(last)  # ... the Trainer loaded the snapshot
            hparams = yaml.safe_load((run_dir / "hparams.yaml").read_text())
            verified = [e for e in read_events(run_dir / "audit.jsonl") if e["type"] == "checkpoint.verified"]
            state = cli.model.state_dict()
            seen = {
                "config": (config["lr"], config["warmup_steps"]),
                "hparams.yaml": (hparams["lr"], hparams["warmup_steps"]),
                "model.hparams": (cli.model.hparams.lr, cli.model.hparams.warmup_steps),
            }
            bad = [where for where, value in seen.items() if value != (GENUINE_LR, GENUINE_WARMUP)]
            if any(not torch.equal(state[k], genuine_state[k]) for k in genuine_state):
                bad.append("weights")
            if len(verified) != 1 or verified[0]["payload"].get("snapshot_of") != str(last):
                bad.append(f"audit {verified}")
            if bad:
                contaminated.append((i, bad))
            snapshot.cleanup()
            assert not snapshot.path.parent.exists()
    finally:
        swapper.stop.set()
        swapper.join()
    with capsys.disabled():
        print(
            f"\nswap loop: {len(contaminated)} of {TRIES} runs took unsigned bytes "
            f"({completed} completed on genuine bytes, {refused} refused, {swapper.swaps} swaps)"
        )
    assert not contaminated, contaminated
    assert list(private_tmp.iterdir()) == []  # refused runs leave no snapshot either
    assert completed >= 1 and swapper.swaps > TRIES, (completed, refused, swapper.swaps)


def test_snapshot_is_private_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verified snapshot: same name and sidecar, 0600 files in a 0700 directory, removed on cleanup."""
    from secure_train.core.signed_file import verify_file, write_signed
    from secure_train.integrity.cli_support import snapshot_ckpt_path

    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    from secure_train.integrity import load_private_key

    ckpt = tmp_path / "last.ckpt"
    write_signed(b"genuine bytes", ckpt, load_private_key(priv))
    config = {
        "ckpt_path": str(ckpt),
        "trainer": {"callbacks": [{"class_path": "secure_train.integrity.CheckpointSigning"}]},
    }
    snap = snapshot_ckpt_path(config)
    assert snap is not None and snap.path.name == "last.ckpt" and snap.source == ckpt
    assert snap.path.read_bytes() == b"genuine bytes"
    verify_file(snap.path, pub)
    assert stat.S_IMODE(snap.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(snap.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(signature_path(snap.path).stat().st_mode) == 0o600
    ckpt.write_bytes(b"swapped after the snapshot")  # the original changes: the snapshot does not
    assert snap.path.read_bytes() == b"genuine bytes"
    directory = snap.path.parent
    snap.cleanup()
    assert not directory.exists()
    with pytest.raises(IntegrityError, match="does not match|size"):
        snapshot_ckpt_path(config)
    assert snapshot_ckpt_path({"ckpt_path": str(ckpt), "trainer": {}}) is None  # signing not configured


def test_encrypted_snapshot_gives_the_merge_only_verified_hyper_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from secure_train.core.signed_file import write_signed
    from secure_train.integrity import encrypt, load_private_key
    from secure_train.integrity.cli_support import snapshot_ckpt_path
    from secure_train.integrity.encryption import encryption_info

    priv, _ = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    key = bytes(range(32))
    monkeypatch.setenv("SECURE_TRAIN_ENCRYPTION_KEY", key.hex())
    buf = io.BytesIO()
    torch.save({"hyper_parameters": {"lr": 0.01}, "state_dict": {"w": torch.ones(3)}}, buf)
    ckpt = tmp_path / "last.ckpt"
    write_signed(encrypt(buf.getvalue(), key), ckpt, load_private_key(priv), encryption=encryption_info(key))
    signing = {"class_path": "secure_train.integrity.CheckpointSigning", "init_args": {"encryption_key": "env"}}
    config = {"ckpt_path": str(ckpt), "trainer": {"callbacks": [signing]}}
    snap = snapshot_ckpt_path(config)
    assert snap is not None and snap.hparams_path is not None
    assert snap.path.read_bytes() == ckpt.read_bytes()  # the Trainer gets the encrypted, signed copy
    assert torch.load(snap.hparams_path, weights_only=True) == {"hyper_parameters": {"lr": 0.01}}
    assert stat.S_IMODE(snap.hparams_path.stat().st_mode) == 0o600
    snap.cleanup()
    monkeypatch.delenv("SECURE_TRAIN_ENCRYPTION_KEY")
    with pytest.raises(IntegrityError, match="encryption key is needed"):
        snapshot_ckpt_path(config)  # encryption_key="env", but the variable is unset
    with pytest.raises(IntegrityError, match="encryption key is needed"):
        snapshot_ckpt_path({"ckpt_path": str(ckpt), "trainer": {"callbacks": [{"class_path": "CheckpointSigning"}]}})


@pytest.mark.slow
def test_encrypted_checkpoint_resumes_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the snapshot, LightningCLI's merge parsed the ciphertext and resume failed."""
    priv, _ = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    monkeypatch.setenv("SECURE_TRAIN_ENCRYPTION_KEY", bytes(range(32)).hex())
    monkeypatch.chdir(tmp_path)
    encrypted = "--trainer.callbacks.init_args.encryption_key=env"
    SecureTrainCLI(args=_args(tmp_path / "runs", encrypted))
    last = tmp_path / "runs" / "quickstart-signed" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.read_bytes().startswith(b"STAESGCM1")
    cli = SecureTrainCLI(args=_args(tmp_path / "resumed", encrypted, "--trainer.max_steps=2", "--ckpt_path", str(last)))
    assert cli.trainer.global_step == 2 and cli.model.hparams.lr == GENUINE_LR
    events = read_events(tmp_path / "resumed" / "quickstart-signed" / "version_0" / "audit.jsonl")
    verified = [e["payload"] for e in events if e["type"] == "checkpoint.verified"]
    assert [v["snapshot_of"] for v in verified] == [str(last)]
