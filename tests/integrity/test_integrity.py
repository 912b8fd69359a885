"""Signed files: tamper suite, atomicity, model_signing interop, encryption, export, audit head, CLI."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.cli import main as cli_main
from secure_train.core import signed_file as signed_file_module
from secure_train.core.audit_log import AuditLog, read_events
from secure_train.core.errors import ConfigError
from secure_train.integrity import (
    IntegrityError,
    SignedCheckpointIO,
    export_checkpoint,
    generate_keypair,
    load_checkpoint,
    load_private_key,
    sign_audit_head,
    signature_path,
    verify_audit_head,
    verify_file,
    write_signed,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)


def _checkpoint(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "global_step": 7,
        "state_dict": {
            "encoder.weight": torch.randn(64, 64, generator=g),
            "encoder.bias": torch.randn(64, generator=g),
            "head.weight": torch.randn(2, 64, generator=g),
        },
    }


def _save_signed(path: Path, key_path: Path, seed: int = 0, shard_size: int = 4096) -> None:
    plugin = SignedCheckpointIO(private_key=key_path, shard_size=shard_size)
    plugin.save_checkpoint(_checkpoint(seed), path)


# ---------------------------------------------------------------- tamper suite
def test_clean_checkpoint_verifies_and_loads(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    ckpt = tmp_path / "run" / "epoch=0.ckpt"
    _save_signed(ckpt, priv)
    signed = verify_file(ckpt, pub)
    assert signed.name == "epoch=0.ckpt" and signed.size == ckpt.stat().st_size and len(signed.shards) > 1
    loaded = load_checkpoint(ckpt, pub)
    assert torch.equal(loaded["state_dict"]["head.weight"], _checkpoint()["state_dict"]["head.weight"])


def test_tamper_suite_every_case_refused(tmp_path: Path, keys: tuple[Path, Path], monkeypatch) -> None:
    """100 single-byte flips, truncation, appended bytes, foreign signature, wrong key, rename, swapped tensor."""
    priv, pub = keys
    ckpt = tmp_path / "a" / "model.ckpt"
    _save_signed(ckpt, priv)
    original = ckpt.read_bytes()
    loads: list[object] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    refused = 0
    rng = random.Random(1234)

    def expect_refused(path: Path, key: Path | ec.EllipticCurvePublicKey, match: str) -> None:
        nonlocal refused
        with pytest.raises(IntegrityError, match=match):
            load_checkpoint(path, key)
        refused += 1

    for _ in range(100):
        pos = rng.randrange(len(original))
        flipped = bytearray(original)
        flipped[pos] ^= 1 << rng.randrange(8)
        ckpt.write_bytes(bytes(flipped))
        expect_refused(ckpt, pub, "content does not match its signature")
    ckpt.write_bytes(original[:-1])
    expect_refused(ckpt, pub, "truncated")
    ckpt.write_bytes(original[: len(original) // 2])
    expect_refused(ckpt, pub, "truncated")
    ckpt.write_bytes(original + b"\x00")
    expect_refused(ckpt, pub, "bytes appended")
    ckpt.write_bytes(original)
    # a valid signature of another checkpoint with the same name, signed by the same key
    other = tmp_path / "b" / "model.ckpt"
    _save_signed(other, priv, seed=1)
    shutil.copy(signature_path(other), signature_path(ckpt))
    expect_refused(ckpt, pub, "does not match its signature")
    # restore the right signature; then the wrong public key
    _save_signed(ckpt, priv)
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    expect_refused(ckpt, stranger, "signed by another key")
    # renamed file (with its sidecar)
    renamed = ckpt.with_name("best.ckpt")
    shutil.copy(ckpt, renamed)
    shutil.copy(signature_path(ckpt), signature_path(renamed))
    expect_refused(renamed, pub, "made for a file named 'model.ckpt', not 'best.ckpt'")
    # a tensor swapped inside a validly structured checkpoint
    swapped = _checkpoint()
    swapped["state_dict"]["head.weight"] = torch.zeros(2, 64)
    buf = io.BytesIO()
    torch.save(swapped, buf)  # same structure and size as the signed file
    assert len(buf.getvalue()) == len(original)
    ckpt.write_bytes(buf.getvalue())
    expect_refused(ckpt, pub, "does not match its signature")
    # unsigned
    signature_path(ckpt).unlink()
    expect_refused(ckpt, pub, "unsigned")
    assert refused == 108
    assert loads == [], "torch.load ran on a refused file"


def test_edited_signed_statement_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    import base64
    import json

    priv, pub = keys
    ckpt = tmp_path / "m.ckpt"
    _save_signed(ckpt, priv)
    bundle = json.loads(signature_path(ckpt).read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["secure_train"]["provenance"]["global_step"] = 999
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature_path(ckpt).write_text(json.dumps(bundle))
    with pytest.raises(IntegrityError, match="signature in m.ckpt.sig is not valid"):
        verify_file(ckpt, pub)
    signature_path(ckpt).write_text("{not json")
    with pytest.raises(IntegrityError, match="malformed"):
        verify_file(ckpt, pub)


def test_signature_covers_provenance(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    data = os.urandom(10_000)
    write_signed(data, tmp_path / "f.bin", load_private_key(priv), provenance={"run_id": "r1", "dp_epsilon": 3.0})
    assert verify_file(tmp_path / "f.bin", pub).provenance == {"run_id": "r1", "dp_epsilon": 3.0}


# ---------------------------------------------------------------- atomicity
def test_crash_between_checkpoint_and_signature_leaves_nothing_that_verifies(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    priv, pub = keys
    ckpt = tmp_path / "last.ckpt"
    _save_signed(ckpt, priv, seed=0)
    old_bytes = ckpt.read_bytes()
    plugin = SignedCheckpointIO(private_key=priv)

    def crash() -> None:
        raise KeyboardInterrupt("injected crash")

    plugin._before_signature = crash
    with pytest.raises(KeyboardInterrupt):
        plugin.save_checkpoint(_checkpoint(seed=1), ckpt)
    # the old pair is untouched and still verifies as the OLD content; no temp files left
    assert ckpt.read_bytes() == old_bytes
    verify_file(ckpt, pub)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "last.ckpt", "last.ckpt.sig"]


def test_crash_after_checkpoint_rename_before_signature_rename(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch
) -> None:
    priv, pub = keys
    ckpt = tmp_path / "last.ckpt"
    _save_signed(ckpt, priv, seed=0)
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if str(dst).endswith(".sig"):
            raise OSError("injected crash before the signature is renamed into place")
        real_replace(src, dst)

    monkeypatch.setattr(signed_file_module.os, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        _save_signed(ckpt, priv, seed=1)
    monkeypatch.undo()
    # the new checkpoint is in place next to the old sidecar: refused; its signature is kept
    # in a temporary file, which recovery (the next start) renames into place
    with pytest.raises(IntegrityError, match="does not match|size"):
        verify_file(ckpt, pub)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.sig.tmp-")
    assert [s.action for s in signed_file_module.recover_signed(tmp_path, pub)] == ["completed"]
    verify_file(ckpt, pub)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


CRASH_SCRIPT = """
import os, sys, torch
from secure_train.integrity import SignedCheckpointIO
plugin = SignedCheckpointIO(private_key=sys.argv[1])
plugin._before_signature = lambda: os._exit(3)  # the process dies: no cleanup, no finally
plugin.save_checkpoint({"w": torch.arange(100000)}, sys.argv[2])
"""


@pytest.mark.slow
def test_killed_process_leaves_nothing_that_verifies(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    target = tmp_path / "ckpts" / "step=5.ckpt"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(priv), str(target)], capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]
    files = list(target.parent.iterdir())
    assert files, "the temporary checkpoint should have been written before the crash"
    assert not target.exists()
    for f in files:
        with pytest.raises(IntegrityError):
            verify_file(f, pub)


# ---------------------------------------------------------------- model_signing interop
def _model_signing():
    """model_signing when the sigstore extra is installed (a skip otherwise); a broken install fails."""
    import importlib.util

    if importlib.util.find_spec("model_signing") is None:
        pytest.skip("the sigstore extra (model-signing) is not installed")
    import model_signing

    return model_signing


def _model_signing_cli() -> list[str]:
    exe = shutil.which("model_signing", path=os.path.dirname(sys.executable)) or shutil.which("model_signing")
    return [exe] if exe else [sys.executable, "-m", "model_signing"]


def test_model_signing_cli_verifies_our_signature(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    _model_signing()
    priv, pub = keys
    ckpt = tmp_path / "epoch=1-step=10.ckpt"
    _save_signed(ckpt, priv)
    cmd = [*_model_signing_cli(), "verify", "key", str(ckpt), "--signature", str(signature_path(ckpt))]
    ok = subprocess.run([*cmd, "--public_key", str(pub)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout
    data = bytearray(ckpt.read_bytes())
    data[100] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    bad = subprocess.run([*cmd, "--public_key", str(pub)], capture_output=True, text=True)
    assert bad.returncode != 0 and "Verification failed" in bad.stdout + bad.stderr


def test_we_verify_a_model_signing_signature(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    model_signing = _model_signing()

    priv, pub = keys
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(50_000))
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(f, signature_path(f))
    assert verify_file(f, pub).sha256
    f.write_bytes(os.urandom(50_000))
    with pytest.raises(IntegrityError, match="SHA-256 differs"):
        verify_file(f, pub)


# ---------------------------------------------------------------- encryption at rest
def test_encrypted_checkpoint(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    aes = os.urandom(32)
    plugin = SignedCheckpointIO(private_key=priv, encryption_key=aes)
    ckpt = tmp_path / "enc.ckpt"
    plugin.save_checkpoint(_checkpoint(), ckpt)
    raw = ckpt.read_bytes()
    assert raw.startswith(b"STAESGCM1") and b"encoder.weight" not in raw
    verify_file(ckpt, pub)  # the signature covers the ciphertext
    assert torch.equal(
        plugin.load_checkpoint(ckpt)["state_dict"]["encoder.bias"], _checkpoint()["state_dict"]["encoder.bias"]
    )
    with pytest.raises(IntegrityError, match="encryption key is needed"):
        load_checkpoint(ckpt, pub)
    with pytest.raises(IntegrityError, match="another key"):
        load_checkpoint(ckpt, pub, encryption_key=os.urandom(32))


# ---------------------------------------------------------------- export
def test_export_safetensors_signed(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from safetensors.torch import load

    priv, pub = keys
    ckpt = tmp_path / "m.ckpt"
    _save_signed(ckpt, priv)
    log = AuditLog(tmp_path / "audit.jsonl")
    result = export_checkpoint(
        ckpt, tmp_path / "model.safetensors", public_key=pub, private_key=load_private_key(priv), audit_log=log
    )
    signed = verify_file(result.path, pub)
    assert signed.provenance["source_sha256"] == verify_file(ckpt, pub).sha256
    assert signed.provenance["source"]["global_step"] == 7
    tensors = load(result.path.read_bytes())
    assert set(tensors) == set(_checkpoint()["state_dict"])
    assert torch.equal(tensors["encoder.weight"], _checkpoint()["state_dict"]["encoder.weight"])
    assert [e["type"] for e in read_events(log.path)] == ["checkpoint.verified", "model.exported"]

    def gate(ctx) -> None:
        raise ConfigError(f"gate refused {ctx.checkpoint_path.name}")

    with pytest.raises(ConfigError, match="gate refused m.ckpt"):
        export_checkpoint(
            ckpt,
            tmp_path / "refused.safetensors",
            public_key=pub,
            private_key=load_private_key(priv),
            checks=[gate],
            audit_log=log,
        )
    assert not (tmp_path / "refused.safetensors").exists()
    assert read_events(log.path)[-1]["type"] == "model.export_refused"
    ckpt.write_bytes(ckpt.read_bytes() + b"!")
    with pytest.raises(IntegrityError):
        export_checkpoint(ckpt, tmp_path / "x.safetensors", public_key=pub, private_key=load_private_key(priv))
    assert not (tmp_path / "x.safetensors").exists()


# ---------------------------------------------------------------- signed audit head
def test_signed_audit_head_detects_truncation(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    key = load_private_key(priv)
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.record("checkpoint.signed", step=i)
    sign_audit_head(log.path, key, reason="checkpoint")
    assert verify_audit_head(log.path, pub).ok
    log.record("run.end")
    later = verify_audit_head(log.path, pub)  # an event after the last signed head: not vouched for
    assert not later.ok and later.unsigned_tail == 1 and "not covered by any signature" in (later.error or "")
    later = verify_audit_head(log.path, pub, allow_unsigned_tail=True)
    assert later.ok and later.unsigned_tail == 1
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:4]))  # chain still valid, tail cut
    check = verify_audit_head(log.path, pub)
    assert not check.ok and "truncated" in (check.error or "")
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    log.path.write_text("".join(lines))
    assert "not valid" in (verify_audit_head(log.path, stranger).error or "")
    # rewritten history: a different log of the same length
    other = AuditLog(tmp_path / "other" / "audit.jsonl")
    for i in range(6):
        other.record("checkpoint.signed", step=i + 100)
    shutil.copy(other.path, log.path)
    assert "does not match the signed head" in (verify_audit_head(log.path, pub).error or "")


# ---------------------------------------------------------------- CLI
def test_cli_keygen_verify_export_audit(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)
    key, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    assert cli_main(["keygen", "--out", str(key)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600 and pub.exists()
    out = capsys.readouterr().out
    assert "fingerprint" in out and "BEGIN" not in out
    ckpt = tmp_path / "m.ckpt"
    _save_signed(ckpt, key)
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub)]) == 0
    assert "OK:" in capsys.readouterr().out
    assert (
        cli_main(
            [
                "export",
                str(ckpt),
                "--out",
                str(tmp_path / "m.safetensors"),
                "--public-key",
                str(pub),
                "--signing-key",
                str(key),
            ]
        )
        == 2
    )
    assert "no gate attestation" in capsys.readouterr().err  # export is gated by default
    assert (
        cli_main(
            [
                "export",
                str(ckpt),
                "--out",
                str(tmp_path / "m.safetensors"),
                "--public-key",
                str(pub),
                "--signing-key",
                str(key),
                "--allow-ungated",
            ]
        )
        == 0
    )
    assert "WITHOUT a gate attestation" in capsys.readouterr().out
    assert "model.export_ungated" in [e["type"] for e in read_events(tmp_path / "audit.jsonl")]
    assert cli_main(["verify", str(tmp_path / "m.safetensors"), "--public-key", str(pub)]) == 0
    capsys.readouterr()
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub)]) == 1
    assert "m.ckpt: size is" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "export",
                str(ckpt),
                "--out",
                str(tmp_path / "y.safetensors"),
                "--public-key",
                str(pub),
                "--signing-key",
                str(key),
                "--allow-ungated",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "secure-train: error:" in err and "truncated" in err
    os.chmod(key, 0o644)
    assert (
        cli_main(
            [
                "export",
                str(tmp_path / "m.safetensors"),
                "--out",
                str(tmp_path / "z.safetensors"),
                "--public-key",
                str(pub),
                "--signing-key",
                str(key),
                "--allow-ungated",
            ]
        )
        == 2
    )
    assert "accessible by group or others" in capsys.readouterr().err
    os.chmod(key, 0o600)
    log = AuditLog(tmp_path / "head-audit.jsonl")
    log.record("run.start")
    sign_audit_head(log.path, load_private_key(key))
    assert cli_main(["audit", "verify", str(log.path), "--public-key", str(pub)]) == 0
    assert "signed head covers 1" in capsys.readouterr().out
    log.path.write_text("")
    assert cli_main(["audit", "verify", str(log.path), "--public-key", str(pub)]) == 1
    assert "truncated" in capsys.readouterr().err


def test_load_refuses_weights_only_false(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    plugin = SignedCheckpointIO(private_key=priv)
    plugin.save_checkpoint(_checkpoint(), tmp_path / "m.ckpt")
    with pytest.raises(ValueError, match="weights_only=True only"):
        plugin.load_checkpoint(tmp_path / "m.ckpt", weights_only=False)


class Payload:
    """A pickled object that is not a tensor: weights_only loading must refuse it, signed or not."""


def test_signed_but_pickled_object_refused_by_weights_only(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "evil": Payload()}, buf)
    write_signed(buf.getvalue(), tmp_path / "m.ckpt", load_private_key(priv))
    verify_file(tmp_path / "m.ckpt", pub)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_checkpoint(tmp_path / "m.ckpt", pub)


def test_sigstore_keyless_is_a_pass_through(tmp_path: Path, monkeypatch) -> None:
    """Offline: only the wiring to model_signing is checked (no Fulcio / Rekor here)."""
    model_signing = _model_signing()

    from secure_train.core.sigstore import sign_keyless

    calls: dict[str, object] = {}

    class FakeConfig:
        def use_sigstore_signer(self, **kwargs):
            calls["options"] = kwargs
            return self

        def sign(self, model: Path, sig: Path) -> None:
            calls["paths"] = (model, sig)

    monkeypatch.setattr(model_signing.signing, "Config", FakeConfig)
    out = sign_keyless(tmp_path / "model.safetensors", identity_token="tok", use_staging=True)
    assert out == tmp_path / "model.safetensors.sigstore.json"
    assert calls == {
        "options": {"identity_token": "tok", "use_staging": True},
        "paths": (tmp_path / "model.safetensors", out),
    }


def test_cli_verifies_ckpt_path_before_lightning_reads_hparams(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from secure_train.integrity.cli_support import verify_ckpt_path

    priv, pub = keys
    ckpt = tmp_path / "last.ckpt"
    _save_signed(ckpt, priv)
    signing = {"class_path": "secure_train.integrity.CheckpointSigning", "init_args": {"private_key": str(priv)}}
    config = {"ckpt_path": str(ckpt), "trainer": {"callbacks": [{"class_path": "x.ModelCheckpoint"}, signing]}}
    assert verify_ckpt_path(config).name == "last.ckpt"
    assert verify_ckpt_path({"ckpt_path": str(ckpt), "trainer": {"callbacks": None}}) is None  # signing not configured
    ckpt.write_bytes(ckpt.read_bytes()[:-1])
    with pytest.raises(IntegrityError, match="truncated"):
        verify_ckpt_path(config)
    plugin = {"class_path": "secure_train.integrity.SignedCheckpointIO", "init_args": {"public_key": str(pub)}}
    with pytest.raises(IntegrityError, match="truncated"):
        verify_ckpt_path({"ckpt_path": str(ckpt), "trainer": {"plugins": plugin}})
