import pytest
import torch
from conftest import quiet_trainer, tiny_causal_data, tiny_causal_lm, tiny_classification_data, tiny_classifier
from torch.utils.data import DistributedSampler

from secure_train.adversarial import AdversarialAugmentationDataModule
from secure_train.adversarial.augmentation import ATTACK_ID_OFFSET, DEFAULT_REFUSAL
from secure_train.core.errors import ConfigError
from secure_train.data import TextClassificationDataModule

HOLDOUT = ["roleplay", "mixture"]


def _wrap(label_mode="robust", base=None, **kwargs):
    if base is None:
        base = tiny_causal_data() if label_mode == "refuse" else tiny_classification_data()
    kwargs.setdefault("ratio", 0.25)
    kwargs.setdefault("holdout_families", HOLDOUT)
    return AdversarialAugmentationDataModule(base, label_mode=label_mode, **kwargs)


def _attacks(records):
    return [r for r in records if r.meta["synthetic_attack"]]


def test_train_mix_ratio_ids_and_provenance():
    dm = _wrap(seed=1)
    recs = dm.load_records()
    base = dm.base.load_records()
    train = recs["train"]
    attacks = _attacks(train)
    assert len(train) - len(attacks) == len(base["train"])  # every base record is kept
    assert abs(len(attacks) / len(train) - 0.25) < 1 / len(train)
    base_ids = {r.sample_id for split in base.values() for r in split}
    ids = [r.sample_id for r in attacks]
    assert len(set(ids)) == len(ids) and not set(ids) & base_ids and min(ids) >= ATTACK_ID_OFFSET
    by_id = {r.sample_id: r for r in base["train"]}
    for r in attacks:
        assert r.source == "synthetic-attack"
        assert r.meta["attack_family"] in dm.generator.families and r.meta["attack_template"]
        assert isinstance(r.meta["attack_seed"], int)
        assert r.label == by_id[r.meta["base_sample_id"]].label  # robust: the true label is kept
    # Training goals are independent of the label (no "asks for X means not X" shortcut) ...
    same = sum(r.meta["attack_target"] == r.label for r in attacks) / len(attacks)
    assert 0.3 < same < 0.7
    # ... while every measured attack asks for a label other than the true one.
    assert all(r.meta["attack_target"] != r.label for r in _attacks(recs["val"]))
    assert {r.meta["attack_family"] for r in attacks} == set(dm.generator.families)
    assert not any(r.meta["synthetic_attack"] for r in recs["train"] if r.sample_id in base_ids)


def test_batches_mix_at_the_requested_ratio():
    dm = _wrap(ratio=0.3)
    dm.setup("fit")
    shares, n_attack, n = [], 0, 0
    for batch in dm.train_dataloader():
        is_attack = batch["sample_id"] >= ATTACK_ID_OFFSET
        shares.append(is_attack.float().mean().item())
        n_attack += int(is_attack.sum())
        n += len(is_attack)
    assert n == len(dm.records["train"])
    assert abs(n_attack / n - 0.3) < 0.01
    assert abs(sum(shares) / len(shares) - 0.3) < 0.05
    assert 0 < min(shares) and max(shares) < 1  # shuffled together, not appended in a block


def test_holdout_leaks_no_template_into_training():
    dm = _wrap(holdout_families=["roleplay", "extraction"], seed=2)
    recs = dm.load_records()
    train_components = {c for r in _attacks(recs["train"]) for c in r.meta["attack_components"]}
    eval_templates = dm.generator.template_ids("eval")
    assert train_components and not train_components & eval_templates
    for split in ("val", "test"):
        attacks = _attacks(recs[split])
        assert attacks
        components = {c for r in attacks for c in r.meta["attack_components"]}
        assert components <= eval_templates and not components & train_components
        assert {"roleplay", "extraction"} <= {r.meta["attack_family"] for r in attacks}
    assert not {"roleplay", "extraction"} & {r.meta["attack_family"] for r in _attacks(recs["train"])}


def test_deterministic_for_every_rank_and_sharded_consistently():
    one, two = _wrap(seed=5).load_records(), _wrap(seed=5).load_records()
    assert [(r.sample_id, r.text, r.label) for r in one["train"]] == [
        (r.sample_id, r.text, r.label) for r in two["train"]
    ]
    other = _wrap(seed=6).load_records()
    assert [r.text for r in _attacks(one["train"])] != [r.text for r in _attacks(other["train"])]
    # Two ranks build their datasets independently; DistributedSampler shards them without overlap.
    ids = {}
    for rank in (0, 1):
        dm = _wrap(seed=5)
        dm.setup("fit")
        sampler = DistributedSampler(dm.datasets["train"], num_replicas=2, rank=rank, shuffle=True, seed=0)
        ids[rank] = {dm.datasets["train"][i]["sample_id"] for i in sampler}
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == len(one["train"])


