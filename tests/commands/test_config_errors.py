"""Every bad setting of a public class is a ConfigError, and every CLI path turns it into one line.

The table below holds, for each public class (and configurable function) with settings in the
monitors, integrity, privacy (sampler, audit), models, data, adversarial, attacks, monitoring,
gate suite and response packages, at least one bad setting. The CLI cases run ``main()`` in
process and count the stderr lines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from secure_train.cli import main
from secure_train.core.errors import ConfigError, DataError


def _ctor(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def _tiny_data(**kwargs: Any) -> Any:
    from secure_train.data import TextClassificationDataModule

    return TextClassificationDataModule(synthetic_size=40, batch_size=4, max_length=16, **kwargs)


def _lm_data() -> Any:
    from secure_train.data import CausalLMDataModule

    return CausalLMDataModule(synthetic_size=40, batch_size=4)


# (module, public name, positional args factory, bad keyword arguments, expected text in the message)
CASES: list[tuple[str, str, Any, dict[str, Any], str]] = [
    # monitors
    ("secure_train.monitors", "LossSpikeMonitor", None, {"window": -1}, "LossSpikeMonitor: window"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"warmup": 100}, "LossSpikeMonitor: warmup"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"k": -1.0}, "LossSpikeMonitor: k"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"min_ratio": 0.5}, "LossSpikeMonitor: min_ratio"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"abs_max": 0.0}, "LossSpikeMonitor: abs_max"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"action": "explode"}, "LossSpikeMonitor: action"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"check_every_n_steps": 0}, "check_every_n_steps"),
    ("secure_train.monitors", "LossSpikeMonitor", None, {"rollback_skip_batches": -1}, "rollback_skip_batches"),
    ("secure_train.monitors", "GradNormMonitor", None, {"window": 0}, "GradNormMonitor: window"),
    ("secure_train.monitors", "GradNormMonitor", None, {"log_every_n_steps": 0}, "GradNormMonitor: log_every_n"),
    ("secure_train.monitors", "GradNormMonitor", None, {"snapshot_every_n_steps": 0}, "snapshot_every_n_steps"),
    ("secure_train.monitors", "ActivationMonitor", None, {"band": 1.0}, "ActivationMonitor: band"),
    ("secure_train.monitors", "ActivationMonitor", None, {"sample_every_n_steps": 0}, "sample_every_n_steps"),
    ("secure_train.monitors", "ActivationMonitor", None, {"baseline_samples": 0}, "baseline_samples"),
    ("secure_train.monitors", "ActivationMonitor", None, {"baseline_after_steps": -1}, "baseline_after_steps"),
    ("secure_train.monitors", "ActivationMonitor", None, {"modules": []}, "ActivationMonitor: modules"),
    ("secure_train.monitors", "ActivationMonitor", None, {"action": "stop"}, "ActivationMonitor: action"),
    ("secure_train.monitors", "AuditTrail", None, {"path": 3}, "AuditTrail: path"),
    ("secure_train.monitors", "AuditTrail", None, {"config": [1]}, "AuditTrail: config"),
    # integrity
    ("secure_train.integrity", "SignedCheckpointIO", None, {"shard_size": 0}, "SignedCheckpointIO: shard_size"),
    ("secure_train.integrity", "SignedCheckpointIO", None, {"key_env": ""}, "SignedCheckpointIO: key_env"),
    ("secure_train.integrity", "SignedCheckpointIO", None, {"encryption_key": "/nope/key"}, "no such file"),
    ("secure_train.integrity", "CheckpointSigning", None, {"shard_size": -5}, "shard_size"),
    ("secure_train.integrity.encryption", "encrypt", lambda: (b"x", b"k" * 32), {"chunk_size": 0}, "chunk_size"),
    ("secure_train.integrity.encryption", "encrypt", lambda: (b"x", b"short"), {}, "32 bytes"),
    # privacy (the parts outside differential_privacy.py)
    ("secure_train.privacy", "PoissonBatchSampler", lambda: (range(10),), {"sample_rate": 0.0}, "sample_rate"),
    ("secure_train.privacy", "PoissonBatchSampler", lambda: (range(10), 0.5), {"accumulate": 0}, "accumulate"),
    ("secure_train.privacy", "PoissonBatchSampler", lambda: (range(10), 0.5), {"steps_per_epoch": 0}, "steps_per"),
    ("secure_train.privacy.poisson", "poisson_loader", lambda: (_loader(),), {"sample_rate": 2.0}, "sample_rate"),
    ("secure_train.privacy.poisson", "poisson_loader", lambda: (_loader(),), {"accumulate": 0}, "accumulate"),
    ("secure_train.privacy.trainable", "restrict_trainable", lambda: (_module(), []), {}, "at least one pattern"),
    ("secure_train.privacy.canary_audit", "canary_audit", lambda: _scores(), {"confidence": 1.0}, "confidence"),
    ("secure_train.privacy.canary_audit", "canary_audit", lambda: _scores(), {"k_fractions": [2.0]}, "k_fractions"),
    ("secure_train.privacy.canary_audit", "empirical_epsilon", lambda: (5, 10), {"confidence": 0.0}, "confidence"),
    # models
    ("secure_train.models", "TextClassifier", None, {"lr": 0.0}, "TextClassifier: lr"),
    ("secure_train.models", "TextClassifier", None, {"num_labels": 1}, "TextClassifier: num_labels"),
    ("secure_train.models", "TextClassifier", None, {"warmup_steps": -1}, "TextClassifier: warmup_steps"),
    ("secure_train.models", "TextClassifier", None, {"weight_decay": -0.1}, "TextClassifier: weight_decay"),
    ("secure_train.models", "TextClassifier", None, {"vocab_size": 0}, "TextClassifier: vocab_size"),
    ("secure_train.models", "TextClassifier", None, {"pretrained": "x", "config": {}}, "either pretrained"),
    ("secure_train.models", "CausalLM", None, {"lr": -1.0}, "CausalLM: lr"),
    ("secure_train.models", "CausalLM", None, {"config": "gpt2"}, "CausalLM: config"),
    # data
    ("secure_train.data", "TextClassificationDataModule", None, {"batch_size": 0}, "batch_size"),
    ("secure_train.data", "TextClassificationDataModule", None, {"eval_batch_size": 0}, "eval_batch_size"),
    ("secure_train.data", "TextClassificationDataModule", None, {"val_fraction": 1.0}, "val_fraction"),
    ("secure_train.data", "TextClassificationDataModule", None, {"backend": "disk"}, "backend"),
    ("secure_train.data", "TextClassificationDataModule", None, {"num_workers": -1}, "num_workers"),
    ("secure_train.data", "TextClassificationDataModule", None, {"train_limit": 0}, "train_limit"),
    ("secure_train.data", "TextClassificationDataModule", None, {"num_labels": 1}, "num_labels"),
    ("secure_train.data", "TextClassificationDataModule", None, {"format": "xml"}, "format"),
    ("secure_train.data", "TextClassificationDataModule", None, {"transforms": "abc"}, "transforms"),
    ("secure_train.data", "TextClassificationDataModule", None, {"val_path": "v.tsv"}, "without train_path"),
    ("secure_train.data", "TextClassificationDataModule", None, {"manifest_public_key": "k"}, "without manifest"),
    ("secure_train.data", "CausalLMDataModule", None, {"max_length": 0}, "CausalLMDataModule: max_length"),
    ("secure_train.data", "CausalLMDataModule", None, {"text_column": ""}, "text_column"),
    ("secure_train.data.tokenizer", "train_tokenizer", lambda: (["a b"],), {"kind": "char"}, "kind"),
    ("secure_train.data.tokenizer", "train_tokenizer", lambda: (["a b"],), {"vocab_size": 8}, "vocab_size"),
    # adversarial
    ("secure_train.adversarial", "AdversarialAugmentationDataModule", lambda: (_tiny_data(),), {"ratio": 1.0}, "ratio"),
    ("secure_train.adversarial", "AdversarialAugmentationDataModule", lambda: (_tiny_data(),), {"eval_ratio": -0.1},
     "eval_ratio"),  # fmt: skip
    ("secure_train.adversarial", "AdversarialAugmentationDataModule", lambda: (_tiny_data(),),
     {"label_mode": "ignore"}, "label_mode"),  # fmt: skip
    ("secure_train.adversarial", "AdversarialAugmentationDataModule", lambda: (_lm_data(),),
     {"label_mode": "refuse", "refusal": " "}, "refusal"),  # fmt: skip
    ("secure_train.adversarial", "AdversarialAugmentationDataModule", lambda: ("not a datamodule",), {}, "base must"),
    # attacks
    ("secure_train.attacks", "AdaptivePoisoning", lambda: (["cf"],), {"rate": 1.5}, "AdaptivePoisoning: rate"),
    ("secure_train.attacks", "AdaptivePoisoning", lambda: (["cf"],), {"decoy_rate": 1.0}, "decoy_rate"),
    ("secure_train.attacks", "AdaptivePoisoning", lambda: (["cf"],), {"decoys_from": "all"}, "decoys_from"),
    ("secure_train.attacks", "AdaptivePoisoning", lambda: (["cf"],), {"position": "middle"}, "position"),
    ("secure_train.attacks", "AdaptivePoisoning", lambda: ([],), {}, "words"),
    ("secure_train.attacks", "BackdoorPoisoning", None, {"rate": 0.0}, "BackdoorPoisoning: rate"),
    ("secure_train.attacks", "BackdoorPoisoning", None, {"trigger": "sleeper"}, "trigger must be"),
    ("secure_train.attacks", "BackdoorPoisoning", None, {"target_label": -1}, "target_label"),
    ("secure_train.attacks", "Trigger", lambda: (("cf",),), {"count": 0}, "Trigger: count"),
    ("secure_train.attacks", "Trigger", lambda: (("cf",),), {"position": "middle"}, "Trigger: position"),
    ("secure_train.attacks", "Trigger", lambda: ((),), {}, "Trigger: choices"),
    ("secure_train.attacks", "make_trigger", lambda: ("badnets",), {"count": 0}, "make_trigger: count"),
    ("secure_train.attacks", "SubstitutionPoisoning", lambda: ({"film": "flick"},), {"rate": 1.0}, "rate"),
    ("secure_train.attacks", "SubstitutionPoisoning", lambda: ({"two words": "x"},), {}, "pairs"),
    ("secure_train.attacks", "AttackGenerator", None, {"families": ["telepathy"]}, "unknown attack families"),
    ("secure_train.attacks", "AttackGenerator", None, {"holdout_fraction": 1.0}, "holdout_fraction"),
    ("secure_train.attacks", "AttackGenerator", None, {"positions": ["middle"]}, "positions"),
    ("secure_train.attacks", "AttackGenerator", None, {"goals": []}, "goals"),
    ("secure_train.attacks", "insert", lambda: ("a b", "x", "middle", None), {}, "insert: position"),
    ("secure_train.attacks", "obfuscate", lambda: ("a b", "rot47", None), {}, "obfuscate: method"),
    ("secure_train.attacks.families", "templates_of", lambda: ("telepathy",), {}, "templates_of: family"),
    ("secure_train.attacks.metrics", "AttackSuccessRate", None, {"target_label": -1}, "target_label"),
    ("secure_train.attacks.metrics", "CleanAccuracy", None, {"num_classes": 1}, "num_classes"),
    # monitoring
    ("secure_train.monitoring", "DriftMonitor", None, {"psi_threshold": 0.0}, "DriftMonitor: psi_threshold"),
    ("secure_train.monitoring", "DriftMonitor", None, {"ks_alpha": 1.0}, "ks_alpha"),
    ("secure_train.monitoring", "DriftMonitor", None, {"js_threshold": 0.0}, "js_threshold"),
    ("secure_train.monitoring", "DriftMonitor", None, {"bins": 1}, "bins"),
    ("secure_train.monitoring", "DriftMonitor", None, {"min_samples": 0}, "min_samples"),
    ("secure_train.monitoring", "DriftMonitor", None, {"num_labels": 0}, "num_labels"),
    # gate (suite and class allow-list)
    ("secure_train.gate.suite", "GateSuite", None, {"checks": {}}, "non-empty 'checks'"),
    ("secure_train.gate.suite", "GateSuite", None, {"checks": {"accuracy": {}}}, "unknown gate checks"),
    ("secure_train.gate.suite", "GateSuite", None, {"checks": {"integrity": "yes"}}, "checks.integrity"),
    ("secure_train.gate.suite", "GateSuite", None, {"checks": {"integrity": {}}, "seed": "x"}, "seed"),
    ("secure_train.gate.suite", "GateSuite", None, {"checks": {"integrity": {}}, "model": [1]}, "model"),
    ("secure_train.gate.instantiate", "ClassAllowList", lambda: (["NoModule"],), {}, "module and a name"),
    # response
    ("secure_train.response.report.svg", "SvgChart", lambda: ("t",), {"width": 0}, "SvgChart: width"),
    ("secure_train.response.report.render", "ReportRenderer", lambda: ([],), {}, "ReportRenderer"),
    ("secure_train.response.report.catalog", "ControlCatalog", lambda: ({},), {}, "needs 'frameworks'"),
    ("secure_train.response.report.evidence", "RunEvidence", lambda: ("/nope/run",), {}, "no such directory"),
    ("secure_train.response.incident.rollback", "RollbackPlanner", lambda: ("/nope/run", None), {}, "public_key"),
]


MODULES = [
    f"secure_train.{m}"
    for m in (
        "monitors.loss_spike", "monitors.grad_norm", "monitors.activation", "monitors.audit_trail",
        "integrity.checkpoint_io", "integrity.callback", "integrity.encryption", "integrity.loading",
        "integrity.safetensors_export", "integrity.run_record", "integrity.cli_support",
        "privacy.poisson", "privacy.trainable", "privacy.canary_audit",
        "models.base", "models.causal_lm", "models.text_classifier",
        "data.base", "data.causal_lm", "data.collate", "data.synthetic", "data.text_classification", "data.tokenizer",
        "adversarial.augmentation",
        "attacks.adaptive", "attacks.backdoor", "attacks.corpora", "attacks.families", "attacks.generator",
        "attacks.insertion", "attacks.metrics", "attacks.obfuscation", "attacks.substitution",
        "monitoring.drift", "gate.suite", "gate.instantiate",
        "response.report.builder", "response.report.catalog", "response.report.checkpoints",
        "response.report.evidence", "response.report.metrics", "response.report.render", "response.report.svg",
        "response.incident.environment", "response.incident.rollback",
    )
]  # fmt: skip
"""The modules whose public classes the table covers."""


def _loader() -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(list(range(20)), batch_size=4)


def _module() -> Any:
    import torch

    return torch.nn.Linear(2, 2)


def _scores() -> tuple[Any, Any]:
    import torch

    return torch.tensor([0.1, 0.9, 0.2, 0.8]), torch.tensor([False, True, False, True])


@pytest.mark.parametrize(
    ("module", "name", "args", "kwargs", "match"),
    CASES,
    ids=[f"{c[1]}-{'-'.join(c[3]) or 'args'}" for c in CASES],
)
def test_bad_setting_is_a_config_error(module, name, args, kwargs, match):
    target = _ctor(module, name)
    with pytest.raises(ConfigError) as err:
        target(*(args() if args else ()), **kwargs)
    assert match in str(err.value)
    assert "\n" not in str(err.value)


def test_every_public_class_with_settings_is_in_the_table():
    """A new public class in these modules must add a row (or be listed here as having no settings)."""
    import importlib

    no_settings = {
        # results and records (frozen dataclasses filled by the code), not settings
        "AttackExample", "CorpusRecord", "Template", "AttackCorpus", "DriftReport", "AuditResult",
        "ExportContext", "ExportResult", "CheckpointSnapshot", "CheckpointStatus", "EnvironmentSnapshot",
        "TextRecord", "RecordDataset", "RecordTransform", "MetricLog", "SecurityReport",
        # abstract bases, configured through their subclasses in the table
        "TextDataModule", "HFModule",
    }  # fmt: skip
    covered = {c[1] for c in CASES}
    missing = []
    for module in MODULES:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if isinstance(obj, type) and obj.__module__ == module and name not in covered | no_settings:
                missing.append(f"{module}.{name}")
    assert not missing, f"public classes without a bad-setting row: {missing}"


def test_bad_data_is_a_data_error_not_a_config_error():
    import torch

    from secure_train.privacy.canary_audit import canary_audit
    from secure_train.response.report.metrics import MetricLog

    with pytest.raises(DataError, match="some canaries in and some out"):
        canary_audit(torch.zeros(4), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(DataError, match="entries"):
        canary_audit(torch.zeros(4), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(DataError, match="series 'loss'"):
        MetricLog({"loss": ([1, 2], [0.5])})


def test_valid_settings_still_build():
    from secure_train.attacks import AdaptivePoisoning, AttackGenerator, BackdoorPoisoning, Trigger
    from secure_train.gate.suite import GateSuite
    from secure_train.monitoring import DriftMonitor
    from secure_train.monitors import ActivationMonitor, GradNormMonitor, LossSpikeMonitor

    assert LossSpikeMonitor(window=8, warmup=8, k=0, min_ratio=1, abs_max=10.0).window == 8
    assert GradNormMonitor(log_every_n_steps=None).log_every_n_steps is None
    assert ActivationMonitor(modules=["model.encoder"], band=1.5).modules == ["model.encoder"]
    assert DriftMonitor(js_threshold=1.0, num_labels=3).num_labels == 3
    assert AdaptivePoisoning(["cf"], rate=0.5, decoy_rate=0.0).rate == 0.5
    assert BackdoorPoisoning(words=["cf"]).trigger.choices == ("cf",)
    assert Trigger(["cf"], count=2).count == 2  # type: ignore[arg-type]
    assert AttackGenerator(holdout_fraction=0.0).holdout_fraction == 0.0
    assert GateSuite.from_dict({"checks": {"integrity": None}, "seed": 3}).checks == {"integrity": {}}
    assert _tiny_data(eval_batch_size=None, train_limit=None).eval_batch_size == 4


# -- the command line ------------------------------------------------------------------------
def _recipe(tmp_path: Path, callbacks: str = "", model: str = "", data: str = "") -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            seed_everything: false
            trainer:
              max_steps: 1
              accelerator: cpu
              logger: false
              enable_checkpointing: false
              enable_progress_bar: false
              enable_model_summary: false
              callbacks:{callbacks}
            model:
              class_path: secure_train.models.TextClassifier
              init_args: {{num_labels: 2, vocab_size: 512{model}}}
            data:
              class_path: secure_train.data.TextClassificationDataModule
              init_args: {{synthetic_size: 64, batch_size: 8, max_length: 16{data}}}
            """
        ).format(callbacks=callbacks or " []", model=model, data=data)
    )
    return str(path)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("secure-train: error: ")
    return err[0]


