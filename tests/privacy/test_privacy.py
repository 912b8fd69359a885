"""DP-SGD callback: accounting, Poisson sampling, clipping and noise, resume, HF models, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import MICRO_BERT, quiet_trainer, tiny_causal_data, tiny_causal_lm, tiny_classification_data
from opacus.accountants import PRVAccountant, RDPAccountant
from torch.utils.data import DataLoader

from secure_train.core.audit_log import read_events
from secure_train.core.errors import ConfigError
from secure_train.models import TextClassifier
from secure_train.privacy import DifferentialPrivacy, PoissonBatchSampler, poisson_loader

NO_DROPOUT = {**MICRO_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


class SGDClassifier(TextClassifier):
    """A user's own LightningModule: plain SGD, so an update is exactly ``-lr * gradient``."""

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.lr)


def sgd_model(lr: float = 0.5) -> SGDClassifier:
    pl.seed_everything(0, verbose=False)
    return SGDClassifier(config=NO_DROPOUT, vocab_size=512, lr=lr)


def small_data(n: int = 96, batch_size: int = 16, **kw: Any) -> Any:
    return tiny_classification_data(synthetic_size=n, batch_size=batch_size, max_length=16, **kw)


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def fit(tmp_path: Path, model: pl.LightningModule, data: Any, dp: DifferentialPrivacy | None, **kw: Any) -> pl.Trainer:
    kw.setdefault("max_epochs", 1)
    kw.setdefault("limit_val_batches", 0)
    trainer = quiet_trainer(tmp_path, callbacks=[dp] if dp else [], **kw)
    trainer.fit(model, data)
    return trainer


# -- accounting --------------------------------------------------------------------------
@pytest.mark.parametrize("accountant,cls", [("prv", PRVAccountant), ("rdp", RDPAccountant)])
def test_epsilon_equals_opacus_accountant_recomputed(tmp_path, accountant, cls):
    dp = DifferentialPrivacy(noise_multiplier=1.1, delta=1e-5, accountant=accountant)
    data = small_data()
    fit(tmp_path, sgd_model(), data, dp, max_epochs=2)
    n = len(data.load_records()["train"])
    q = 16 / n
    steps = 2 * round(1 / q)
    assert dp.sample_rate == pytest.approx(q) and dp.steps_done == steps
    independent = cls()
    independent.history = [(1.1, q, steps)]
    assert dp.epsilon() == pytest.approx(independent.get_epsilon(delta=1e-5), rel=1e-9)
    assert dp.provenance()["epsilon"] == pytest.approx(dp.epsilon())


def test_derived_noise_meets_target_epsilon(tmp_path):
    dp = DifferentialPrivacy(target_epsilon=3.0, delta=1e-4)
    fit(tmp_path, sgd_model(), small_data(), dp, max_epochs=2)
    assert dp.steps_done == dp.planned_steps
    assert 3.0 - 0.05 <= dp.epsilon() <= 3.0  # meets the target, within the search tolerance
    events = read_events(tmp_path / "audit.jsonl")
    per_epoch = [e["payload"] for e in events if e["type"] == "privacy.epsilon"]
    assert [e["epoch"] for e in per_epoch] == [0, 1]
    assert per_epoch[-1]["epsilon"] == pytest.approx(dp.epsilon())
    assert per_epoch[0]["epsilon"] < per_epoch[1]["epsilon"]


# -- Poisson sampling --------------------------------------------------------------------
def test_poisson_sampler_statistics_and_ddp_shards():
    counts = torch.zeros(500)
    sampler = PoissonBatchSampler(range(500), sample_rate=0.1, seed=3)
    sizes = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        for batch in sampler:
            sizes.append(len(batch))
            counts[batch] += 1
    # each example joins each of the 200 batches with probability 0.1: ~20 times, binomial spread
    assert counts.mean() == pytest.approx(20, rel=0.05)
    assert len(set(sizes)) > 5  # batch sizes vary: not fixed-size shuffling
    from torch.utils.data import DistributedSampler

    shards = [
        PoissonBatchSampler(DistributedSampler(list(range(101)), num_replicas=2, rank=r), 0.2).shard.tolist()
        for r in (0, 1)
    ]
    assert set(shards[0]).isdisjoint(shards[1]) and sorted(shards[0] + shards[1]) == list(range(101))


def test_empty_micro_batches_are_flagged():
    sampler = PoissonBatchSampler(range(40), sample_rate=0.05, accumulate=4, seed=0)
    batches = list(sampler)
    flags = list(sampler.dummy_flags)
    assert len(batches) == len(flags) == len(sampler)
    assert any(flags), "expected some empty micro-batches at q=0.05, N=40, 4 chunks"
    assert all(b == [0] for b, f in zip(batches, flags, strict=True) if f)


