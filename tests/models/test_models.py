import pytest
import torch
from conftest import quiet_trainer, tiny_causal_data, tiny_causal_lm, tiny_classification_data, tiny_classifier

from secure_train.core.errors import ConfigError
from secure_train.models import TextClassifier


class Capture(__import__("lightning.pytorch", fromlist=["Callback"]).Callback):
    def __init__(self):
        self.outputs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.outputs.append((outputs, batch["sample_id"]))


def test_per_sample_losses_reach_callbacks(tmp_path):
    cap = Capture()
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[cap], limit_val_batches=0)
    trainer.fit(tiny_classifier(), tiny_classification_data())
    outputs, ids = cap.outputs[0]
    assert outputs["per_sample_loss"].shape == ids.shape
    assert torch.equal(outputs["sample_id"], ids)
    assert torch.isclose(outputs["per_sample_loss"].mean(), outputs["loss"].detach())


def test_classifier_learns_synthetic_corpus(tmp_path):
    model = tiny_classifier()
    trainer = quiet_trainer(tmp_path, max_epochs=6)
    trainer.fit(model, tiny_classification_data(synthetic_size=800))
    assert trainer.callback_metrics["val/acc"] > 0.7


def test_causal_lm_trains(tmp_path):
    model = tiny_causal_lm()
    dm = tiny_causal_data()
    trainer = quiet_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    batch = next(iter(dm.val_dataloader()))
    assert model.per_sample_loss(batch).shape == (batch["input_ids"].shape[0],)


def test_vocab_mismatch_is_a_clear_error(tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=1)
    with pytest.raises(ConfigError, match="tokenizer has .* tokens"):
        trainer.fit(tiny_classifier(vocab_size=40), tiny_classification_data(vocab_size=512))


def test_label_count_mismatch(tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=1)
    with pytest.raises(ConfigError, match="num_labels"):
        trainer.fit(tiny_classifier(num_labels=3), tiny_classification_data())


def test_bad_arguments():
    with pytest.raises(ConfigError, match="either pretrained"):
        TextClassifier(pretrained="x", config={"model_type": "bert"})
    with pytest.raises(ConfigError, match="cannot load a model"):
        TextClassifier(pretrained="/nonexistent/model")
    with pytest.raises(ConfigError, match="lr must be"):
        TextClassifier(lr=0)
