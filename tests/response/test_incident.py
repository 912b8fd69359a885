# ruff: noqa: F811 - the shared session fixtures are imported from test_report
"""Incident response end to end: signed forensic bundle (and its tampering), rollback past a
tampered checkpoint to the last verified, gated one, and resume into the same audit log."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from test_report import SPIKE_STEP, gate, keys, monitored_run, verdict_store  # noqa: F401 - shared session fixtures

from secure_train.cli import main
from secure_train.core.audit_log import read_events, verify
from secure_train.core.errors import ConfigError
from secure_train.integrity import verify_audit_head
from secure_train.response.incident import EnvironmentSnapshot, ForensicBundle, RollbackPlanner


def _copy(run: Path, dest: Path) -> Path:
    """A copy of the run at the same depth (``runs/<name>/version_0``) so resumes write beside it."""
    target = dest / "runs" / run.parent.name / run.name
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("report", "incidents"))
    return target


def _flip_byte(path: Path, offset: int = 300) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_environment_snapshot_has_packages_torch_and_git() -> None:
    env = EnvironmentSnapshot.capture()
    assert env.torch and "torch==" in env.pip_freeze() and env.hostname
    assert env.git_commit is None or len(env.git_commit) == 40
    assert env.to_dict()["cuda_available"] in (True, False)


@pytest.mark.slow
def test_open_verify_and_tampered_bundle(
    monitored_run: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(monitored_run, tmp_path)
    before = verify(run / "audit.jsonl").events
    assert (
        main(
            [
                "incident",
                "open",
                str(run),
                "--reason",
                f"loss spike at step {SPIKE_STEP}",
                "--signing-key",
                str(keys[0]),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"audit event seq {before} " in printed
    events = read_events(run / "audit.jsonl")
    assert [e["type"] for e in events[before:]] == ["incident.opened", "incident.bundle"]
    assert verify_audit_head(run / "audit.jsonl", keys[1]).ok  # the head was re-signed after each event
    (bundle,) = (run / "incidents").glob("*.tar")
    assert events[-1]["payload"]["sha256"] == __import__("hashlib").sha256(bundle.read_bytes()).hexdigest()
    assert main(["incident", "verify", str(bundle), "--public-key", str(keys[1])]) == 0
    assert "match the signed manifest" in capsys.readouterr().out
    check = ForensicBundle(bundle).verify(keys[1])
    m = check.manifest
    assert m["reason"] == f"loss spike at step {SPIKE_STEP}" and m["audit_event"]["seq"] == before
    names = {f["name"] for f in m["files"]}
    assert {
        "files/audit.jsonl",
        "files/audit.jsonl.head.json",
        "files/config.yaml",
        "files/hparams.yaml",
        "files/metrics.csv",
        "environment/pip-freeze.txt",
    } <= names
    assert any(n.endswith(".ckpt.sig") for n in names) and any(n.endswith(".attestation.json") for n in names)
    with tarfile.open(bundle) as tar:
        members = tar.getnames()
        frozen_log = tar.extractfile("files/audit.jsonl").read().decode()  # type: ignore[union-attr]
    assert not any(n.endswith(".ckpt") for n in members)  # digests and signatures, not the weights
    assert '"incident.opened"' in frozen_log and '"incident.bundle"' not in frozen_log
    steps = {c["global_step"] for c in m["checkpoints"]}
    assert {6, 12, 18, 24, 30, 36} <= steps and all(c["signature"] == "verified" for c in m["checkpoints"])
    assert m["environment"]["torch"] and m["environment"]["packages"]["torch"]

    # tampering: a member edited inside the tar (sidecar and manifest both catch it)
    with tarfile.open(bundle) as tar:
        contents = {i.name: tar.extractfile(i).read() for i in tar.getmembers()}  # type: ignore[union-attr]
    contents["files/audit.jsonl"] = contents["files/audit.jsonl"].replace(b'"rollback"', b'"warn"', 1)
    contents["files/extra.txt"] = b"planted"
    forged = tmp_path / "forged.tar"
    with tarfile.open(forged, "w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    shutil.copy(str(bundle) + ".sig", str(forged) + ".sig")
    bad = ForensicBundle(forged).verify(keys[1])
    assert not bad.ok
    joined = "\n".join(bad.errors)
    assert "bundle signature" in joined and "files/audit.jsonl: content differs" in joined
    assert "files/extra.txt: in the bundle but not in the manifest" in joined
    assert main(["incident", "verify", str(forged), "--public-key", str(keys[1])]) == 1
    # a forged manifest (reason changed) no longer verifies under the key
    manifest = json.loads(contents["manifest.json"])
    manifest["body"]["reason"] = "nothing happened"
    contents["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(forged, "w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert any("manifest" in e and "does not verify" in e for e in ForensicBundle(forged).verify(keys[1]).errors)


@pytest.mark.slow
def test_rollback_past_tampered_checkpoint_then_resume_into_same_log(
    monitored_run: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(monitored_run, tmp_path)
    for step in (30, 36):  # the gate passes the two latest checkpoints too (last.ckpt has step 36's bytes)
        assert gate(run / "checkpoints" / f"epoch=1-step={step}.ckpt", keys[0])["passed"]
    _flip_byte(run / "checkpoints" / "epoch=1-step=36.ckpt")
    _flip_byte(run / "checkpoints" / "last.ckpt")
    assert (
        main(
            [
                "incident",
                "rollback",
                str(run),
                "--public-key",
                str(keys[1]),
                "--signing-key",
                str(keys[0]),
                "--reason",
                "step-36 checkpoint fails its signature",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    target = run / "checkpoints" / "epoch=1-step=30.ckpt"
    assert f"ROLLBACK TARGET: {target} (step 30" in out
    assert "checkpoints/last.ckpt  (signature failed: content does not match its signature" in out
    assert "step     24" in out and "gate none" in out  # ungated checkpoints do not qualify
    events = read_events(run / "audit.jsonl")
    rb = events[-1]
    assert rb["type"] == "incident.rollback" and rb["payload"]["global_step"] == 30
    assert {r["path"] for r in rb["payload"]["rejected"]} >= {
        "checkpoints/last.ckpt",
        "checkpoints/epoch=1-step=36.ckpt",
    }
    assert verify_audit_head(run / "audit.jsonl", keys[1]).ok
    # resume with the printed command: the same audit log continues after incident.rollback
    resume = RollbackPlanner(run, keys[1]).resume_args(RollbackPlanner(run, keys[1]).select())
    assert resume[resume.index("--ckpt_path") + 1] == str(target)
    old, env = os.getcwd(), os.environ.get("SECURE_TRAIN_SIGNING_KEY")
    os.chdir(tmp_path)
    os.environ["SECURE_TRAIN_SIGNING_KEY"] = str(keys[0])
    try:
        assert main(resume) == 0
    finally:
        os.chdir(old)
        if env is None:
            os.environ.pop("SECURE_TRAIN_SIGNING_KEY", None)
        else:
            os.environ["SECURE_TRAIN_SIGNING_KEY"] = env
    after = read_events(run / "audit.jsonl")[len(events) :]
    types = [e["type"] for e in after]
    assert "run.start" in types and types[-1] == "run.end"
    verified = [e for e in after if e["type"] == "checkpoint.verified"]
    assert verified and verified[0]["payload"]["sha256"] == rb["payload"]["sha256"]
    assert verify(run / "audit.jsonl").ok and verify_audit_head(run / "audit.jsonl", keys[1]).ok
    assert after[-1]["payload"]["global_step"] == 36


@pytest.mark.slow
def test_rollback_before_anomaly_and_refusals(
    monitored_run: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = read_events(monitored_run / "audit.jsonl")
    spike = next(e for e in events if e["type"] == "monitor.anomaly" and e["source"] == "LossSpikeMonitor")
    planner = RollbackPlanner(monitored_run, keys[1], require_gate=False)
    chosen = planner.select(before_anomaly=spike["seq"])
    # the spike hits the 25th optimizer step; the step-24 checkpoint was saved just before it
    assert spike["payload"]["step"] == SPIKE_STEP
    assert chosen.global_step == SPIKE_STEP and chosen.audit_head["events"] <= spike["seq"]
    later = [problems for ck, problems in planner.judge(before_anomaly=spike["seq"]) if ck.global_step == 30]
    assert later and any(f"saved after audit event {spike['seq']}" in p for p in later[0])
    assert RollbackPlanner(monitored_run, keys[1]).select(before_anomaly=spike["seq"]).global_step == 12  # gated
    assert RollbackPlanner(monitored_run, keys[1], require_gate=False).select(before_step=13).global_step == 12
    # nothing gated before step 12: refused, exit 1, nothing recorded
    n = len(events)
    assert main(["incident", "rollback", str(monitored_run), "--public-key", str(keys[1]), "--before-step", "12"]) == 1
    assert "REFUSED: no checkpoint qualifies" in capsys.readouterr().err
    assert len(read_events(monitored_run / "audit.jsonl")) == n
    # an audit log edited before the checkpoints: no checkpoint's trail verifies; the log is never extended
    run = _copy(monitored_run, tmp_path)
    lines = (run / "audit.jsonl").read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if '"run.start"' in line)
    assert start < 3
    lines[start] = lines[start].replace('"stage":"fit"', '"stage":"test"')
    (run / "audit.jsonl").write_text("".join(lines))
    broken = RollbackPlanner(run, keys[1], require_gate=False)
    assert all(ck.trail == "broken" for ck, _ in broken.judge())
    with pytest.raises(Exception, match="no checkpoint qualifies"):
        broken.select()
    # an incident can still be opened on the tampered run: recorded beside the broken log
    bundle = ForensicBundle.open_incident(
        run,
        reason="audit log edited",
        private_key=__import__("secure_train.integrity", fromlist=["load_private_key"]).load_private_key(keys[0]),
    )
    check = bundle.verify(keys[1])
    assert check.ok and "does not verify" in check.manifest["notes"][0]
    assert check.manifest["integrity"]["audit_log"]["ok"] is False
    assert [e["type"] for e in read_events(run / "incidents" / "audit.jsonl")] == ["incident.opened", "incident.bundle"]


@pytest.mark.slow
def test_truncated_log_is_never_resigned(monitored_run: Path, keys: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Cutting the log's tail keeps the chain valid; only the signed head shows it. An incident
    must not append and re-sign (that would cover the cut up): it is recorded beside the log."""
    run = _copy(monitored_run, tmp_path)
    lines = (run / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (run / "audit.jsonl").write_bytes(b"".join(lines[:-2]))
    cut = (run / "audit.jsonl").read_bytes()
    assert verify(run / "audit.jsonl").ok and not verify_audit_head(run / "audit.jsonl", keys[1]).ok
    assert main(["incident", "open", str(run), "--reason", "log looks short", "--signing-key", str(keys[0])]) == 0
    assert "the signed audit head does not verify" in capsys.readouterr().out
    assert (run / "audit.jsonl").read_bytes() == cut
    assert not verify_audit_head(run / "audit.jsonl", keys[1]).ok
    assert [e["type"] for e in read_events(run / "incidents" / "audit.jsonl")] == ["incident.opened", "incident.bundle"]
    code = main(["incident", "rollback", str(run), "--public-key", str(keys[1]), "--signing-key", str(keys[0])])
    assert code == 2 and "is not extended" in capsys.readouterr().err
    assert (run / "audit.jsonl").read_bytes() == cut


def test_bundle_freezes_named_data_manifests_and_includes(tmp_path: Path) -> None:
    """Data manifests named by ``data.provenance`` events and ``--include`` files outside the run
    directory are frozen under ``external/``; weights never are."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from secure_train.core.audit_log import AuditLog

    key = ec.generate_private_key(ec.SECP256R1())
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    manifest = tmp_path / "data" / "sst2.manifest.json"
    manifest.parent.mkdir()
    manifest.write_text('{"files": []}')
    extra = tmp_path / "ticket.txt"
    extra.write_text("INC-42")
    log = AuditLog(run / "audit.jsonl")
    log.record("data.provenance", source="TextClassificationDataModule",
               data_manifest={"manifest": str(manifest), "manifest_digest": "ab" * 32}, data_custody=[])  # fmt: skip
    bundle = ForensicBundle.open_incident(run, reason="r", private_key=key, include=[extra], use_verdict_store=False)
    check = bundle.verify(key.public_key())
    names = {f["name"]: f for f in check.manifest["files"]}
    assert check.ok and "external/000-sst2.manifest.json" in names and "external/001-ticket.txt" in names
    assert names["external/000-sst2.manifest.json"]["source"] == str(manifest)
    assert not any(n and n.endswith(".ckpt") for n in names)
    (ck,) = check.manifest["checkpoints"]
    assert ck["path"] == "checkpoints/last.ckpt" and ck["signature"] == "unsigned" and len(ck["sha256"]) == 64
    with pytest.raises(ConfigError, match="--include"):
        ForensicBundle.open_incident(run, reason="r", private_key=key, include=[tmp_path / "nope"])
    with pytest.raises(ConfigError, match="--reason"):
        ForensicBundle.open_incident(run, reason=" ", private_key=key)