def test_training_uses_poisson_batches(tmp_path):
    seen: list[int] = []

    class Sizes(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(len(batch["sample_id"]))
            assert isinstance(trainer.train_dataloader.batch_sampler, PoissonBatchSampler)

    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    trainer = quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0, callbacks=[dp, Sizes()])
    trainer.fit(sgd_model(), small_data())
    assert len(seen) == dp.steps_done and len(set(seen)) > 1


def test_poisson_loader_helper():
    loader = poisson_loader(DataLoader(list(range(200)), batch_size=20), seed=1)
    assert isinstance(loader.batch_sampler, PoissonBatchSampler) and loader.batch_sampler.sample_rate == 0.1


# -- clipping and noise ------------------------------------------------------------------
def full_batch_data() -> Any:
    return small_data(n=48, batch_size=64)  # q = 1: every example in every batch, no sampling randomness


def test_noise_zero_no_clipping_matches_non_private(tmp_path):
    private = sgd_model()
    fit(tmp_path / "dp", private, full_batch_data(), DifferentialPrivacy(noise_multiplier=0.0, max_grad_norm=1e9))
    plain = sgd_model()
    before = params(plain)
    fit(tmp_path / "plain", plain, full_batch_data(), None, max_steps=1)
    after_dp, after_plain = params(private), params(plain)
    moved = max((after_plain[k] - before[k]).abs().max() for k in before)
    assert moved > 1e-3  # the comparison has something to compare
    for k in before:
        torch.testing.assert_close(after_dp[k], after_plain[k], atol=1e-5, rtol=1e-4)


def test_clipping_matches_per_example_computation(tmp_path):
    """One SGD step (lr 1, q = 1, no noise) moves the weights by minus the mean of clipped per-example gradients."""
    clip = 0.5
    model, data = sgd_model(lr=1.0), full_batch_data()
    data.setup("fit")
    before = params(model)
    grads, norms = [], []
    for record in data.load_records()["train"]:
        model.zero_grad()
        model.per_sample_loss(next(iter(data.loader_for([record])))).sum().backward()
        g = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        grads.append(g)
        norms.append(float(torch.sqrt(sum((v**2).sum() for v in g.values()))))
    assert min(norms) > clip  # every example is actually clipped
    expected = {
        n: -sum(g[n] * min(1.0, clip / (nm + 1e-6)) for g, nm in zip(grads, norms, strict=True)) / len(grads)
        for n in grads[0]
    }
    model.zero_grad()
    fit(
        tmp_path,
        model,
        data,
        DifferentialPrivacy(noise_multiplier=0.0, max_grad_norm=clip, accountant="rdp"),
        max_steps=1,
    )
    after = dict(model.named_parameters())
    for n, step in expected.items():
        torch.testing.assert_close(after[n].detach() - before[n], step, atol=1e-6, rtol=1e-4)


def train_loss(model: TextClassifier, data: Any) -> float:
    model.eval()
    with torch.no_grad():
        losses = [model.per_sample_loss(b) for b in data.loader_for(data.load_records()["train"])]
    model.train()
    return float(torch.cat(losses).mean())


def test_huge_noise_does_not_learn(tmp_path):
    change = {}
    for name, sigma in (("clean", 0.0), ("huge", 1e3)):
        pl.seed_everything(0, verbose=False)
        model, data = TextClassifier(config=NO_DROPOUT, vocab_size=512, lr=1e-2), full_batch_data()
        data.setup("fit")
        start = train_loss(model, data)
        dp = DifferentialPrivacy(noise_multiplier=sigma, max_grad_norm=10.0, accountant="rdp")
        fit(tmp_path / name, model, data, dp, max_steps=6, max_epochs=6)
        change[name] = train_loss(model, data) - start
    assert change["clean"] < -0.01, change  # noiseless DP-SGD (norms ~1 < 10: unclipped) learns
    assert change["huge"] > change["clean"] + 0.01, change  # the noise swamps the signal


def test_ghost_clipping_matches_hooks(tmp_path):
    out = {}
    for mode in ("hooks", "ghost"):
        model = sgd_model()
        fit(
            tmp_path / mode,
            model,
            full_batch_data(),
            DifferentialPrivacy(noise_multiplier=0.0, max_grad_norm=0.05, grad_sample_mode=mode),
            max_epochs=2,
        )
        out[mode] = params(model)
    for k in out["hooks"]:
        torch.testing.assert_close(out["ghost"][k], out["hooks"][k], atol=1e-5, rtol=1e-4)


