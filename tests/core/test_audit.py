import json

import pytest

from secure_train.cli import main
from secure_train.core.audit_log import AuditLog, get_audit_log, read_events, verify


def _log(tmp_path, n=5):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(n):
        log.record("test.event", source="test", index=i)
    return path


def _lines(path):
    return path.read_text().splitlines()


def test_fresh_log_verifies_and_chains(tmp_path):
    path = _log(tmp_path)
    result = verify(path)
    assert result.ok and result.events == 5
    events = read_events(path)
    assert [e["seq"] for e in events] == list(range(5))
    assert all(events[i]["prev"] == events[i - 1]["hash"] for i in range(1, 5))
    assert events[0]["time"].endswith("+00:00")


def test_reopen_continues_chain(tmp_path):
    path = _log(tmp_path, 3)
    AuditLog(path).record("more", source="test")
    result = verify(path)
    assert result.ok and result.events == 4


def test_edit_detected(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    event = json.loads(lines[2])
    event["payload"]["index"] = 99
    lines[2] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_seq == 2 and "edited" in result.error


def test_delete_detected(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_seq == 1 and "deleted" in result.error


def test_reorder_detected(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    lines[1], lines[3] = lines[3], lines[1]
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_seq == 1


def test_insert_detected_even_with_recomputed_hash(tmp_path):
    from secure_train.core.audit_log import event_hash

    path = _log(tmp_path)
    lines = _lines(path)
    forged = json.loads(lines[1])
    forged["payload"] = {"index": "forged"}
    forged["hash"] = event_hash(forged)  # self-consistent, but the chain after it breaks
    lines.insert(2, json.dumps(forged))
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.bad_seq == 2


def test_refuses_to_extend_corrupt_log(tmp_path):
    path = _log(tmp_path)
    path.write_text(path.read_text().replace('"index":1', '"index":7'))
    with pytest.raises(ValueError, match="corrupt"):
        AuditLog(path)


def test_disabled_log_writes_nothing(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", enabled=False)
    assert log.record("x") is None
    assert not (tmp_path / "a.jsonl").exists()


def test_cli_verify_exit_codes(tmp_path, capsys):
    path = _log(tmp_path)
    assert main(["audit", "verify", str(path)]) == 0
    lines = _lines(path)
    del lines[0]
    path.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", str(path)]) == 1
    assert "expected seq 0, found 1" in capsys.readouterr().err


def test_get_audit_log_without_callback(tmp_path):
    import lightning.pytorch as pl

    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False)
    log = get_audit_log(trainer)
    assert log is get_audit_log(trainer)
    log.record("x")
    assert verify(tmp_path / "audit.jsonl").events == 1


def test_two_writers_on_one_file_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path), AuditLog(path)
    for i in range(3):
        a.record("from.a", index=i)
        b.record("from.b", index=i)
    result = verify(path)
    assert result.ok and result.events == 6
    assert [e["type"] for e in read_events(path)] == ["from.a", "from.b"] * 3


def test_concurrent_processes_append_safely(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "audit.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert verify(path).ok and verify(path).events == 60


def _append_many(path, worker):
    log = AuditLog(path)
    for i in range(20):
        log.record("worker", worker=worker, index=i)
