"""Security follow-ups: no remote code from a model folder, signed manifests at the gate,
audit heads re-signed after gate/export/approve, verdicts filed by the library path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_train.core.errors import ConfigError

_EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nraise SystemExit('remote code executed')\n"


def _model_folder(tmp_path: Path, model_type: str) -> tuple[Path, Path]:
    """A saved tiny BERT whose config.json names custom code (auto_map) that would leave a marker."""
    from transformers import BertConfig, BertForSequenceClassification

    folder, marker = tmp_path / "model", tmp_path / "MARKER"
    cfg = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    conf = json.loads((folder / "config.json").read_text())
    conf["model_type"] = model_type
    conf["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(conf))
    (folder / "evil.py").write_text(_EVIL.format(marker=str(marker)))
    return folder, marker


def test_auto_map_of_a_known_model_type_is_ignored(tmp_path: Path, monkeypatch) -> None:
    from secure_train.models import TextClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, marker = _model_folder(tmp_path, "bert")
    model = TextClassifier(pretrained=str(folder), num_labels=2)
    assert type(model.model).__name__ == "BertForSequenceClassification"  # the library's class, not evil.py's
    assert not marker.exists()


def test_auto_map_without_a_known_model_type_is_refused(tmp_path: Path, monkeypatch) -> None:
    from secure_train.models import TextClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, marker = _model_folder(tmp_path, "evil-model")
    with pytest.raises(ConfigError, match="cannot load a model"):
        TextClassifier(pretrained=str(folder), num_labels=2)
    assert not marker.exists()


# ------------------------------------------------------------- audit head re-signed after gate/export
def _signed_run(tmp_path: Path):
    """A run folder RUN/{audit.jsonl, audit.jsonl.head.json, checkpoints/m.ckpt(.sig)}, like CheckpointSigning's."""
    import torch
    from conftest import MICRO_BERT, tiny_classifier

    from secure_train.core.audit_head import sign_audit_head
    from secure_train.core.audit_log import AuditLog
    from secure_train.integrity import SignedCheckpointIO, generate_keypair

    priv, pub = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    log = AuditLog(run / "audit.jsonl")
    log.record("run.start", source="test")
    torch.manual_seed(0)
    model = tiny_classifier(config=MICRO_BERT)
    ckpt = run / "checkpoints" / "m.ckpt"
    SignedCheckpointIO(private_key=priv).save_checkpoint(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt
    )
    log.record("run.end", source="test")
    from secure_train.integrity import load_private_key

    sign_audit_head(log.path, load_private_key(priv), reason="end of run")
    return run, ckpt, priv, pub


def _suite(tmp_path: Path, pub: Path, min_acc: float) -> Path:
    import yaml

    path = tmp_path / f"suite-{min_acc}.yaml"
    data = {"class_path": "secure_train.data.TextClassificationDataModule",
            "init_args": {"synthetic_size": 200, "seed": 7, "max_length": 48, "val_fraction": 0.3}}  # fmt: skip
    checks = {"clean_accuracy": {"min": min_acc}, "integrity": {"public_key": str(pub)}}
    path.write_text(yaml.safe_dump({"data": data, "checks": checks}))
    return path


