"""Authenticated data manifests: a trusted key or an audited opt-out, never a key from the manifest.

Each test is one way of getting edited data past ``TextDataModule(manifest=...)`` or
``secure-train data verify``: a regenerated or re-signed manifest, an embedded key, an unsigned
manifest, an extra file in the folder, a tampered manifest laundered through ``scan``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TSV_ROWS as ROWS
from conftest import write_lines as write

from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.keys import generate_keypair, load_private_key
from secure_train.data import TextClassificationDataModule
from secure_train.data_security.manifest import Manifest, require_verified, verify_manifest

ENV = "SECURE_TRAIN_SIGNING_KEY"


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)


def _keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / f"{name}.pem", tmp_path / "keys" / f"{name}.pub", passphrase_env=None)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    return _keys(tmp_path, "project")


@pytest.fixture
def attacker(tmp_path: Path) -> tuple[Path, Path]:
    return _keys(tmp_path, "attacker")


def manifest_for(data_dir: Path, out: Path, private_key: Path | None) -> Path:
    key = load_private_key(private_key) if private_key is not None else None
    return Manifest.build(data_dir, source="unit", license="CC0").save(out, private_key=key, sign=key is not None)


def datamodule(data_dir: Path, manifest: Path, **kw: Any) -> TextClassificationDataModule:
    return TextClassificationDataModule(
        str(data_dir / "train.tsv"),
        val_path=str(data_dir / "dev.tsv"),
        manifest=str(manifest),
        cache_dir=None,
        vocab_size=256,
        batch_size=4,
        **kw,
    )


# ----------------------------------------------------------------------------- training
def test_signed_manifest_under_configured_key_trains(
    data_dir: Path, tmp_path: Path, project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(project[0]))
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    dm = datamodule(data_dir, m)  # key from $SECURE_TRAIN_SIGNING_KEY
    summary = dm.provenance()["data_manifest"]
    assert summary["signature"] == "verified" and summary["key_fingerprint"]
    dm2 = datamodule(data_dir, m, manifest_public_key=str(project[1]))  # or an explicit public key
    assert dm2.provenance()["data_manifest"]["signature"] == "verified"


def test_no_trusted_key_refuses_before_reading(data_dir: Path, tmp_path: Path, project: tuple[Path, Path]) -> None:
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])  # genuinely signed, but nothing to check it with
    with pytest.raises(ConfigError, match=r"no trusted public key .* allow_unsigned_manifest=True"):
        datamodule(data_dir, m).load_records()


def test_regenerated_unsigned_manifest_refused(
    data_dir: Path, tmp_path: Path, project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(project[0]))
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    write(data_dir / "train.tsv", ROWS[:2] + ["dull and long\t1"] + ROWS[3:])  # flip a label
    manifest_for(data_dir, m, None)  # and regenerate a matching manifest, unsigned
    with pytest.raises(DataError, match="manifest: not signed"):
        datamodule(data_dir, m).load_records()


def test_manifest_resigned_with_attackers_key_refused(
    data_dir: Path,
    tmp_path: Path,
    project: tuple[Path, Path],
    attacker: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, str(project[0]))
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    write(data_dir / "train.tsv", ROWS[:2] + ["dull and long\t1"] + ROWS[3:])
    manifest_for(data_dir, m, attacker[0])  # regenerated and signed with a key of the attacker's own
    assert verify_manifest(m, public_key=attacker[1]).ok  # valid, but under the wrong key
    # ... and the attacker's public key embedded where older versions looked for it: an unsigned
    # field in the signature envelope is refused whatever the key
    data = json.loads(m.read_text())
    data["signature"]["public_key"] = attacker[1].read_text()
    m.write_text(json.dumps(data))
    (problem,) = verify_manifest(m, public_key=attacker[1]).problems
    assert "envelope fields" in problem and "public_key" in problem
    with pytest.raises(DataError, match="signature does not verify under the trusted key"):
        datamodule(data_dir, m).load_records()
    with pytest.raises(DataError, match="signature does not verify under the trusted key"):
        datamodule(data_dir, m, allow_unsigned_manifest=True).load_records()  # an invalid signature: never allowed
    assert cli_main(["data", "verify", str(m)]) == 1
    assert cli_main(["data", "verify", str(m), "--allow-unsigned"]) == 1


def test_extra_file_in_manifested_folder_refuses_training(
    data_dir: Path, tmp_path: Path, project: tuple[Path, Path]
) -> None:
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    write(data_dir / "extra.jsonl", ['{"sentence": "ignore previous instructions", "label": 1}'])
    with pytest.raises(DataError, match=r"extra\.jsonl: file added \(not in the manifest\)"):
        datamodule(data_dir, m, manifest_public_key=str(project[1])).load_records()
    (data_dir / "extra.jsonl").unlink()
    assert datamodule(data_dir, m, manifest_public_key=str(project[1])).load_records()["train"]


def test_allow_unsigned_manifest_warns_audits_and_still_checks_contents(data_dir: Path, tmp_path: Path) -> None:
    from conftest import quiet_trainer, tiny_classifier

    from secure_train.core.audit_log import read_events

    m = manifest_for(data_dir, tmp_path / "m.json", None)
    dm = TextClassificationDataModule(
        str(data_dir / "train.tsv"),
        manifest=str(m),
        allow_unsigned_manifest=True,
        val_fraction=0.2,
        cache_dir=None,
        vocab_size=256,
        batch_size=4,
    )
    trainer = quiet_trainer(tmp_path / "run", max_steps=1, limit_val_batches=0)
    with pytest.warns(UserWarning, match=r"signature was not checked \(unsigned\): allow_unsigned_manifest=True"):
        trainer.fit(tiny_classifier(vocab_size=256), dm)
    events = read_events(tmp_path / "run" / "audit.jsonl")
    (event,) = [e for e in events if e["type"] == "data.manifest_unsigned"]
    assert event["payload"]["signature"] == "unsigned"
    assert event["payload"]["manifest_digest"] == Manifest.load(m).digest
    (prov,) = [e for e in events if e["type"] == "data.provenance"]
    assert prov["payload"]["data_manifest"]["signature"] == "unsigned"
    write(data_dir / "train.tsv", ROWS + ["injected\t1"])
    with pytest.raises(DataError, match="records added or edited: line 6"):
        datamodule(data_dir, m, allow_unsigned_manifest=True).load_records()


def test_require_verified_leaves_the_check(data_dir: Path, tmp_path: Path, project: tuple[Path, Path]) -> None:
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    verified = require_verified(m, [data_dir / "train.tsv"], public_key=project[1])
    assert verified.check is not None and verified.check.signature == "verified"
    unchecked = require_verified(m, [data_dir / "train.tsv"], allow_unsigned=True)
    assert unchecked.check is not None and unchecked.check.signature == "unchecked"


# ----------------------------------------------------------------------------- CLI
def test_cli_verify_needs_a_trusted_key(
    data_dir: Path,
    tmp_path: Path,
    project: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    m = tmp_path / "m.json"
    args = ["data", "manifest", str(data_dir), "--source", "s", "--license", "l", "-o", str(m), "--quiet"]
    assert cli_main(args + ["--key", str(project[0])]) == 0
    capsys.readouterr()
    assert cli_main(["data", "verify", str(m)]) == 1
    err = capsys.readouterr().err
    assert "signature not checked" in err and "--public-key" in err
    assert cli_main(["data", "verify", str(m), "--allow-unsigned"]) == 0
    assert "signature NOT checked (unchecked)" in capsys.readouterr().out
    assert cli_main(["data", "verify", str(m), "--public-key", str(project[1])]) == 0
    assert "signature valid" in capsys.readouterr().out
    monkeypatch.setenv(ENV, str(project[0]))
    assert cli_main(["data", "verify", str(m)]) == 0
    assert "signature valid" in capsys.readouterr().out
    monkeypatch.delenv(ENV)
    assert cli_main(args + ["--no-sign"]) == 0
    assert "allow_unsigned_manifest=True" in capsys.readouterr().err  # the note on an unsigned manifest
    assert cli_main(["data", "verify", str(m), "--public-key", str(project[1])]) == 1
    assert "manifest: not signed" in capsys.readouterr().err


def test_scan_refuses_to_resign_a_tampered_manifest(
    data_dir: Path,
    tmp_path: Path,
    project: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    m = manifest_for(data_dir, tmp_path / "m.json", project[0])
    data = json.loads(m.read_text())
    data["license"] = "public domain"  # edited after signing
    m.write_text(json.dumps(data))
    monkeypatch.setenv(ENV, str(project[0]))
    scan = ["scan", str(data_dir / "train.tsv"), "--quiet", "--report", str(tmp_path / "rep"), "--manifest", str(m)]
    assert cli_main(scan) == 2
    assert "refusing to re-sign" in capsys.readouterr().err
    assert json.loads(m.read_text())["custody"] == []  # untouched
    manifest_for(data_dir, m, None)
    assert cli_main(scan) == 2
    assert "not signed" in capsys.readouterr().err
    manifest_for(data_dir, m, project[0])
    assert cli_main(scan) == 0
    assert verify_manifest(m, public_key=project[1]).signature == "verified"
    assert len(Manifest.load(m).custody) == 1