def test_label_modes():
    detect = _wrap("detect")
    assert detect.num_labels == 3 and detect.attack_label == 2
    assert all(r.label == 2 for r in _attacks(detect.load_records()["train"]))
    assert all(r.label in (0, 1) for r in detect.load_records()["train"] if not r.meta["synthetic_attack"])
    refuse = _wrap("refuse")
    assert refuse.num_labels is None
    attacks = _attacks(refuse.load_records()["train"])
    assert attacks and all(r.completion == DEFAULT_REFUSAL and r.label is None for r in attacks)
    assert all(
        r.completion != DEFAULT_REFUSAL for r in refuse.load_records()["train"] if not r.meta["synthetic_attack"]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 0.0}, "ratio must be in"),
        ({"ratio": 1.0}, "ratio must be in"),
        ({"label_mode": "ignore"}, "label_mode must be one of"),
        ({"label_mode": "refuse"}, "needs a causal-LM DataModule"),
        ({"families": ["direct"], "holdout_families": ["direct"]}, "overlap"),
        ({"eval_ratio": 1.5}, "eval_ratio"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AdversarialAugmentationDataModule(tiny_classification_data(), **kwargs)


def test_classifier_modes_need_a_classification_base():
    with pytest.raises(ConfigError, match="needs a classification DataModule"):
        AdversarialAugmentationDataModule(tiny_causal_data(), label_mode="robust")


def test_detect_mode_rejects_a_model_without_the_attack_class(tmp_path):
    dm = _wrap("detect")
    with pytest.raises(ConfigError, match=r"needs num_labels=3 \(base 2 \+ 1\), got model.num_labels=2"):
        quiet_trainer(tmp_path, max_steps=1).fit(tiny_classifier(num_labels=2), dm)


class _RecordingData(TextClassificationDataModule):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def prepare_data(self):
        self.calls.append("prepare_data")
        super().prepare_data()

    def setup(self, stage=None):
        self.calls.append(f"setup:{getattr(stage, 'value', stage)}")
        super().setup(stage)

    def teardown(self, stage):
        self.calls.append(f"teardown:{getattr(stage, 'value', stage)}")

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.calls.append("on_before_batch_transfer")
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.calls.append("on_after_batch_transfer")
        batch["seen_by_base"] = torch.ones(1)
        return batch

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        self.calls.append("transfer_batch_to_device")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def state_dict(self):
        return {"calls": len(self.calls)}

    def load_state_dict(self, state_dict):
        self.calls.append(f"load_state_dict:{state_dict['calls']}")


def test_hooks_pass_through_to_the_base(tmp_path):
    base = _RecordingData(synthetic_size=160, batch_size=16, vocab_size=512, max_length=32)
    dm = _wrap(base=base)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1)
    trainer.fit(tiny_classifier(), dm)
    for hook in (
        "prepare_data",
        "setup:fit",
        "teardown:fit",
        "on_before_batch_transfer",
        "transfer_batch_to_device",
        "on_after_batch_transfer",
    ):
        assert hook in base.calls
    state = dm.state_dict()
    assert state["base"] == {"calls": state["base"]["calls"]} and state["config"]["ratio"] == 0.25
    dm.load_state_dict(state)
    assert base.calls[-1].startswith("load_state_dict:")
    assert dm.max_length == 32 and dm.get_tokenizer() is base.get_tokenizer()  # attributes come from the base
    # The tokenizer was trained with the attack texts, so attack words are not [UNK].
    unk = dm.get_tokenizer().unk_token_id
    ids = dm.datasets["train"][len(base.records["train"])]["input_ids"]
    assert dm.records["train"][len(base.records["train"])].meta["synthetic_attack"] and unk not in ids


@pytest.mark.slow
@pytest.mark.parametrize("label_mode", ["robust", "detect", "refuse"])
def test_trains_end_to_end(tmp_path, label_mode):
    dm = _wrap(label_mode)
    model = tiny_causal_lm() if label_mode == "refuse" else tiny_classifier(num_labels=dm.num_labels)
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=6, limit_val_batches=2)
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/loss" in trainer.callback_metrics
    # The validation loader serves held-out attacks next to the clean examples.
    val_ids = torch.cat([b["sample_id"] for b in dm.val_dataloader()])
    assert (val_ids >= ATTACK_ID_OFFSET).any() and (val_ids < ATTACK_ID_OFFSET).any()


def test_dp_sgd_counts_augmented_examples(tmp_path):
    from secure_train.privacy import DifferentialPrivacy

    dm = _wrap()
    dp = DifferentialPrivacy(noise_multiplier=1.0, max_grad_norm=1.0, accountant="rdp", delta=1e-5)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[dp])
    trainer.fit(tiny_classifier(), dm)
    n_train = len(dm.records["train"])
    assert len(_attacks(dm.records["train"])) > 0
    assert dp.num_samples == n_train  # the accountant sees the augmented training set
    assert dp.sample_rate == pytest.approx(dm.base.batch_size / n_train)


def test_tokenizer_is_trained_with_the_attack_texts_whatever_is_called_first():
    dm = _wrap()
    tok = dm.get_tokenizer()  # before setup / prepare_data
    assert tok is dm.base.get_tokenizer()
    attack = _attacks(dm.load_records()["train"])[0]
    assert tok.unk_token_id not in tok(attack.text)["input_ids"]
