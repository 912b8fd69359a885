import pytest
from conftest import ddp_trainer, tiny_classification_data, tiny_classifier

from secure_train.core.audit_log import read_events, verify
from secure_train.monitors import AuditTrail


@pytest.mark.ddp
def test_only_global_rank_zero_writes(tmp_path):
    path = tmp_path / "audit.jsonl"
    trainer = ddp_trainer(tmp_path, max_steps=2, limit_val_batches=1, callbacks=[AuditTrail(path)])
    trainer.fit(tiny_classifier(), tiny_classification_data())
    assert verify(path).ok
    events = read_events(path)
    assert [e["type"] for e in events] == ["run.start", "run.end"]  # one writer, not one per rank
    assert events[0]["payload"]["world_size"] == 2