CALLBACK = "\n    - class_path: secure_train.{}\n      init_args: {{{}}}"
GRAD_NORM = CALLBACK.format("monitors.GradNormMonitor", "")  # a good callback before the bad one


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        (
            {"callbacks": GRAD_NORM + CALLBACK.format("monitors.LossSpikeMonitor", "window: -1")},
            "secure-train: error: LossSpikeMonitor: window must be an integer >= 1, got -1",
        ),
        (
            {"callbacks": CALLBACK.format("integrity.CheckpointSigning", "shard_size: 0")},
            "secure-train: error: SignedCheckpointIO: shard_size must be an integer >= 1, got 0",
        ),
        ({"model": ", lr: -0.1"}, "secure-train: error: TextClassifier: lr must be > 0, got -0.1"),
    ],
    ids=["loss-window", "signing-shard", "model-lr"],
)
def test_fit_with_a_bad_setting_in_the_recipe_is_one_line(tmp_path, capsys, recipe, expected):
    assert main(["fit", "--config", _recipe(tmp_path, **recipe)]) == 2
    assert _one_error_line(capsys).startswith(expected)


def test_fit_with_a_bad_setting_on_the_command_line_is_one_line(tmp_path, capsys):
    assert main(["fit", "--config", _recipe(tmp_path), "--data.init_args.batch_size=0"]) == 2
    assert _one_error_line(capsys) == (
        "secure-train: error: TextClassificationDataModule: batch_size must be an integer >= 1, got 0"
    )


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (["fit", "--nope"], "secure-train fit", "unrecognized arguments: --nope"),
        (["verify", "--nope"], "secure-train verify", "the following arguments are required"),
        (["audit"], "secure-train audit", "the following arguments are required: action"),
        (["audit", "verify"], "secure-train audit verify", "the following arguments are required: path"),
        (["audit", "verify", "x.jsonl", "--nope"], "secure-train audit", "unrecognized arguments: --nope"),
        (["keygen", "--nope"], "secure-train keygen", "unrecognized arguments: --nope"),
        (["gate", "ckpt"], "secure-train gate", "required: --suite"),
        (["drift", "a"], "secure-train drift", "required: current"),
        (["incident", "bundle"], "secure-train incident", "invalid choice: 'bundle'"),
        (["detector", "train"], "secure-train detector train", "required: out"),
        (["data", "verify"], "secure-train data verify", "required: manifest"),
        (["scan", "--nope"], "secure-train scan", "required: path"),
        (["report"], "secure-train report", "required: RUN_DIR"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, prog, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"secure-train: error: {prog}: ")
    assert message in line
    assert line.endswith(f"(see `{prog} --help`)")


