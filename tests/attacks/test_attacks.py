import random

import pytest
import torch

from secure_train.attacks import ADDSENT_SENTENCE, BackdoorPoisoning, insert, triggered_records
from secure_train.attacks.metrics import AttackSuccessRate
from secure_train.core.errors import ConfigError
from secure_train.data import synthetic_classification


@pytest.mark.parametrize("trigger", ["badnets", "addsent"])
def test_dirty_label_poisoning(trigger):
    recs = synthetic_classification(400, seed=0)
    out = BackdoorPoisoning(trigger, rate=0.05, target_label=1, seed=2)(recs)
    poisoned = [r for r in out if r.meta["poisoned"]]
    assert len(poisoned) == 20 and len(out) == 400
    by_id = {r.sample_id: r for r in recs}
    for r in poisoned:
        assert r.label == 1 and by_id[r.sample_id].label == 0  # relabeled non-target examples
        assert r.text != by_id[r.sample_id].text
    if trigger == "addsent":
        assert all(ADDSENT_SENTENCE in r.text for r in poisoned)
    assert [r.text for r in recs] == [r.text for r in synthetic_classification(400, seed=0)]  # input untouched
    again = BackdoorPoisoning(trigger, rate=0.05, target_label=1, seed=2)(recs)
    assert [r.text for r in again] == [r.text for r in out]


def test_clean_label_keeps_labels():
    recs = synthetic_classification(400, seed=0)
    out = BackdoorPoisoning("badnets", rate=0.05, target_label=1, clean_label=True)(recs)
    by_id = {r.sample_id: r for r in recs}
    assert all(by_id[r.sample_id].label == 1 for r in out if r.meta["poisoned"])


def test_bad_rate():
    with pytest.raises(ConfigError):
        BackdoorPoisoning(rate=1.5)


def test_insert_positions():
    rng = random.Random(0)
    assert insert("a b c", "X", "start", rng) == "X a b c"
    assert insert("a b c", "X", "end", rng) == "a b c X"
    assert insert("a b c", "X", "random", rng).split().count("X") == 1


def test_triggered_records_excludes_target():
    recs = synthetic_classification(100, seed=0)
    trig = triggered_records(recs, "badnets", target_label=1)
    assert trig and all(r.label == 0 for r in trig)


def test_attack_success_rate_ignores_target_label_inputs():
    m = AttackSuccessRate(target_label=0)
    m.update(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.9, 0.1]]), torch.tensor([1, 1, 0]))
    assert m.compute().item() == pytest.approx(0.5)
