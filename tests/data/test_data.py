import torch
from conftest import tiny_causal_data, tiny_classification_data

from secure_train.data import TextClassificationDataModule, synthetic_classification


def test_synthetic_corpus_is_deterministic_and_balanced():
    a, b = synthetic_classification(500, seed=3), synthetic_classification(500, seed=3)
    assert [r.text for r in a] == [r.text for r in b]
    assert 0.4 < sum(r.label for r in a) / 500 < 0.6
    assert [r.text for r in synthetic_classification(50, seed=4)] != [r.text for r in a[:50]]


def test_batches_carry_ids_and_per_example_positions():
    dm = tiny_classification_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    ids = batch["position_ids"]
    assert ids.shape == batch["input_ids"].shape
    assert ids.is_contiguous() and ids.stride(0) == ids.shape[1]  # a real per-example copy, not a broadcast
    assert torch.equal(ids[0], torch.arange(ids.shape[1]))
    assert batch["token_type_ids"].is_contiguous()
    train_ids = {r.sample_id for r in dm.load_records()["train"]}
    assert set(batch["sample_id"].tolist()) <= train_ids


def test_split_is_deterministic_and_disjoint():
    a, b = tiny_classification_data(seed=1), tiny_classification_data(seed=1)
    ra, rb = a.load_records(), b.load_records()
    assert [r.sample_id for r in ra["val"]] == [r.sample_id for r in rb["val"]]
    assert not {r.sample_id for r in ra["train"]} & {r.sample_id for r in ra["val"]}
    assert len(ra["val"]) == 32


def test_files_keep_source_and_ids(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"text number {i}\t{i % 2}\n" for i in range(40)))
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\nheld out\t1\n")
    dm = TextClassificationDataModule(str(train), str(dev), vocab_size=64, batch_size=4)
    recs = dm.load_records()
    assert len(recs["train"]) == 40 and recs["val"][0].sample_id == 10**9
    assert recs["train"][5].source == "train.tsv:7"
    dm.setup("fit")
    assert len(dm.get_tokenizer()) <= 64


def test_tokenizer_cache_reused(tmp_path):
    dm1 = tiny_classification_data(cache_dir=str(tmp_path))
    dm1.setup("fit")
    assert list((tmp_path / "tokenizers").iterdir())
    dm2 = tiny_classification_data(cache_dir=str(tmp_path))
    dm2.setup("fit")
    assert dm1.tokenizer.get_vocab() == dm2.tokenizer.get_vocab()


def test_transforms_applied_to_train_only():
    def drop_half(records):
        return records[: len(records) // 2]

    dm = tiny_classification_data(transforms=[drop_half])
    recs = dm.load_records()
    assert len(recs["train"]) == 144 and len(recs["val"]) == 32


def test_causal_lm_masks_prompt():
    dm = tiny_causal_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    labels, mask = batch["labels"], batch["attention_mask"]
    assert (labels[mask == 0] == -100).all()
    assert (labels[:, 0] == -100).all()  # prompt tokens carry no loss
    assert ((labels != -100).sum(1) > 0).all()