def test_gradient_accumulation_is_one_noisy_step_per_logical_batch(tmp_path):
    out, eps = {}, {}
    for acc, batch in ((1, 64), (2, 32)):
        model = sgd_model()
        dp = DifferentialPrivacy(noise_multiplier=0.0, max_grad_norm=0.05)
        fit(
            tmp_path / str(acc),
            model,
            small_data(n=48, batch_size=batch),
            dp,
            max_epochs=2,
            accumulate_grad_batches=acc,
        )
        out[acc], eps[acc] = params(model), (dp.sample_rate, dp.steps_done)
    assert eps[1] == eps[2] == (1.0, 2)
    for k in out[1]:
        torch.testing.assert_close(out[2][k], out[1][k], atol=1e-5, rtol=1e-4)


def test_accumulation_with_empty_micro_batches_trains(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    fit(tmp_path, sgd_model(), small_data(n=96, batch_size=2), dp, max_steps=6, accumulate_grad_batches=4)
    assert dp.steps_done == 6


# -- resume, checkpoint keys -------------------------------------------------------------
@pytest.mark.parametrize("budget", [{"noise_multiplier": 1.0}, {"target_epsilon": 4.0, "steps": 6}])
def test_resumed_epsilon_equals_uninterrupted(tmp_path, budget):
    # target_epsilon: the interrupted run plans (steps=6) the same budget; the noise comes back from the checkpoint
    full = DifferentialPrivacy(delta=1e-5, accountant="rdp", **budget)
    fit(tmp_path / "full", sgd_model(), small_data(n=54), full, max_epochs=2)

    first = DifferentialPrivacy(delta=1e-5, accountant="rdp", **budget)
    trainer = fit(tmp_path / "a", sgd_model(), small_data(n=54), first, max_epochs=2, max_steps=full.steps_done // 2)
    ckpt = tmp_path / "half.ckpt"
    trainer.save_checkpoint(ckpt)
    resumed = DifferentialPrivacy(delta=1e-5, accountant="rdp", **budget)
    trainer = quiet_trainer(tmp_path / "b", max_epochs=2, limit_val_batches=0, callbacks=[resumed])
    trainer.fit(sgd_model(), small_data(n=54), ckpt_path=ckpt)
    assert first.steps_done == full.steps_done // 2
    assert resumed.steps_done == full.steps_done
    assert resumed.noise_multiplier == full.noise_multiplier
    assert resumed.epsilon() == pytest.approx(full.epsilon(), rel=1e-9)


def test_checkpoint_keys_are_the_models(tmp_path):
    model = sgd_model()
    expected = set(model.state_dict())
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    trainer = fit(tmp_path, model, small_data(), dp, max_steps=2)
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    ckpt = torch.load(tmp_path / "c.ckpt", weights_only=False)
    assert set(ckpt["state_dict"]) == expected
    assert not any("_module" in k for k in ckpt["state_dict"])
    assert ckpt["callbacks"][dp.state_key]["steps_done"] == 2


# -- budget --------------------------------------------------------------------------------
def test_stops_before_budget_is_exceeded(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, max_epsilon=3.0, accountant="rdp")
    with pytest.warns(UserWarning, match="training will stop early"):
        trainer = fit(tmp_path, sgd_model(), small_data(), dp, max_epochs=20)
    assert trainer.should_stop and 0 < dp.steps_done < dp.planned_steps
    assert dp.epsilon() <= 3.0
    one_more = RDPAccountant()
    one_more.history = [(1.0, dp.sample_rate, dp.steps_done + 1)]
    assert one_more.get_epsilon(delta=1e-5) > 3.0  # it stopped at the last step that fits
    events = [e for e in read_events(tmp_path / "audit.jsonl") if e["type"] == "privacy.budget_exhausted"]
    assert len(events) == 1 and events[0]["payload"]["steps"] == dp.steps_done


def test_provenance_and_audit_events(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    fit(tmp_path, sgd_model(), small_data(), dp, max_epochs=1)
    prov = dp.provenance()
    assert prov["sampling"] == "poisson" and prov["steps"] == dp.steps_done and prov["noise_multiplier"] == 1.0
    assert prov["epsilon"] == pytest.approx(dp.epsilon()) and dp.epsilon() > 0
    types = [e["type"] for e in read_events(tmp_path / "audit.jsonl") if e["type"].startswith("privacy.")]
    assert types == ["privacy.start", "privacy.epsilon", "privacy.end"]


# -- Hugging Face models in every supported mode -----------------------------------------
@pytest.mark.parametrize("mode", ["hooks", "ghost"])
@pytest.mark.parametrize("kind", ["classifier", "causal"])
def test_hf_models_train_under_dp(tmp_path, mode, kind):
    pl.seed_everything(0, verbose=False)
    if kind == "classifier":
        model, data = sgd_model(), small_data(n=64)
    else:
        model, data = tiny_causal_lm(), tiny_causal_data(synthetic_size=48, batch_size=8, max_length=24)
    before = params(model)
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, grad_sample_mode=mode, untie_embeddings=True)
    fit(tmp_path, model, data, dp, max_steps=3)
    assert dp.steps_done == 3 and dp.epsilon() > 0
    assert any(not torch.equal(before[k], v) for k, v in params(model).items())
    if kind == "causal" and mode == "ghost":
        assert model.model.lm_head.weight is not model.model.transformer.wte.weight


def test_ids_are_materialized_per_example():
    # Opacus expands every input along the batch; broadcast (stride-0) ids break per-sample gradients.
    data = small_data(n=32)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    for key in ("position_ids", "token_type_ids"):
        assert batch[key].shape == batch["input_ids"].shape and batch[key].is_contiguous()
        assert 0 not in batch[key].stride()


def test_bf16_mixed_precision_trains(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    fit(tmp_path, sgd_model(), small_data(n=64), dp, max_steps=2, precision="bf16-mixed")
    assert dp.steps_done == 2


# -- clear errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "exactly one of target_epsilon and noise_multiplier"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({"noise_multiplier": 1.0, "grad_sample_mode": "ew"}, "expanded weights"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0}, "max_grad_norm must be > 0, got 0"),
        ({"noise_multiplier": 1.0, "accountant": "gdp"}, "accountant must be one of"),
        ({"target_epsilon": -1.0}, "target_epsilon must be > 0, got -1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DifferentialPrivacy(**kwargs)


@pytest.mark.parametrize(
    "trainer_kwargs,dp_kwargs,match",
    [
        ({"gradient_clip_val": 1.0}, {}, "gradient_clip_val"),
        ({"precision": "bf16-true"}, {}, "precision"),
        ({"accumulate_grad_batches": 2}, {"grad_sample_mode": "ghost"}, "accumulate_grad_batches"),
    ],
)
def test_unsupported_trainer_settings(tmp_path, trainer_kwargs, dp_kwargs, match):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, **dp_kwargs)
    with pytest.raises(ConfigError, match=match):
        fit(tmp_path, sgd_model(), small_data(n=32), dp, max_steps=1, **trainer_kwargs)


def test_tied_embeddings_refused_under_ghost(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, grad_sample_mode="ghost")
    with pytest.raises(ConfigError, match="untie_embeddings=True"):
        fit(tmp_path, tiny_causal_lm(), tiny_causal_data(synthetic_size=32), dp, max_steps=1)


def test_loaders_passed_to_fit_are_poisson_sampled(tmp_path):
    # (more in test_privacy_fit_loader.py: a user's own module, poisson_loader, refusals)
    data = small_data(n=32)
    data.setup("fit")
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[dp])
    trainer.fit(sgd_model(), train_dataloaders=data.train_dataloader())
    assert dp.steps_done == 2 and dp.sample_rate == pytest.approx(16 / len(data.load_records()["train"]))


def test_budget_too_small_for_one_step(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=0.5, delta=1e-5, max_epsilon=1e-3)
    with pytest.warns(UserWarning, match="allows 0"):
        fit(tmp_path, sgd_model(), small_data(n=32), dp, max_steps=3)
    assert dp.steps_done == 0 and dp.epsilon() == 0.0
    assert math.isfinite(dp.max_steps_in_budget or 0)


def test_frozen_embeddings_stay_fixed(tmp_path):
    model = sgd_model()
    emb = model.model.get_input_embeddings().weight.detach().clone()
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, freeze_embeddings=True, accountant="rdp")
    fit(tmp_path, model, small_data(n=48), dp, max_steps=2)
    assert dp.steps_done == 2
    assert torch.equal(model.model.get_input_embeddings().weight, emb)
    assert not model.model.get_input_embeddings().weight.requires_grad


def test_trainable_patterns_train_only_the_named_parameters(tmp_path):
    model = sgd_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, trainable=["classifier.*"], accountant="rdp")
    fit(tmp_path, model, small_data(n=48), dp, max_steps=2)
    assert dp.steps_done == 2
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"model.classifier.weight", "model.classifier.bias"}  # noise moved only these
    assert dp.trainable_parameters == sum(p.numel() for p in model.model.classifier.parameters())
    start = [e for e in read_events(tmp_path / "audit.jsonl") if e["type"] == "privacy.start"]
    assert start and start[0]["payload"]["trainable"] == ["classifier.*"]


def test_trainable_pattern_matching_nothing_is_refused(tmp_path):
    dp = DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5, trainable=["clasifier.*"])
    with pytest.raises(ConfigError, match="match no parameter"):
        fit(tmp_path, sgd_model(), small_data(n=32), dp, max_steps=1)
