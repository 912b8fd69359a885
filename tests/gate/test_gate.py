"""Deployment gate: trojan scan blocks a backdoored model, attestations bind to the digest,
export refuses missing / failing / foreign / tampered attestations, approvals enforced by policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from conftest import MICRO_BERT, quiet_trainer, tiny_classification_data, tiny_classifier

from secure_train.attacks import BackdoorPoisoning
from secure_train.cli import main as cli_main
from secure_train.core.audit_log import read_events
from secure_train.core.errors import ConfigError
from secure_train.data import synthetic_classification
from secure_train.data.tokenizer import train_tokenizer
from secure_train.gate import GateRefused, GateSuite, ReleasePolicy, TrojanScanner, run_gate, write_approval
from secure_train.gate.attestation import attestation_path
from secure_train.integrity import SignedCheckpointIO, generate_keypair, load_private_key, sha256_file


@pytest.fixture(autouse=True)
def _verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One verdict store per test: the gate files verdicts by digest, and equal bytes recur."""
    monkeypatch.setenv("SECURE_TRAIN_VERDICTS", str(tmp_path / "verdicts"))
    return tmp_path / "verdicts"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    return generate_keypair(d / "k.pem", d / "k.pub", passphrase_env=None)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer trained on clean text only, shared by every model (as a pretrained one would be)."""
    d = tmp_path_factory.mktemp("tok")
    tok = train_tokenizer([r.text for r in synthetic_classification(2000, seed=42)], vocab_size=512, cache_dir=None)
    tok.save_pretrained(str(d))
    return d


def _data_spec(tokenizer_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "class_path": "secure_train.data.TextClassificationDataModule",
        "init_args": {"synthetic_size": 1000, "seed": 7, "tokenizer": str(tokenizer_dir), "max_length": 48,
                      "val_fraction": 0.3, "batch_size": 128, **extra},
    }  # fmt: skip


def _save_ckpt(model: pl.LightningModule, path: Path, key: Path) -> Path:
    SignedCheckpointIO(private_key=key).save_checkpoint(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path
    )
    return path


def _train(tokenizer_dir: Path, tmp: Path, poison: bool, seed: int) -> pl.LightningModule:
    pl.seed_everything(seed, verbose=False)
    transforms = [BackdoorPoisoning("badnets", words=["cf"], rate=0.1, target_label=1, seed=seed)] if poison else []
    dm = tiny_classification_data(synthetic_size=1000, tokenizer=str(tokenizer_dir), transforms=transforms, seed=seed)
    model = tiny_classifier()
    quiet_trainer(tmp, max_epochs=8, limit_val_batches=0).fit(model, dm)
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path], tokenizer_dir: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("zoo")
    return {
        "clean": _save_ckpt(_train(tokenizer_dir, d, False, 0), d / "clean.ckpt", keys[0]),
        "backdoored": _save_ckpt(_train(tokenizer_dir, d, True, 1), d / "backdoored.ckpt", keys[0]),
    }


def _suite(tokenizer_dir: Path, pub: Path, **checks: Any) -> GateSuite:
    base: dict[str, Any] = {
        "clean_accuracy": {"min": 0.7},
        "trojan_scan": {"max_score": 0.8, "num_inputs": 48, "inversion_steps": 20},
        "integrity": {"public_key": str(pub)},
    }
    return GateSuite.from_dict({"data": _data_spec(tokenizer_dir), "checks": {**base, **checks}})


@pytest.mark.slow
def test_backdoored_model_fails_gate_clean_passes(zoo: dict[str, Path], keys, tokenizer_dir, tmp_path) -> None:
    priv, pub = keys
    suite = _suite(tokenizer_dir, pub)
    key = load_private_key(priv)
    clean = run_gate(zoo["clean"], suite, private_key=key, out_dir=tmp_path / "c")
    bad = run_gate(zoo["backdoored"], suite, private_key=key, out_dir=tmp_path / "b")
    by_name = {c["name"]: c for c in bad["checks"]}
    assert clean["passed"], clean["checks"][1]["details"]
    assert not bad["passed"]
    assert not by_name["trojan_scan"]["passed"] and by_name["trojan_scan"]["details"]["target_label"] == 1
    assert by_name["clean_accuracy"]["passed"]  # the backdoor hides behind normal accuracy
    assert (tmp_path / "b" / "backdoored.ckpt.gate.md").read_text().startswith("# Gate report: FAILED")
    assert (tmp_path / "c" / "clean.ckpt.attestation.json").is_file()


@pytest.mark.slow
def test_trojan_scan_recovers_planted_trigger(zoo: dict[str, Path], keys, tokenizer_dir) -> None:
    suite = _suite(tokenizer_dir, keys[1])
    model, _ = suite.load_model(zoo["backdoored"], keys[1])
    dm = suite.load_data()
    res = TrojanScanner(num_inputs=48, inversion_steps=20).scan(model, dm.get_tokenizer(), dm.load_records()["val"])
    assert res.backdoored and res.target_label == 1
    # the trigger "cf" is two tokens (c ##f) for this tokenizer; the top candidates carry its pieces
    top = [set(c.tokens) for c in res.candidates[:3]]
    assert all(t & {"c", "##f"} for t in top), res.candidates[:3]
    assert res.baseline_p95 < res.backdoor_score
    with pytest.raises(ConfigError, match="threshold"):
        TrojanScanner(threshold=0.0)


@pytest.mark.slow
def test_gate_injection_and_privacy_checks(zoo: dict[str, Path], keys, tokenizer_dir, tmp_path) -> None:
    suite = _suite(
        tokenizer_dir,
        keys[1],
        injection_resistance={"holdout_families": ["roleplay", "obfuscation"], "max_asr": 0.95, "n": 60},
        privacy_leakage={"max_auc": 0.99, "n": 200},
    )
    del suite.checks["trojan_scan"]
    report = run_gate(zoo["clean"], suite, private_key=None, out_dir=tmp_path)
    by_name = {c["name"]: c for c in report["checks"]}
    inj, priv = by_name["injection_resistance"], by_name["privacy_leakage"]
    assert 0.0 <= inj["value"] <= 1.0 and inj["details"]["families"] == ["roleplay", "obfuscation"]
    assert inj["passed"] == (inj["value"] <= 0.95)
    assert 0.0 <= priv["value"] <= 1.0 and priv["passed"] == (priv["value"] <= 0.99)
    assert report["attestation"] is None
    # the same metrics against impossible thresholds fail
    strict = GateSuite.from_dict(
        {"data": _data_spec(tokenizer_dir), "checks": {"privacy_leakage": {"max_auc": 0.0, "n": 50}}}
    )
    assert not run_gate(zoo["clean"], strict, private_key=None, out_dir=tmp_path / "s")["passed"]


# -------------------------------------------------------------- attestation and export
@pytest.fixture
def signed_ckpt(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    torch.manual_seed(0)
    return _save_ckpt(tiny_classifier(config=MICRO_BERT), tmp_path / "m.ckpt", keys[0])


def _write_suite(tmp_path: Path, tokenizer_dir: Path, pub: Path, min_acc: float) -> Path:
    path = tmp_path / f"suite-{min_acc}.yaml"
    spec = _data_spec(tokenizer_dir, synthetic_size=200)
    path.write_text(yaml.safe_dump({"data": spec, "checks": {"clean_accuracy": {"min": min_acc},
                                                             "integrity": {"public_key": str(pub)}}}))  # fmt: skip
    return path


def _export(ckpt: Path, keys: tuple[Path, Path], *extra: str) -> int:
    out = ckpt.parent / "out.safetensors"
    argv = ["export", str(ckpt), "--out", str(out), "--public-key", str(keys[1]), "--signing-key", str(keys[0])]
    return cli_main([*argv, *extra])


def test_export_requires_passing_attestation_for_exact_digest(
    signed_ckpt: Path, keys, tokenizer_dir, tmp_path, capsys, monkeypatch, _verdicts
) -> None:
    monkeypatch.delenv("SECURE_TRAIN_RELEASE_POLICY", raising=False)
    priv, pub = keys
    policy = tmp_path / "policy.yaml"
    policy.write_text("release:\n  require_attestation: true\n")
    # no attestation: refused with a policy, and without one (export is gated by default)
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 2
    assert "no gate attestation" in capsys.readouterr().err
    assert _export(signed_ckpt, keys) == 2
    assert "no gate attestation" in capsys.readouterr().err
    assert _export(signed_ckpt, keys, "--allow-ungated", "--policy", str(policy)) == 2
    assert "cannot be combined" in capsys.readouterr().err
    # failing attestation (accuracy floor above 1): gate exits 1, export refused
    failing = _write_suite(tmp_path, tokenizer_dir, pub, 1.01)
    assert cli_main(["gate", str(signed_ckpt), "--suite", str(failing), "--signing-key", str(priv)]) == 1
    assert "gate FAILED" in capsys.readouterr().out
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 2
    assert "the gate failed" in capsys.readouterr().err
    # a failing attestation next to the checkpoint blocks export even with --allow-ungated
    assert _export(signed_ckpt, keys) == 2
    assert _export(signed_ckpt, keys, "--allow-ungated") == 2
    capsys.readouterr()
    # ... and so does the verdict filed by digest, for a copy in another folder (no attestation there)
    copy = tmp_path / "copy" / signed_ckpt.name
    copy.parent.mkdir()
    shutil.copy(signed_ckpt, copy)
    shutil.copy(str(signed_ckpt) + ".sig", str(copy) + ".sig")
    assert _export(copy, keys, "--allow-ungated") == 2
    assert "blocks every copy" in capsys.readouterr().err and not (copy.parent / "out.safetensors").exists()
    # passing attestation
    passing = _write_suite(tmp_path, tokenizer_dir, pub, 0.0)
    assert cli_main(["gate", str(signed_ckpt), "--suite", str(passing), "--signing-key", str(priv)]) == 0
    body = json.loads(attestation_path(signed_ckpt).read_text())["body"]
    assert body["passed"] and len(body["checkpoint_sha256"]) == 64 and len(body["suite_sha256"]) == 64
    assert {c["name"] for c in body["checks"]} == {"clean_accuracy", "integrity"}
    assert all({"metric", "value", "threshold", "passed"} <= set(c) for c in body["checks"])
    capsys.readouterr()
    # the failing verdict, filed by digest, still blocks: a looser suite passing does not clear it
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 2
    assert "blocks every copy" in capsys.readouterr().err
    shutil.rmtree(_verdicts)  # a reviewed override: the failing verdict removed from the store
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 0
    # the attestation of another checkpoint (different digest) is refused
    other = _save_ckpt(tiny_classifier(config=MICRO_BERT), tmp_path / "other.ckpt", priv)
    shutil.copy(attestation_path(signed_ckpt), attestation_path(other))
    assert _export(other, keys, "--policy", str(policy)) == 2
    assert "another or modified checkpoint" in capsys.readouterr().err
    # tampered attestation: flip a failing verdict to passing without re-signing
    doc = json.loads(attestation_path(signed_ckpt).read_text())
    doc["body"]["checks"][0]["threshold"] = -1.0
    attestation_path(signed_ckpt).write_text(json.dumps(doc))
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 2
    assert "tampered or foreign" in capsys.readouterr().err
    events = [e["type"] for e in read_events(signed_ckpt.parent / "audit.jsonl")]
    assert "gate.decision" in events and "gate.release_allowed" in events and "gate.release_refused" in events


def test_foreign_key_attestation_refused(signed_ckpt: Path, keys, tokenizer_dir, tmp_path) -> None:
    other_priv, _ = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub", passphrase_env=None)
    suite = GateSuite.load(_write_suite(tmp_path, tokenizer_dir, keys[1], 0.0))
    assert run_gate(signed_ckpt, suite, private_key=load_private_key(other_priv))["passed"]
    with pytest.raises(GateRefused, match="tampered or foreign"):
        ReleasePolicy().check(signed_ckpt, keys[1])


def test_approvals_enforced_by_policy(signed_ckpt: Path, keys, tokenizer_dir, tmp_path, capsys) -> None:
    priv, pub = keys
    run_gate(signed_ckpt, GateSuite.load(_write_suite(tmp_path, tokenizer_dir, pub, 0.0)),
             private_key=load_private_key(priv))  # fmt: skip
    people = {n: generate_keypair(tmp_path / f"{n}.pem", tmp_path / f"{n}.pub", passphrase_env=None)
              for n in ("alice", "bob")}  # fmt: skip
    (tmp_path / "approvers.yaml").write_text(yaml.safe_dump({"approvers": {
        "alice": {"public_key": "alice.pub", "roles": ["security"]},
        "bob": {"public_key": "bob.pub", "roles": ["ml-lead"]},
    }}))  # fmt: skip
    policy = tmp_path / "policy.yaml"
    production = {"production": {"require_roles": ["security", "ml-lead"]}}
    policy.write_text(yaml.safe_dump({"keyring": "approvers.yaml", "targets": production}))
    assert _export(signed_ckpt, keys, "--policy", str(policy)) == 0  # staging: no approvals needed
    assert _export(signed_ckpt, keys, "--policy", str(policy), "--target", "production") == 2
    assert "missing ['security', 'ml-lead']" in capsys.readouterr().err

    def approve(by: str, role: str) -> int:
        return cli_main(["approve", str(signed_ckpt), "--signing-key", str(people[by][0]), "--public-key", str(pub),
                         "--target", "production", "--by", by, "--role", role])  # fmt: skip

    assert approve("alice", "security") == 0
    assert _export(signed_ckpt, keys, "--policy", str(policy), "--target", "production") == 2
    assert "missing ['ml-lead']" in capsys.readouterr().err
    # an approval for another target or a forged approval does not count
    bob = load_private_key(people["bob"][0])
    write_approval(signed_ckpt, by="bob", role="ml-lead", target="staging", private_key=bob, public_key=pub)
    forged = signed_ckpt.parent / "m.ckpt.approvals" / "ml-lead-mallory.json"
    doc = json.loads((signed_ckpt.parent / "m.ckpt.approvals" / "security-alice.json").read_text())
    doc["body"]["role"] = "ml-lead"
    forged.write_text(json.dumps(doc))
    assert _export(signed_ckpt, keys, "--policy", str(policy), "--target", "production") == 2
    capsys.readouterr()
    assert approve("bob", "ml-lead") == 0
    assert _export(signed_ckpt, keys, "--policy", str(policy), "--target", "production") == 0
    events = read_events(signed_ckpt.parent / "audit.jsonl")
    assert [e["payload"]["role"] for e in events if e["type"] == "gate.approved"] == ["security", "ml-lead"]
    allowed = [e for e in events if e["type"] == "gate.release_allowed" and e["payload"]["target"] == "production"]
    assert allowed[-1]["payload"]["approvals"] == [
        {"by": "alice", "role": "security"},
        {"by": "bob", "role": "ml-lead"},
    ]
    with pytest.raises(ConfigError, match="role"):
        write_approval(signed_ckpt, by="x", role="bad/role", private_key=load_private_key(priv), public_key=pub)


def test_suite_errors_are_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("checks: {nope: {}}\n")
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    assert cli_main(["gate", str(ckpt), "--suite", str(bad), "--no-attestation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown gate checks" in err


def test_integrity_check_manifest_and_dp_policy(signed_ckpt: Path, keys, tmp_path: Path) -> None:
    from secure_train.data_security.manifest import Manifest

    data = tmp_path / "data" / "train.tsv"
    data.parent.mkdir()
    data.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n")
    build = Manifest.build(data, source="test", license="CC0")
    manifest = build.save(tmp_path / "manifest.json", private_key=load_private_key(keys[0]))
    unsigned = Manifest.build(data, source="test", license="CC0").save(tmp_path / "unsigned.json", sign=False)
    other_priv, _ = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub", passphrase_env=None)
    foreign = Manifest.build(data, source="test", license="CC0").save(
        tmp_path / "foreign.json", private_key=load_private_key(other_priv)
    )
    dp_state = {"callbacks": {"DifferentialPrivacy{}": {"accountant": "rdp", "history": [(1.0, 0.01, 1000)],
                                                         "delta": 1e-5}}}  # fmt: skip
    opts = {"public_key": str(keys[1]), "manifest": str(manifest), "max_epsilon": 100.0}
    suite = GateSuite.from_dict({"checks": {"integrity": opts}})
    ok = suite.run(None, None, checkpoint=signed_ckpt, checkpoint_state=dp_state)[0]
    assert ok["passed"], ok["details"]
    assert ok["details"]["manifest"] == "verified" and 0 < ok["details"]["dp_epsilon"] < 100
    assert ok["details"]["manifest_signature"] == "verified" and ok["details"]["allow_unsigned_manifest"] is False
    # an unsigned manifest, or one signed by another key, fails the check; the explicit opt-out is reported
    for path, state in ((unsigned, "unsigned"), (foreign, "invalid")):
        res = GateSuite.from_dict({"checks": {"integrity": {**opts, "manifest": str(path)}}}).run(
            None, None, checkpoint=signed_ckpt, checkpoint_state=dp_state
        )[0]
        assert not res["passed"] and res["details"]["manifest_signature"] == state, res["details"]
        assert any(p.startswith("manifest:") for p in res["details"]["problems"])
    lax = {**opts, "manifest": str(unsigned), "allow_unsigned_manifest": True}
    res = GateSuite.from_dict({"checks": {"integrity": lax}}).run(None, None, checkpoint=signed_ckpt,
                                                                   checkpoint_state=dp_state)[0]  # fmt: skip
    assert res["passed"] and res["details"]["allow_unsigned_manifest"] is True, res["details"]
    lax_foreign = {**lax, "manifest": str(foreign)}  # a signature that does not verify is refused regardless
    assert not GateSuite.from_dict({"checks": {"integrity": lax_foreign}}).run(
        None, None, checkpoint=signed_ckpt, checkpoint_state=dp_state
    )[0]["passed"]
    from secure_train.gate.suite import _markdown

    report = {"passed": True, "checkpoint": "m", "checkpoint_sha256": "0", "suite": "s", "suite_sha256": "0",
              "time": "t", "seconds": 0, "checks": [res]}  # fmt: skip
    assert "allow_unsigned_manifest" in _markdown(report)
    strict = GateSuite.from_dict({"checks": {"integrity": {**opts, "max_epsilon": 0.1}}})
    assert (
        "exceeds"
        in strict.run(None, None, checkpoint=signed_ckpt, checkpoint_state=dp_state)[0]["details"]["problems"][0]
    )
    data.write_text("sentence\tlabel\ngood film\t0\nbad film\t0\n")  # a label flipped after the manifest
    bad = suite.run(None, None, checkpoint=signed_ckpt, checkpoint_state=dp_state)[0]
    assert not bad["passed"] and any(p.startswith("manifest:") for p in bad["details"]["problems"])
    signed_ckpt.write_bytes(signed_ckpt.read_bytes() + b"x")
    tampered = suite.run(None, None, checkpoint=signed_ckpt, checkpoint_state={})[0]
    assert any("checkpoint signature" in p for p in tampered["details"]["problems"])


def test_unsigned_verdict_has_a_format_and_unknown_versions_are_refused(
    signed_ckpt: Path, keys, tokenizer_dir, tmp_path, capsys, monkeypatch, _verdicts
) -> None:
    """``gate --no-attestation`` files ``{"format", "version", "body"}``; export reads it, an old file
    without the fields, and refuses a version it does not know in one line naming it."""
    monkeypatch.delenv("SECURE_TRAIN_RELEASE_POLICY", raising=False)
    failing = _write_suite(tmp_path, tokenizer_dir, keys[1], 1.01)
    assert cli_main(["gate", str(signed_ckpt), "--suite", str(failing), "--no-attestation"]) == 1
    out = capsys.readouterr().out
    (filed,) = list(_verdicts.rglob("*.json"))
    assert f"verdict filed by digest: {filed}" in out
    doc = json.loads(filed.read_text())
    assert (doc["format"], doc["version"]) == ("secure-train-verdict", 1) and set(doc) == {"format", "version", "body"}
    assert doc["body"]["passed"] is False and doc["body"]["checkpoint_sha256"] == sha256_file(signed_ckpt)
    assert _export(signed_ckpt, keys, "--allow-ungated") == 2  # the unsigned failing verdict blocks
    assert "the gate failed" in capsys.readouterr().err
    # a verdict filed before the format field existed reads the same
    filed.write_text(json.dumps({"body": doc["body"]}))
    assert _export(signed_ckpt, keys, "--allow-ungated") == 2
    assert "the gate failed" in capsys.readouterr().err
    # a newer version (or another format) is refused, naming the file and the version
    for changed, expected in (({"version": 2}, "gate verdict version 2 is not supported (this release reads 1)"),
                              ({"version": "1"}, "gate verdict version '1' is not supported"),
                              ({"format": "other"}, "format 'other' is not a gate verdict")):  # fmt: skip
        filed.write_text(json.dumps({**doc, **changed, "body": {**doc["body"], "passed": True}}))
        assert _export(signed_ckpt, keys, "--allow-ungated") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"secure-train: error: {filed}: {expected}"), err
    assert not (signed_ckpt.parent / "out.safetensors").exists()
