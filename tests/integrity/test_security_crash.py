"""``kill -9`` at every step of a signed save: ``last.ckpt`` stays a verified pair, temporary files go.

Issue 11, item 7. A child process overwrites a verified ``last.ckpt`` (v1) with v2 through
:func:`write_signed` and kills itself with ``SIGKILL`` right after its k-th file-system
call (``open``, ``write``, ``fsync``, ``close``, ``replace``, ``unlink`` as seen by
``signed_file``), or in the middle of a ``write`` (half the bytes written), for every k
of the sequence. After each kill: the pair on disk verifies as v1 or v2, or the only
state in between (v2 next to the v1 sidecar, v2's signature complete in a temporary
file) is there; then the next start (``SignedCheckpointIO.load_checkpoint``) completes or
cleans up, records it in the audit log, and loads v1 or v2 with no temporary file left.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from secure_train.core import signed_file as sf
from secure_train.core.audit_log import AuditLog, get_audit_log, read_events
from secure_train.core.signed_file import open_bundle, recover_signed, signature_path, verify_file, write_signed
from secure_train.integrity import IntegrityError, SignedCheckpointIO, generate_keypair, load_private_key

CHILD = r"""
import os, signal, sys
from secure_train.core import signed_file as sf
from secure_train.core.keys import load_private_key

key_path, target, payload_path, kill_at, mode = sys.argv[1:6]
kill_at = int(kill_at)
COUNTED = {"open", "write", "fsync", "close", "replace", "unlink"}
steps = []


