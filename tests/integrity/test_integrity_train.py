"""CheckpointSigning in real Trainer runs: top-k rotation, last.ckpt, resume with verification, audit head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ddp_trainer, quiet_trainer, tiny_classification_data, tiny_classifier
from lightning.pytorch.callbacks import ModelCheckpoint

from secure_train.core.audit_log import read_events
from secure_train.integrity import (
    CheckpointSigning,
    IntegrityError,
    SignedCheckpointIO,
    generate_keypair,
    verify_audit_head,
    verify_file,
)
from secure_train.monitors import AuditTrail


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)


def _fit(root: Path, keys: tuple[Path, Path], *, max_steps: int, ckpt_path: str | None = None, **signing) -> tuple:
    priv, pub = keys
    ckpt_cb = ModelCheckpoint(
        dirpath=root / "ckpts", save_top_k=2, monitor="step", mode="max", every_n_train_steps=2, save_last=True
    )
    trail = AuditTrail(path=root / "audit.jsonl", config={"seed": 0})
    signer = CheckpointSigning(private_key=priv, public_key=pub, **signing)
    trainer = quiet_trainer(
        root, max_steps=max_steps, enable_checkpointing=True, callbacks=[ckpt_cb, signer, trail], limit_val_batches=0
    )
    trainer.fit(tiny_classifier(), tiny_classification_data(), ckpt_path=ckpt_path)
    return trainer, signer


@pytest.mark.slow
def test_every_checkpoint_signed_rotation_removes_sidecars_and_resume_verifies(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    _, pub = keys
    trainer, signer = _fit(tmp_path, keys, max_steps=8)
    ckpt_dir = tmp_path / "ckpts"
    ckpts = sorted(p.name for p in ckpt_dir.glob("*.ckpt"))
    sigs = sorted(p.name for p in ckpt_dir.glob("*.sig"))
    assert len(ckpts) == 3 and "last.ckpt" in ckpts  # top-2 + last after 4 saves: 2 rotated out
    assert sigs == sorted(c + ".sig" for c in ckpts), "rotation must remove sidecars with their checkpoints"
    for name in ckpts:
        signed = verify_file(ckpt_dir / name, pub)
        assert signed.provenance["config_sha256"] is not None
        assert signed.provenance["code_version"] is None or len(signed.provenance["code_version"]) >= 40
    assert verify_file(ckpt_dir / "last.ckpt", pub).provenance["global_step"] == 8
    events = read_events(tmp_path / "audit.jsonl")
    types = [e["type"] for e in events]
    assert types.count("checkpoint.signed") == 8  # 4 saves, each a top-k file and last.ckpt
    assert types.count("checkpoint.removed") >= 2
    assert types[-1] == "run.end"
    head = verify_audit_head(tmp_path / "audit.jsonl", pub)
    assert head.ok and head.unsigned_tail == 0, head  # the final head covers run.end
    assert head.checkpoints == 3 and head.pinned_events > 0, head  # and agrees with every signed checkpoint's pin
    assert "BEGIN" not in (tmp_path / "audit.jsonl").read_text()

    # resume from last.ckpt: verified before loading, recorded in the audit log
    root2 = tmp_path / "resume"
    root2.mkdir()
    (root2 / "ckpts").mkdir()
    trainer2, _ = _fit(root2, keys, max_steps=10, ckpt_path=str(ckpt_dir / "last.ckpt"))
    assert trainer2.global_step == 10
    verified = [e for e in read_events(root2 / "audit.jsonl") if e["type"] == "checkpoint.verified"]
    assert verified and verified[0]["payload"]["path"].endswith("last.ckpt")

    # tampered checkpoint: resume is refused before any byte is unpickled
    last = ckpt_dir / "last.ckpt"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01
    last.write_bytes(bytes(data))
    root3 = tmp_path / "tampered"
    root3.mkdir()
    calls: list[object] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(args)
        return real_load(*args, **kwargs)

    torch.load = spy  # type: ignore[assignment]
    try:
        with pytest.raises(IntegrityError, match=r"last\.ckpt: content does not match its signature"):
            _fit(root3, keys, max_steps=10, ckpt_path=str(last))
    finally:
        torch.load = real_load  # type: ignore[assignment]
    assert calls == []
    refused = [e for e in read_events(root3 / "audit.jsonl") if e["type"] == "checkpoint.refused"]
    assert refused and "does not match" in refused[0]["payload"]["reason"]


def test_unsigned_checkpoint_refused_on_resume(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    plain = quiet_trainer(tmp_path / "plain", max_steps=2, enable_checkpointing=True, limit_val_batches=0)
    plain.fit(tiny_classifier(), tiny_classification_data())
    unsigned = next((tmp_path / "plain").rglob("*.ckpt"))
    with pytest.raises(IntegrityError, match="unsigned: no signature file"):
        _fit(tmp_path / "signed", keys, max_steps=4, ckpt_path=str(unsigned))


def test_async_save_signs_every_checkpoint(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    _, pub = keys
    trainer, signer = _fit(tmp_path, keys, max_steps=6, async_save=True)
    assert isinstance(trainer.strategy.checkpoint_io, SignedCheckpointIO)
    ckpts = sorted((tmp_path / "ckpts").glob("*.ckpt"))
    assert len(ckpts) == 3
    for ckpt in ckpts:
        verify_file(ckpt, pub)
    assert sorted(p.name for p in (tmp_path / "ckpts").glob("*.sig")) == sorted(c.name + ".sig" for c in ckpts)


@pytest.mark.ddp
def test_ddp_rank_zero_signs_once(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    ckpt_cb = ModelCheckpoint(dirpath=tmp_path / "ckpts", save_last=True)
    trainer = ddp_trainer(
        tmp_path,
        max_steps=2,
        enable_checkpointing=True,
        callbacks=[ckpt_cb, CheckpointSigning(private_key=priv), AuditTrail(path=tmp_path / "audit.jsonl")],
    )
    trainer.fit(tiny_classifier(), tiny_classification_data())
    ckpts = sorted((tmp_path / "ckpts").glob("*.ckpt"))
    assert len(ckpts) == 2
    for ckpt in ckpts:
        assert verify_file(ckpt, pub).provenance["global_step"] == 2
    signed = [e["payload"]["path"] for e in read_events(tmp_path / "audit.jsonl") if e["type"] == "checkpoint.signed"]
    # each file signed once (one writer, not one per rank); ddp_spawn's own hand-back file also goes through the IO
    assert sorted(signed[:2]) == [str(c) for c in ckpts]
    assert len(signed) == 3 and signed[2].endswith(".temp.ckpt")
    assert verify_audit_head(tmp_path / "audit.jsonl", pub).ok
