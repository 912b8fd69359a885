"""DP-SGD under FSDP2: Lightning's ModelParallelStrategy on 2 CPU processes (gloo) through Opacus's FSDP
ghost clipping; Lightning's FSDP1 FSDPStrategy and unsupported settings refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from opacus.accountants import RDPAccountant

from secure_train.core.errors import ConfigError
from secure_train.privacy import DifferentialPrivacy
from secure_train.privacy.trainer_checks import check_trainer, opacus_supports_fsdp2

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch, lightning.pytorch as pl
    import torch.nn.functional as F
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.fsdp import fully_shard
    from secure_train.privacy import DifferentialPrivacy

    torch.set_num_threads(1)
    root = Path(sys.argv[1])

    class MLP(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        def configure_model(self):
            mesh = self.device_mesh["data_parallel"]
            for layer in self.net:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer, mesh=mesh)
            fully_shard(self, mesh=mesh)
        def training_step(self, batch, i):
            x, y, _ = batch
            return F.cross_entropy(self.net(x), y, reduction="none").mean()
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1.0)

    def full(module):
        return {n: p.full_tensor().tolist() for n, p in module.named_parameters()}  # collective: every rank

    class Record(pl.Callback):
        def __init__(self, dp, name):
            self.dp, self.name, self.ids = dp, name, []
        def on_train_start(self, trainer, module):
            self.before = full(module)
            self.optimizer = type(trainer.optimizers[0]).__name__
        def on_train_batch_start(self, trainer, module, batch, i):
            self.ids.append(batch[2].tolist())
        def on_train_end(self, trainer, module):
            doc = {
                "world_size": trainer.world_size, "optimizer": self.optimizer, "sample_rate": self.dp.sample_rate,
                "steps": self.dp.steps_done, "epsilon": self.dp.epsilon(), "noise": self.dp.noise_multiplier,
                "delta": self.dp._delta(), "expected_batch": trainer.optimizers[0].expected_batch_size,
                "logged": float(trainer.callback_metrics.get("dp/epsilon", float("nan"))),
                "sharded": type(next(module.parameters())).__name__, "ids": self.ids,
                "before": self.before, "after": full(module),
            }
            (root / f"{self.name}{trainer.global_rank}.json").write_text(json.dumps(doc))

    g = torch.Generator().manual_seed(1)
    n = 64
    data = torch.utils.data.TensorDataset(4 * torch.randn(n, 16, generator=g), torch.randint(0, 3, (n,), generator=g),
                                          torch.arange(n))
    for name, noise, steps in (("eps", 1.0, -1), ("clip", 0.0, 1)):
        dp = DifferentialPrivacy(noise_multiplier=noise, max_grad_norm=0.5, delta=1e-5, accountant="rdp",
                                 grad_sample_mode="ghost")
        trainer = pl.Trainer(
            accelerator="cpu", devices=2, max_epochs=1, max_steps=steps, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, default_root_dir=root,
            strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
            callbacks=[dp, Record(dp, name)],
        )
        trainer.fit(MLP(), torch.utils.data.DataLoader(data, batch_size=8))
    """
)


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    """The script above under ``ModelParallelStrategy`` (2 CPU ranks): each rank's record of each fit."""
    root = tmp_path_factory.mktemp("fsdp")
    script = root / "train_fsdp.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=300, env=env, cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: [json.loads((root / f"{name}{r}.json").read_text()) for r in range(2)] for name in ("eps", "clip")}


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp2_epsilon_is_logged_and_matches_a_fresh_accountant(fsdp_run):
    ranks = fsdp_run["eps"]
    for r in ranks:
        assert r["world_size"] == 2 and r["optimizer"] == "FSDPOptimizerFastGradientClipping"
        assert r["sharded"] == "DTensor"
        assert r["sample_rate"] == pytest.approx(8 * 2 / 64)  # q = batch * devices * accumulate / N
        assert r["expected_batch"] == pytest.approx(8)  # per rank
        assert r["steps"] == 4  # round(1 / q): one epoch
    fresh = RDPAccountant()
    fresh.history = [(1.0, 0.25, 4)]
    expected = fresh.get_epsilon(delta=1e-5)
    assert ranks[0]["epsilon"] == pytest.approx(expected, rel=1e-12) == ranks[1]["epsilon"]
    assert ranks[0]["logged"] == pytest.approx(expected, rel=1e-6)  # dp/epsilon (rank 0 logs)
    # noise of one global step: all ranks end with the same (gathered) weights
    assert ranks[0]["after"] == ranks[1]["after"]


