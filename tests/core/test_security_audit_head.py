"""Audit-log rollback: an older genuine head file, a rewritten tail, appended events.

The run is made by the production code path (``SignedCheckpointIO`` bound to a Trainer with an
``AuditTrail``), so each checkpoint's signed provenance pins the log's head exactly as in
training. Each test is one forgery from the security review; each must exit 1 from
``secure-train audit verify --public-key``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from secure_train.cli import main as cli_main
from secure_train.core.audit_head import checkpoint_heads, head_path, sign_audit_head
from secure_train.core.audit_log import AuditLog, event_hash, get_audit_log, read_events, verify
from secure_train.core.signed_file import signature_path, write_signed
from secure_train.integrity import SignedCheckpointIO, generate_keypair, load_private_key, verify_audit_head
from secure_train.monitors import AuditTrail


@dataclass
class Run:
    log: Path
    pub: Path
    priv: Path
    old_head: bytes  # a genuine head file from after the first checkpoint
    old_events: int
    ckpt_dir: Path


def _save(io: SignedCheckpointIO, path: Path, step: int) -> None:
    io.save_checkpoint({"global_step": step, "state_dict": {"w": torch.full((4,), float(step))}}, path)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    root = tmp_path / "runs" / "version_0"
    trail = AuditTrail(path=root / "audit.jsonl")
    trainer = pl.Trainer(default_root_dir=root, logger=False, callbacks=[trail], enable_progress_bar=False)
    log = get_audit_log(trainer)
    io = SignedCheckpointIO(private_key=priv)
    io.bind(trainer)
    ckpt_dir = root / "checkpoints"
    log.record("run.start", source="AuditTrail")
    _save(io, ckpt_dir / "step=1.ckpt", 1)  # pins 1 event; then checkpoint.signed; head signed over 2
    old_head, old_events = head_path(log.path).read_bytes(), log.head[0]
    for i in range(3):
        log.record("monitor.alert", source="LossSpikeMonitor", step=i, action="warn")
    _save(io, ckpt_dir / "last.ckpt", 2)  # pins 5 events
    log.record("run.end", source="AuditTrail")
    sign_audit_head(log.path, load_private_key(priv), reason="end of run")
    return Run(log.path, pub, priv, old_head, old_events, ckpt_dir)


def _verify(run: Run, *extra: str) -> int:
    return cli_main(["audit", "verify", str(run.log), "--public-key", str(run.pub), *extra])


def _rewrite(path: Path, events: list[dict]) -> None:
    """Re-chain ``events`` (seq, prev, hash recomputed) and write them: a log that verifies on its own."""
    prev = "0" * 64
    lines = []
    for seq, event in enumerate(events):
        event = {**event, "seq": seq, "prev": prev}
        event["hash"] = event_hash(event)
        prev = event["hash"]
        lines.append(json.dumps(event, sort_keys=True, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")
    assert verify(path).ok


def test_genuine_run_verifies_strictly(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    check = verify_audit_head(run.log, run.pub)
    assert check.ok and check.unsigned_tail == 0 and check.checkpoints == 2 and check.pinned_events == 5, check
    assert _verify(run) == 0
    assert "2 signed checkpoint(s) agree (newest pins 5)" in capsys.readouterr().out


def test_delete_and_rechain_with_old_head(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    events = read_events(run.log)
    del events[3]  # an alert the attacker wants gone
    _rewrite(run.log, events)
    head_path(run.log).write_bytes(run.old_head)  # genuine, older head: still matches the untouched prefix
    assert verify_audit_head(run.log, run.pub, allow_unsigned_tail=True, checkpoints=()).signed_events == 2
    assert _verify(run) == 1
    assert _verify(run, "--allow-unsigned-tail") == 1  # the tail is allowed, the checkpoint's pin is not
    err = capsys.readouterr().err
    assert "does not match the audit head signed into checkpoint" in err and "last.ckpt" in err


def test_forged_insert_with_old_head(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    events = read_events(run.log)
    forged = {**events[2], "type": "checkpoint.verified", "source": "SignedCheckpointIO"}
    forged["payload"] = {"path": str(run.ckpt_dir / "evil.ckpt"), "sha256": "0" * 64}
    events.insert(3, forged)
    _rewrite(run.log, events)
    head_path(run.log).write_bytes(run.old_head)
    assert _verify(run) == 1
    assert _verify(run, "--allow-unsigned-tail") == 1
    assert "does not match the audit head signed into checkpoint" in capsys.readouterr().err


def test_appended_tail_fails_unless_allowed(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    AuditLog(run.log).record("checkpoint.verified", source="SignedCheckpointIO", path="forged.ckpt")
    assert verify(run.log).ok  # properly chained: only the signed head can tell
    assert _verify(run) == 1
    assert "1 event(s) after the last signed head (events 7..7) are not covered" in capsys.readouterr().err
    assert _verify(run, "--allow-unsigned-tail") == 0
    assert "1 later event(s) not covered (accepted with --allow-unsigned-tail)" in capsys.readouterr().out


def test_old_head_restored_while_checkpoint_has_newer(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    head_path(run.log).write_bytes(run.old_head)  # log untouched, head file rolled back
    assert _verify(run, "--allow-unsigned-tail") == 1
    err = capsys.readouterr().err
    assert "signed head covers 2 events but signed checkpoint" in err and "(head file rolled back)" in err
    # the pin lives in the signed sidecar: deleting the checkpoint's bytes does not remove it
    (run.ckpt_dir / "last.ckpt").unlink()
    assert _verify(run, "--allow-unsigned-tail") == 1


def test_log_rolled_back_to_old_head(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run.log.read_text().splitlines(keepends=True)
    run.log.write_text("".join(lines[: run.old_events]))  # a genuine prefix, matching the old head exactly
    head_path(run.log).write_bytes(run.old_head)
    assert _verify(run) == 1
    assert "log has 2 events but signed checkpoint" in capsys.readouterr().err


def test_checkpoints_kept_elsewhere(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry"
    shutil.move(run.ckpt_dir, registry)  # the run dir no longer has them, the log's paths are stale
    head_path(run.log).write_bytes(run.old_head)
    # Limit: with no signed checkpoint to consult, an allowed tail is all an old head can say
    assert _verify(run, "--allow-unsigned-tail") == 0
    assert "no signed checkpoint found" in capsys.readouterr().out
    assert _verify(run, "--allow-unsigned-tail", "--checkpoints", str(registry)) == 1
    assert "head file rolled back" in capsys.readouterr().err
    assert _verify(run, "--checkpoints", str(registry / "last.ckpt")) == 1


def test_foreign_or_tampered_sidecar_fails(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other, _ = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub", passphrase_env=None)
    fake = run.ckpt_dir / "step=9.ckpt"
    write_signed(b"x", fake, load_private_key(other), provenance={"audit_head": {"events": 1, "head": "0" * 64}})
    assert _verify(run) == 1
    assert "step=9.ckpt.sig" in capsys.readouterr().err
    fake.unlink()
    signature_path(fake).unlink()
    sidecar = signature_path(run.ckpt_dir / "last.ckpt")
    bundle = json.loads(sidecar.read_text())
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = bundle["dsseEnvelope"]["signatures"][0]["sig"][::-1]
    sidecar.write_text(json.dumps(bundle))
    assert _verify(run) == 1
    assert "last.ckpt.sig" in capsys.readouterr().err
    heads, problems = checkpoint_heads(run.log, run.pub)
    assert [h.events for h in heads] == [1] and len(problems) == 1


def test_usage_errors(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["audit", "verify", str(run.log), "--allow-unsigned-tail"]) == 2
    assert "need --public-key" in capsys.readouterr().err
    assert _verify(run, "--checkpoints", str(run.ckpt_dir / "nope.ckpt")) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    assert cli_main(["audit", "verify", str(run.log)]) == 0
    assert "chain only" in capsys.readouterr().out


def test_fifo_named_like_a_sidecar_is_refused_unread(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.mkfifo(run.ckpt_dir / "step=7.ckpt.sig")  # opening it for reading would block forever
    assert _verify(run) == 1
    assert "step=7.ckpt.sig: missing or not a regular file" in capsys.readouterr().err
