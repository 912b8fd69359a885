"""Keys, signature primitives and the provenance record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.core.errors import ConfigError
from secure_train.integrity import (
    collect_provenance,
    generate_keypair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    sha256_file,
    sign_bytes,
    verify_bytes,
)


def test_generate_and_load_roundtrip(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    assert priv.stat().st_mode & 0o777 == 0o600
    key = load_private_key(priv)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key_fingerprint(key.public_key()) == key_fingerprint(load_public_key(pub))
    assert load_public_key(pub.read_text()).public_numbers() == key.public_key().public_numbers()
    sig = sign_bytes(b"payload", key)
    assert verify_bytes(b"payload", sig, pub)
    assert not verify_bytes(b"payloaD", sig, pub)
    assert not verify_bytes(b"payload", sig[:-1] + bytes([sig[-1] ^ 1]), pub)
    other = ec.generate_private_key(ec.SECP256R1())
    assert not verify_bytes(b"payload", sig, other.public_key())


def test_generate_refuses_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    with pytest.raises(ConfigError, match="already exists"):
        generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)


def test_group_readable_private_key_refused(tmp_path: Path) -> None:
    priv, _ = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    os.chmod(priv, 0o640)
    with pytest.raises(ConfigError, match=r"accessible by group or others .*chmod 600"):
        load_private_key(priv)
    os.chmod(priv, 0o604)
    with pytest.raises(ConfigError, match="accessible by group or others"):
        load_private_key(priv)
    os.chmod(priv, 0o600)
    load_private_key(priv)


def test_passphrase_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASS", "correct horse")
    priv, _ = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env="MY_PASS")
    assert b"ENCRYPTED" in priv.read_bytes()
    load_private_key(priv, passphrase_env="MY_PASS")
    with pytest.raises(ConfigError, match=r"encrypted: set \$OTHER_PASS") as err:
        load_private_key(priv, passphrase_env="OTHER_PASS")
    assert "correct horse" not in str(err.value)
    monkeypatch.setenv("MY_PASS", "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase") as err:
        load_private_key(priv, passphrase_env="MY_PASS")
    assert "BEGIN" not in str(err.value)


def test_key_from_env_path_or_pem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    priv, pub = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    monkeypatch.delenv("SECURE_TRAIN_SIGNING_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$SECURE_TRAIN_SIGNING_KEY"):
        load_private_key()
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    fp = key_fingerprint(load_public_key(pub))
    assert key_fingerprint(load_private_key().public_key()) == fp
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", priv.read_text())
    assert key_fingerprint(load_private_key().public_key()) == fp


def test_bad_public_key_named(tmp_path: Path) -> None:
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="junk.pub: not a PEM public key"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(ConfigError, match="no such file"):
        load_public_key(tmp_path / "missing.pub")


def test_sha256_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc" * 10_000_000)
    import hashlib

    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 10_000_000).hexdigest()


@pytest.mark.parametrize("size", [0, 6, 7, 8, 21])
def test_sha256_file_is_the_streamed_hash_at_any_chunk_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    import hashlib

    from secure_train.core import safe_io, signing

    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    monkeypatch.setattr(signing, "CHUNK_SIZE", 7)  # the chunk size signing hashes with
    assert signing.sha256_file(tmp_path / "f") == safe_io.sha256_file(tmp_path / "f", chunk_size=3)
    assert signing.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(signing, "_sha256_file", lambda path, chunk_size: f"chunk {chunk_size}")
    assert signing.sha256_file(tmp_path / "f") == "chunk 7"  # one implementation, signing's chunk size


def test_collect_provenance_merges_callbacks_and_datamodule(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from secure_train.monitors import AuditTrail

    class DP(Callback):
        def provenance(self) -> dict[str, float]:
            return {"dp_epsilon": 2.5}

    class DM(pl.LightningDataModule):
        def provenance(self) -> dict[str, str]:
            return {"data_manifest_sha256": "ab" * 32}

    trail = AuditTrail(path=tmp_path / "audit.jsonl", config={"lr": 1})
    trainer = pl.Trainer(default_root_dir=tmp_path, callbacks=[DP(), trail], logger=False)
    trainer.datamodule = DM()  # type: ignore[misc]
    rec = collect_provenance(trainer)
    assert rec["dp_epsilon"] == 2.5
    assert rec["data_manifest_sha256"] == "ab" * 32
    assert rec["config_sha256"] == trail.config_hash
    assert rec["global_step"] == 0 and rec["run_id"] == collect_provenance(trainer)["run_id"]

    class Bad(Callback):
        def provenance(self) -> list[int]:
            return [1]

    with pytest.raises(ConfigError, match="Bad.provenance"):
        collect_provenance(pl.Trainer(callbacks=[Bad()], logger=False))