def _per_example_gradients(before: dict, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)).double()
    net.load_state_dict({k.removeprefix("net."): torch.tensor(v, dtype=torch.float64) for k, v in before.items()})
    grads = []
    for xi, yi in zip(x, y, strict=True):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xi[None]), yi[None]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    return grads


@pytest.mark.slow
@pytest.mark.ddp
def test_fsdp2_step_is_the_sum_of_clipped_per_example_gradients(fsdp_run):
    """σ = 0, SGD lr 1: the sharded update must equal -Σ clip_C(g_i) / (q N) over both ranks' batches."""
    ranks = fsdp_run["clip"]
    assert [r["steps"] for r in ranks] == [1, 1]
    before = ranks[0]["before"]
    assert ranks[1]["before"] == before
    g = torch.Generator().manual_seed(1)  # the script's data
    x, y = (4 * torch.randn(64, 16, generator=g)).double(), torch.randint(0, 3, (64,), generator=g)
    ids = ranks[0]["ids"][0] + ranks[1]["ids"][0]
    assert ids and set(ranks[0]["ids"][0]).isdisjoint(ranks[1]["ids"][0])
    grads = _per_example_gradients(before, x[ids], y[ids])
    norms = torch.stack([gi.norm() for gi in grads])
    assert norms.min() > 2 * 0.5  # every example is clipped: unclipped, the test below fails
    clipped = sum(gi * min(1.0, 0.5 / (float(gi.norm()) + 1e-6)) for gi in grads)
    unclipped = sum(grads)
    expected_batch = 0.25 * 64
    update = torch.cat([(torch.tensor(ranks[0]["after"][k]) - torch.tensor(v)).flatten() for k, v in before.items()])
    assert torch.allclose(update.double(), -clipped / expected_batch, atol=1e-5)
    assert not torch.allclose(update.double(), -unclipped / expected_batch, atol=1e-2)
    assert float(update.norm()) <= 0.5 * len(ids) / expected_batch + 1e-6  # ||Σ clipped|| <= C |batch|


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_fsdp1_strategy_is_refused_naming_fully_shard_and_the_opacus_version(mode):
    trainer = SimpleNamespace(strategy=FSDPStrategy())
    with pytest.raises(ConfigError, match=r"FSDPStrategy \(FSDP1.*opacus>=1\.6.*ModelParallelStrategy.*fully_shard"):
        check_trainer(trainer, mode)  # type: ignore[arg-type]


def test_model_parallel_needs_ghost_clipping():
    trainer = SimpleNamespace(strategy=ModelParallelStrategy())
    with pytest.raises(ConfigError, match=r"ModelParallelStrategy.*opacus>=1\.6.*grad_sample_mode='ghost'"):
        DifferentialPrivacy(noise_multiplier=1.0, delta=1e-5).setup(trainer, torch.nn.Linear(2, 2), "fit")  # type: ignore[arg-type]


def test_opacus_version_gate():
    assert opacus_supports_fsdp2("1.6.0") and opacus_supports_fsdp2("1.7.1") and opacus_supports_fsdp2("2.0")
    assert not opacus_supports_fsdp2("1.5.4")


def test_model_parallel_with_tensor_parallelism_is_refused():
    class Mesh:  # stands in for the strategy's 2-D device mesh after setup_environment
        def __getitem__(self, name: str) -> SimpleNamespace:
            return SimpleNamespace(size=lambda: 2 if name == "tensor_parallel" else 1)

    strategy = ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=2)
    strategy._device_mesh = Mesh()  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"data-parallel FSDP2 only, got tensor_parallel_size=2"):
        check_trainer(SimpleNamespace(strategy=strategy), "ghost")  # type: ignore[arg-type]
