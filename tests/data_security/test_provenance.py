"""Provenance manifests: round trip, every tamper case, custody chain, signing, DataModule refusal, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TSV_ROWS as ROWS
from conftest import write_lines as write
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_train.cli import main as cli_main
from secure_train.core.errors import DataError
from secure_train.data import TextClassificationDataModule, TextRecord
from secure_train.data_security.manifest import (
    CustodyEntry,
    Manifest,
    merkle_root,
    records_digest,
    verify_manifest,
)


def saved(data_dir: Path, tmp_path: Path, sign: bool = False, private_key: object = None) -> Path:
    m = Manifest.build(data_dir, source="unit", license="CC0")
    return m.save(tmp_path / "m" / "manifest.json", sign=sign, private_key=private_key)


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[object, Path]:
    from secure_train.core.keys import generate_keypair, load_private_key

    priv, pub = generate_keypair(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub", passphrase_env=None)
    return load_private_key(priv), pub


def test_round_trip(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    m = Manifest.load(path)
    assert m.data["source"] == "unit" and m.data["license"] == "CC0"
    assert {f["path"] for f in m.data["files"]} == {"train.tsv", "dev.tsv"}
    assert all(len(f["sha256"]) == 64 for f in m.data["files"])
    assert next(f for f in m.data["files"] if f["path"] == "train.tsv")["n_records"] == 5
    assert "python" in m.data["tools"] and m.data["created"]
    check = verify_manifest(path)
    assert check.ok and check.files == 2 and not check.problems
    # the digest does not depend on where the manifest lives
    assert Manifest.load(path).digest == m.digest


def test_edited_record_named_by_line(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    write(data_dir / "train.tsv", ROWS[:3] + ["great acting\t0"] + ROWS[4:])
    check = verify_manifest(path)
    assert not check.ok
    assert check.problems == ["train.tsv: contents changed (sha256 mismatch); records changed: line 4"]


def test_reordered_records(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    write(data_dir / "train.tsv", [ROWS[0], ROWS[2], ROWS[1]] + ROWS[3:])
    (problem,) = verify_manifest(path).problems
    assert "records reordered: lines 2, 3" in problem


def test_added_and_removed_records(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    write(data_dir / "train.tsv", ROWS + ["injected row\t1"])
    (problem,) = verify_manifest(path).problems
    assert "records added or edited: line 6" in problem
    write(data_dir / "train.tsv", ROWS[:2] + ROWS[3:])
    (problem,) = verify_manifest(path).problems
    assert "1 record(s) removed" in problem and "record numbers 3" in problem


def test_added_and_removed_files(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    write(data_dir / "extra.jsonl", ['{"sentence": "x", "label": 1}'])
    assert verify_manifest(path).problems == ["extra.jsonl: file added (not in the manifest)"]
    (data_dir / "extra.jsonl").unlink()
    (data_dir / "dev.tsv").unlink()
    assert verify_manifest(path).problems == ["dev.tsv: file removed (missing)"]


def test_edited_manifest_and_custody_detected(data_dir: Path, tmp_path: Path) -> None:
    path = saved(data_dir, tmp_path)
    m = Manifest.load(path)
    recs = [TextRecord("a", 1, 0, "x"), TextRecord("b", 0, 1, "x")]
    m.append_custody(CustodyEntry.create("dedup", {"t": 0.8}, recs, recs[:1], {"dropped": [1]}))
    m.append_custody(CustodyEntry.create("redact", {}, recs[:1], recs[:1], {"redacted": [0]}))
    m.save(path, sign=False)
    assert verify_manifest(path).ok
    data = json.loads(path.read_text())
    assert data["custody"][1]["prev"] == data["custody"][0]["hash"]
    data["custody"][0]["affected"]["dropped"] = []
    path.write_text(json.dumps(data))
    assert verify_manifest(path).problems == ["manifest: chain of custody broken at entry 0 (dedup)"]
    data = json.loads(saved(data_dir, tmp_path).read_text())
    data["files"][0]["merkle_root"] = "0" * 64
    path.write_text(json.dumps(data))
    assert any("merkle_root does not match" in p for p in verify_manifest(path).problems)


def test_signed_manifest(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = pytest.importorskip("secure_train.core.keys")
    priv, pub = keys.generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    path = saved(data_dir, tmp_path, sign=True)  # signed through the configured key
    check = verify_manifest(path, public_key=str(pub), require_signature=True)
    assert check.ok and check.signed and check.signature == "verified"
    assert "BEGIN" not in path.read_text()  # the signer's fingerprint, never a key to verify with
    data = json.loads(path.read_text())
    data["license"] = "proprietary"
    path.write_text(json.dumps(data))
    (problem,) = verify_manifest(path, public_key=str(pub)).problems  # an invalid signature: always a problem
    assert problem.startswith("manifest: signature does not verify under the trusted key")
    # no trusted key: the signature is not checked, and that is a problem when required
    assert verify_manifest(path).signature == "unchecked"
    assert verify_manifest(path, require_signature=True).problems == [
        "manifest: signature not checked (no trusted public key given)"
    ]
    _, other_pub = keys.generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub", passphrase_env=None)
    path = saved(data_dir, tmp_path, sign=True)
    assert not verify_manifest(path, public_key=str(other_pub)).ok
    monkeypatch.delenv("SECURE_TRAIN_SIGNING_KEY")
    unsigned = Manifest.build(data_dir, source="u", license="l").save(tmp_path / "u.json", sign=False)
    assert verify_manifest(unsigned, require_signature=True).problems == ["manifest: not signed"]
    assert verify_manifest(unsigned, public_key=str(pub), require_signature=True).problems == ["manifest: not signed"]
    assert verify_manifest(unsigned, public_key=str(pub)).signature == "unsigned"


def test_datamodule_refuses_tampered_data(data_dir: Path, tmp_path: Path, keypair: tuple[object, Path]) -> None:
    path = saved(data_dir, tmp_path, private_key=keypair[0])
    kw = {"val_path": str(data_dir / "dev.tsv"), "manifest": str(path), "cache_dir": None, "vocab_size": 256}
    kw["manifest_public_key"] = str(keypair[1])
    dm = TextClassificationDataModule(str(data_dir / "train.tsv"), **kw)
    prov = dm.provenance()
    assert prov["data_manifest_digest"] == Manifest.load(path).digest
    assert prov["data_manifest"]["files"]["train.tsv"]
    write(data_dir / "train.tsv", ROWS[:2] + ["dull and long\t1"] + ROWS[3:])
    with pytest.raises(DataError, match=r"train.tsv: contents changed .* records changed: line 3"):
        TextClassificationDataModule(str(data_dir / "train.tsv"), **kw).load_records()
    other = write(tmp_path / "other.tsv", ROWS)
    with pytest.raises(DataError, match="not in the manifest"):
        TextClassificationDataModule(str(other), **kw).load_records()


def test_datamodule_audit_event(data_dir: Path, tmp_path: Path, keypair: tuple[object, Path]) -> None:
    from conftest import quiet_trainer, tiny_classifier

    from secure_train.core.audit_log import read_events

    path = saved(data_dir, tmp_path, private_key=keypair[0])
    dm = TextClassificationDataModule(
        str(data_dir / "train.tsv"),
        manifest=str(path),
        manifest_public_key=str(keypair[1]),
        val_fraction=0.2,
        cache_dir=None,
        vocab_size=256,
        batch_size=4,
    )
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(tiny_classifier(vocab_size=256), dm)
    (event,) = [e for e in read_events(tmp_path / "audit.jsonl") if e["type"] == "data.provenance"]
    assert event["payload"]["data_manifest_digest"] == Manifest.load(path).digest
    assert event["payload"]["data_manifest"]["signature"] == "verified"


def test_cli_manifest_and_verify(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.json"
    args = ["data", "manifest", str(data_dir), "--source", "s", "--license", "l", "-o", str(out), "--quiet"]
    assert cli_main(args + ["--no-sign"]) == 0
    assert cli_main(["data", "verify", str(out), "--allow-unsigned"]) == 0
    write(data_dir / "dev.tsv", ROWS[:2])
    assert cli_main(["data", "verify", str(out), "--allow-unsigned"]) == 1
    assert "dev.tsv: contents changed" in capsys.readouterr().err
    assert cli_main(["data", "verify", str(tmp_path / "nope.json")]) == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=20), st.data())
def test_merkle_root_commits_to_every_leaf_and_order(leaves: list[bytes], data: st.DataObject) -> None:
    import hashlib

    hashed = [hashlib.sha256(b).digest() for b in leaves]
    root = merkle_root(hashed)
    i = data.draw(st.integers(0, len(hashed) - 1))
    changed = hashed.copy()
    changed[i] = hashlib.sha256(b"x" + leaves[i]).digest()
    assert merkle_root(changed) != root
    if len(set(hashed)) > 1:
        assert merkle_root(list(reversed(hashed))) != root or hashed == list(reversed(hashed))
    assert merkle_root(hashed[:-1]) != root or len(hashed) == 1


def test_records_digest_sees_labels() -> None:
    a = [TextRecord("x", 1, 0, "s")]
    assert records_digest(a) != records_digest([TextRecord("x", 0, 0, "s")])
