import hashlib
from pathlib import Path

import lightning.pytorch as pl
import pytest
from conftest import ddp_trainer, read_rank_json, tiny_classification_data, tiny_classifier, write_rank_json

from secure_train.adversarial import AdversarialAugmentationDataModule
from secure_train.adversarial.augmentation import ATTACK_ID_OFFSET


class _SeenIds(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += batch["sample_id"].tolist()

    def on_train_epoch_end(self, trainer, pl_module):
        dm = trainer.datamodule
        digest = hashlib.sha256("\n".join(f"{r.sample_id}\t{r.label}\t{r.text}" for r in dm.records["train"]).encode())
        write_rank_json(self.out, trainer, {"digest": digest.hexdigest(), "seen": self.seen})


@pytest.mark.ddp
@pytest.mark.slow
def test_ranks_build_the_same_augmented_data_and_shard_it(tmp_path: Path) -> None:
    dm = AdversarialAugmentationDataModule(
        tiny_classification_data(synthetic_size=200), ratio=0.25, holdout_families=["roleplay"], seed=3
    )
    trainer = ddp_trainer(tmp_path, callbacks=[_SeenIds(tmp_path)])
    trainer.fit(tiny_classifier(), dm)
    ranks = read_rank_json(tmp_path)
    assert ranks[0]["digest"] == ranks[1]["digest"]  # generated independently, identical on both ranks
    expected = AdversarialAugmentationDataModule(
        tiny_classification_data(synthetic_size=200), ratio=0.25, holdout_families=["roleplay"], seed=3
    ).load_records()["train"]
    all_ids = {r.sample_id for r in expected}
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 | seen1 == all_ids  # every example, attacks included, seen once per epoch ...
    assert len(seen0 & seen1) <= 1  # ... on one rank (DistributedSampler pads odd sizes by one)
    assert any(i >= ATTACK_ID_OFFSET for i in seen0) and any(i >= ATTACK_ID_OFFSET for i in seen1)