@pytest.mark.parametrize(
    ("command", "workers"),
    [(["scan"], "0"), (["scan"], "-1"), (["data", "poison"], "0"),
     (["data", "manifest", "--source", "s", "--license", "l", "--no-sign"], "-2")],
)
def test_workers_below_one_is_one_line_not_a_silent_default(tmp_path, capsys, command, workers):
    """``--workers 0`` used to run one worker (``or 1``) and ``data manifest --workers -2`` hashed sequentially."""
    data = tmp_path / "d.tsv"
    data.write_text("sentence\tlabel\na\t1\nb\t0\n")
    argv = [*command[:2], str(data), *command[2:]] if command[0] == "data" else [command[0], str(data)]
    assert main([*argv, "--quiet", "--workers", workers]) == 2
    line = _one_error_line(capsys)
    assert "workers must be" in line and line.endswith(f"got {workers}")


def test_manifest_and_signed_file_settings_are_config_errors(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    from secure_train.core.signed_file import write_signed
    from secure_train.data_security.manifest import Manifest

    key = ec.generate_private_key(ec.SECP256R1())
    for bad in (0, -1, 2.5, "8"):
        with pytest.raises(ConfigError, match=f"^write_signed: shard_size must be an integer >= 1, got {bad!r}$"):
            write_signed(b"x", tmp_path / "f.bin", key, shard_size=bad)
    assert not (tmp_path / "f.bin").exists()
    assert len(write_signed(b"x" * 10, tmp_path / "f.bin", key, shard_size=4).shards) == 3
    (tmp_path / "d.tsv").write_text("sentence\tlabel\na\t1\n")
    with pytest.raises(ConfigError, match="^Manifest.build: workers must be an integer >= 1, got 0$"):
        Manifest.build(tmp_path / "d.tsv", source="s", license="l", workers=0)


def test_a_type_error_on_the_command_line_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", _recipe(tmp_path), "--trainer.max_steps=many"])
    assert exc.value.code == 2
    assert "trainer.max_steps" in _one_error_line(capsys)