class KillingOs:
    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in COUNTED:
            return real

        def step(*args, **kwargs):
            steps.append(name)
            if len(steps) == kill_at and mode == "torn":
                if name == "write":  # half of this write reaches the file, then the process dies
                    fd, data = args
                    os.write(fd, memoryview(data)[: max(1, len(data) // 2)])
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(*args, **kwargs)
            if len(steps) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return step


key = load_private_key(key_path, passphrase_env=None)
payload = open(payload_path, "rb").read()
sf.os = KillingOs()
sf.write_signed(payload, target, key, provenance={"version": 2}, shard_size=1 << 16, fsync=True)
sf.os = os
print(",".join(steps))
"""


def _payload(seed: int) -> bytes:
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"global_step": seed, "state_dict": {"w": torch.randn(300, 300, generator=g)}}, buf)
    return buf.getvalue()


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def _next_start(priv: Path, root: Path) -> tuple[SignedCheckpointIO, AuditLog]:
    """A fresh plugin bound to a fresh Trainer, as at the start of the next run; its audit log."""
    plugin = SignedCheckpointIO(private_key=priv)
    trainer = pl.Trainer(default_root_dir=root, logger=False, enable_progress_bar=False)
    plugin.bind(trainer)
    return plugin, get_audit_log(trainer)


def _run_child(priv: Path, target: Path, payload: Path, kill_at: int, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(priv), str(target), str(payload), str(kill_at), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_kill_at_every_step_of_a_save_leaves_a_verified_pair_and_no_temp(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    key = load_private_key(priv, passphrase_env=None)
    v1, v2 = _payload(1), _payload(2)
    payload = tmp_path / "v2.bin"
    payload.write_bytes(v2)
    ckpt_dir = tmp_path / "ckpts"
    last = ckpt_dir / "last.ckpt"

    clean = _run_child(priv, last, payload, 0, "after")  # no kill: learn the sequence
    assert clean.returncode == 0, clean.stderr[-2000:]
    sequence = clean.stdout.strip().split(",")
    assert sequence.count("replace") == 2 and "unlink" not in sequence, sequence  # nothing removed before publishing
    kills = [(k, "after") for k in range(1, len(sequence) + 1)]
    kills += [(k, "torn") for k, name in enumerate(sequence, 1) if name == "write"]

    outcomes: dict[str, list[str]] = {}
    for k, mode in kills:
        if ckpt_dir.exists():
            for p in ckpt_dir.iterdir():
                p.unlink()
        write_signed(v1, last, key, provenance={"version": 1}, shard_size=1 << 16, fsync=False)
        proc = _run_child(priv, last, payload, k, mode)
        where = f"{mode} step {k} ({sequence[k - 1]})"
        assert proc.returncode == -signal.SIGKILL, (where, proc.returncode, proc.stderr[-2000:])

        # Right after the kill: the previous pair, the new pair, or the one recoverable state.
        temps = _temps(ckpt_dir)
        try:
            verify_file(last, pub)
            state = "v1" if last.read_bytes() == v1 else "v2"
            assert last.read_bytes() in (v1, v2), where
        except IntegrityError:
            assert last.read_bytes() == v2, where
            pending = [ckpt_dir / t for t in temps if t.startswith(".last.ckpt.sig.tmp-")]
            assert len(pending) == 1, (where, temps)
            verified = open_bundle(pending[0].read_bytes(), pub, last)
            assert verified.provenance == {"version": 2}, where
            state = "v2 pending its sidecar"

        # The next start: finish or clean up (audited), then the load verifies.
        plugin, log = _next_start(priv, tmp_path / f"run-{k}-{mode}")
        loaded = plugin.load_checkpoint(last)
        assert loaded["global_step"] in (1, 2), where
        assert loaded["global_step"] == (1 if state == "v1" else 2), (where, state)
        assert _temps(ckpt_dir) == [], (where, _temps(ckpt_dir))
        events = read_events(log.path)
        cleaned = {Path(e["payload"]["temp"]).name for e in events if e["type"].startswith("checkpoint.re")}
        cleaned |= {Path(e["payload"]["temp"]).name for e in events if e["type"] == "checkpoint.temp_removed"}
        assert cleaned == set(temps), (where, temps, events)
        if state.endswith("pending its sidecar"):
            assert [e["type"] for e in events][0] == "checkpoint.recovered", where
        assert events[-1]["type"] == "checkpoint.verified", where
        outcomes.setdefault(state, []).append(where)

    print("\nkill -9 outcomes:", json.dumps({s: len(w) for s, w in outcomes.items()}))
    assert set(outcomes) == {"v1", "v2", "v2 pending its sidecar"}, outcomes  # every kind of state was hit


def test_recovery_leaves_live_writers_alone_and_ages_out_other_hosts(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    key = load_private_key(priv, passphrase_env=None)
    last = tmp_path / "last.ckpt"
    write_signed(b"v1", last, key)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead_pid = int(dead.stdout)
        live = tmp_path / f".last.ckpt.tmp-{sf._HOST_TAG}-{sleeper.pid}-1"
        stale = tmp_path / f".last.ckpt.tmp-{sf._HOST_TAG}-{dead_pid}-1"
        legacy = tmp_path / f".last.ckpt.sig.tmp-{dead_pid}-2"  # older releases: no host tag
        foreign_new = tmp_path / f".last.ckpt.tmp-0000abcd-{dead_pid}-3"
        foreign_old = tmp_path / f".last.ckpt.tmp-0000abcd-{dead_pid}-4"
        other_file = tmp_path / ".audit.jsonl.head.json.tmp-12"  # not ours: another writer's format
        for p in (live, stale, legacy, foreign_new, foreign_old, other_file):
            p.write_bytes(b"partial")
        old = time.time() - sf.FOREIGN_STALE_AFTER - 60
        os.utime(foreign_old, (old, old))
        steps = recover_signed(tmp_path, pub)
        assert sorted((s.action, s.temp.name) for s in steps) == sorted(
            ("removed", p.name) for p in (stale, legacy, foreign_old)
        )
        assert all(s.target == last for s in steps)
        assert live.exists() and foreign_new.exists() and other_file.exists()
        verify_file(last, pub)
        assert recover_signed(tmp_path, pub) == []  # idempotent
    finally:
        sleeper.kill()
        sleeper.wait()


def test_first_save_into_a_folder_removes_abandoned_temps_audited(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    ckpt_dir = tmp_path / "ckpts"
    ckpt_dir.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = ckpt_dir / f".epoch=0-step=4.ckpt.tmp-{sf._HOST_TAG}-{int(dead.stdout)}-1"
    stale.write_bytes(b"half a checkpoint")
    plugin, log = _next_start(priv, tmp_path / "run")
    plugin.save_checkpoint({"global_step": 5, "state_dict": {"w": torch.zeros(2)}}, ckpt_dir / "last.ckpt")
    assert not stale.exists()
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt", "last.ckpt.sig"]
    types = [(e["type"], Path(e["payload"].get("temp", "")).name) for e in read_events(log.path)]
    assert types[0] == ("checkpoint.temp_removed", stale.name), types
    assert ("checkpoint.signed", "") in types
    verify_file(ckpt_dir / "last.ckpt", pub)


def test_write_failure_after_publishing_keeps_the_signature_for_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (not a kill) between the two renames: the pending signature is kept, not deleted."""
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    key = load_private_key(priv, passphrase_env=None)
    last = tmp_path / "last.ckpt"
    write_signed(b"v1" * 100, last, key)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(".sig"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(sf.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        write_signed(b"v2" * 100, last, key)
    monkeypatch.undo()
    with pytest.raises(IntegrityError, match="does not match|size"):
        verify_file(last, pub)
    # the writer is this (live) process: recovery completes the pair but never deletes its files
    steps = recover_signed(tmp_path, pub)
    assert [s.action for s in steps] == ["completed"]
    assert verify_file(last, pub).size == 200 and last.read_bytes() == b"v2" * 100
    assert _temps(tmp_path) == []
    assert signature_path(last).is_file()


@pytest.mark.slow
def test_cli_resume_after_a_killed_save_recovers_then_loads_the_new_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fit --ckpt_path last.ckpt`` right after a kill between the two renames: recovered, audited, resumed."""
    from secure_train.commands.lightning_cli import SecureTrainCLI

    root = Path(__file__).resolve().parents[2]
    priv, _ = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    monkeypatch.chdir(tmp_path)

    def fit(save_dir: Path, *extra: str) -> SecureTrainCLI:
        return SecureTrainCLI(
            args=[
                "fit",
                "--config",
                str(root / "recipes/quickstart-signed.yaml"),
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
        )

    fit(tmp_path / "runs")
    last = tmp_path / "runs" / "quickstart-signed" / "version_0" / "checkpoints" / "last.ckpt"
    newer = torch.load(last, weights_only=True)
    newer["hyper_parameters"]["lr"] = 0.002  # a genuine later save, signed by the same key
    buf = io.BytesIO()
    torch.save(newer, buf)
    payload = tmp_path / "v2.bin"
    payload.write_bytes(buf.getvalue())
    sequence = _run_child(priv, tmp_path / "probe" / "x.ckpt", payload, 0, "after").stdout.strip().split(",")
    proc = _run_child(priv, last, payload, sequence.index("replace") + 1, "after")  # dies between the renames
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with pytest.raises(IntegrityError):
        verify_file(last, load_private_key(priv, passphrase_env=None).public_key())

    cli = fit(tmp_path / "resumed", "--ckpt_path", str(last))
    assert cli.model.hparams.lr == 0.002
    assert _temps(last.parent) == []
    events = read_events(tmp_path / "resumed" / "quickstart-signed" / "version_0" / "audit.jsonl")
    recovered = [(e["payload"]["path"], e["source"]) for e in events if e["type"] == "checkpoint.recovered"]
    assert recovered == [(str(last), "SecureTrainCLI")], events
    verified = [e["payload"] for e in events if e["type"] == "checkpoint.verified"]
    assert verified[0]["snapshot_of"] == str(last)


def _pending_state(tmp_path: Path, key: Any) -> tuple[Path, Path]:
    """``last.ckpt`` = v2 next to v1's sidecar, v2's signature in a dead writer's temporary file."""
    last = tmp_path / "ckpts" / "last.ckpt"
    write_signed(b"v1" * 1000, last, key)
    elsewhere = tmp_path / "elsewhere" / "last.ckpt"
    write_signed(b"v2" * 1000, elsewhere, key)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pending = last.parent / f".last.ckpt.sig.tmp-{sf._HOST_TAG}-{int(dead.stdout)}-1"
    pending.write_bytes(signature_path(elsewhere).read_bytes())
    last.write_bytes(elsewhere.read_bytes())
    return last, pending


def test_concurrent_recoveries_complete_the_pair_once(tmp_path: Path) -> None:
    """DDP ranks all recover before loading: one completes, none fails, the pair verifies."""
    from concurrent.futures import ThreadPoolExecutor

    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    last, pending = _pending_state(tmp_path, load_private_key(priv, passphrase_env=None))
    with pytest.raises(IntegrityError):
        verify_file(last, pub)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: recover_signed(last.parent, pub), range(8)))
    done = [s for steps in results for s in steps]
    assert [(s.action, s.temp) for s in done] == [("completed", pending)]
    assert verify_file(last, pub).size == 2000 and not pending.exists()


def test_save_tolerates_a_recovery_that_finished_its_publication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    key = load_private_key(priv, passphrase_env=None)
    last = tmp_path / "last.ckpt"
    write_signed(b"v1", last, key)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if str(dst).endswith(".sig"):  # as if another process had renamed it a moment earlier
            raise FileNotFoundError(2, "No such file or directory", str(src))

    monkeypatch.setattr(sf.os, "replace", replace)
    write_signed(b"v2", last, key)
    monkeypatch.undo()
    assert verify_file(last, pub).size == 2 and _temps(tmp_path) == []