@pytest.mark.slow
def test_gate_and_export_resign_the_runs_audit_head(tmp_path: Path, monkeypatch, capsys) -> None:
    from secure_train.cli import main as cli_main
    from secure_train.core.audit_head import head_path, verify_audit_head
    from secure_train.core.audit_log import read_events

    monkeypatch.setenv("SECURE_TRAIN_VERDICTS", str(tmp_path / "verdicts"))
    monkeypatch.delenv("SECURE_TRAIN_RELEASE_POLICY", raising=False)
    run, ckpt, priv, pub = _signed_run(tmp_path)
    log = run / "audit.jsonl"
    assert verify_audit_head(log, pub).ok
    # the gate records into the run's log (RUN/checkpoints/CKPT -> RUN/audit.jsonl) and re-signs its head
    assert cli_main(["gate", str(ckpt), "--suite", str(_suite(tmp_path, pub, 0.0)), "--signing-key", str(priv)]) == 0
    assert "gate.decision" in [e["type"] for e in read_events(log)]
    assert verify_audit_head(log, pub).ok, verify_audit_head(log, pub).error  # no --allow-unsigned-tail needed
    out = tmp_path / "model.safetensors"
    argv = ["export", str(ckpt), "--out", str(out), "--public-key", str(pub), "--signing-key", str(priv)]
    assert cli_main(argv) == 0
    assert "model.exported" in [e["type"] for e in read_events(log)] and verify_audit_head(log, pub).ok
    assert cli_main(["audit", "verify", str(log), "--public-key", str(pub)]) == 0
    capsys.readouterr()
    # a cut log (last event dropped) is recorded into but never re-signed: the cut stays visible
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    head_before = head_path(log).read_bytes()
    assert not verify_audit_head(log, pub).ok
    assert cli_main(["gate", str(ckpt), "--suite", str(_suite(tmp_path, pub, 0.0)), "--signing-key", str(priv)]) == 0
    assert "not re-signed" in capsys.readouterr().err
    assert head_path(log).read_bytes() == head_before and not verify_audit_head(log, pub).ok


def test_resigned_head_refuses_a_rewritten_chain(tmp_path: Path, capsys) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from secure_train.commands.gate import resigned_head
    from secure_train.core.audit_head import head_path, sign_audit_head, verify_audit_head
    from secure_train.core.audit_log import AuditLog

    key = ec.generate_private_key(ec.SECP256R1())
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(3):
        log.record("step", i=i)
    sign_audit_head(log.path, key)
    # an event after the head (e.g. an approval, signed by the approver's key): re-signed, covered
    log.record("gate.approved", by="alice")
    with resigned_head(log, key, reason="export"):
        log.record("model.exported")
    assert verify_audit_head(log.path, key.public_key()).ok
    # a rewritten event breaks the chain: never re-signed
    text = log.path.read_text().replace('"i":1', '"i":9')
    log.path.write_text(text)
    before = head_path(log.path).read_bytes()
    with resigned_head(log, key, reason="gate"):  # (opening a corrupt log for appending is refused anyway)
        pass
    assert "not re-signed" in capsys.readouterr().err and head_path(log.path).read_bytes() == before


# ------------------------------------------------------------- run_gate files verdicts itself
def test_library_run_gate_files_the_verdict(tmp_path: Path, monkeypatch) -> None:
    from secure_train.gate import GateRefused, GateSuite, ReleasePolicy, VerdictStore, run_gate
    from secure_train.integrity import load_private_key

    monkeypatch.setenv("SECURE_TRAIN_VERDICTS", str(tmp_path / "verdicts"))
    _run, ckpt, priv, pub = _signed_run(tmp_path)
    report = run_gate(ckpt, GateSuite.load(_suite(tmp_path, pub, 1.01)), private_key=load_private_key(priv))
    assert not report["passed"] and report["verdict"]
    assert [str(p) for p in VerdictStore().paths(report["checkpoint_sha256"])] == [report["verdict"]]
    # the failing verdict, filed by the library path, blocks a copy elsewhere
    import shutil

    copy = tmp_path / "copy" / ckpt.name
    copy.parent.mkdir()
    shutil.copy(ckpt, copy)
    shutil.copy(str(ckpt) + ".sig", str(copy) + ".sig")
    with pytest.raises(GateRefused, match="blocks every copy"):
        ReleasePolicy(require_attestation=False).check(copy, pub)
    other = tmp_path / "other-store"
    assert run_gate(ckpt, GateSuite.load(_suite(tmp_path, pub, 0.0)), private_key=None, verdicts=other)["verdict"]
    assert len(VerdictStore(other).paths(report["checkpoint_sha256"])) == 1
    assert (
        run_gate(ckpt, GateSuite.load(_suite(tmp_path, pub, 0.0)), private_key=None, verdicts=False)["verdict"] is None
    )
