"""No code from a file: gadget checkpoints are refused by `secure-train gate` before anything runs.

Each attack names a command the gadget would run (``touch MARKER``); the test gates it with
the shipped suite (``recipes/gate/gate-suite.yaml``), checks exit status 2 with one
``secure-train: error:`` line, and that the marker file does not exist.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import MICRO_BERT, tiny_classifier

from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError, IntegrityError
from secure_train.gate import GateSuite
from secure_train.gate.differential_training import DifferentialTraining
from secure_train.gate.instantiate import OBJECT_KEYS, ClassAllowList
from secure_train.integrity import SignedCheckpointIO, generate_keypair

SHIPPED_SUITE = Path(__file__).resolve().parents[2] / "recipes" / "gate" / "gate-suite.yaml"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A work directory laid out as the shipped suite expects (``keys/project.pub``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECURE_TRAIN_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SECURE_TRAIN_VERDICTS", str(tmp_path / "verdicts"))
    (tmp_path / "keys").mkdir()
    generate_keypair(tmp_path / "keys" / "project.pem", tmp_path / "keys" / "project.pub", passphrase_env=None)
    return tmp_path


def _gadgets(marker: Path) -> dict[str, Any]:
    """hyper_parameters that run ``touch MARKER`` if a loader builds what they name."""
    weights = tiny_classifier(config=MICRO_BERT).state_dict()
    cmd = ["touch", str(marker)]
    return {
        "subprocess.run": {"_class_path": "subprocess.run", "args": cmd},
        "os.system": {"_class_path": "os.system", "command": f"touch {marker}"},
        "subprocess.Popen": {"_class_path": "subprocess.Popen", "args": cmd},  # a class, still refused
        "nested class_path": {
            "config": {**MICRO_BERT, "act": {"class_path": "subprocess.run", "init_args": {"args": cmd}}},
            "vocab_size": 512,
        },
        "nested in a list": {
            "config": MICRO_BERT,
            "vocab_size": 512,
            "callbacks": [{"class_path": "subprocess.Popen", "init_args": {"args": cmd}}],
        },
        "ours, nested object": {
            "_class_path": "secure_train.models.TextClassifier",
            "config": MICRO_BERT,
            "vocab_size": 512,
            "lr": {"class_path": "subprocess.run", "init_args": {"args": cmd}},
        },
    } | {"_weights": weights}


def _write(path: Path, hparams: dict[str, Any], weights: dict[str, Any], key: Path | None = None) -> Path:
    state = {"state_dict": weights, "hyper_parameters": hparams}
    if key is not None:
        SignedCheckpointIO(private_key=key).save_checkpoint(state, path)
    else:
        torch.save(state, path)
        torch.load(path, weights_only=True)  # the attack's premise: a weights-only load accepts it
    return path


def _gate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli_main(["gate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_refused(rc: int, out: str, err: str, marker: Path, expect: str) -> None:
    assert rc == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("secure-train: error:"), err
    assert "Traceback" not in err + out
    assert expect in err, err
    assert not marker.exists(), "the gadget ran"


@pytest.mark.parametrize(
    "name",
    ["subprocess.run", "os.system", "subprocess.Popen", "nested class_path", "nested in a list", "ours, nested object"],
)
def test_unsigned_gadget_refused_before_parsing(project: Path, name: str, capsys) -> None:
    marker = project / "PWNED"
    gadgets = _gadgets(marker)
    ckpt = _write(project / "evil.ckpt", gadgets[name], gadgets["_weights"])
    rc, out, err = _gate(capsys, str(ckpt), "--suite", str(SHIPPED_SUITE), "--no-attestation")
    _assert_refused(rc, out, err, marker, "unsigned")


@pytest.mark.parametrize(
    "name,expect",
    [
        ("subprocess.run", "hyper_parameters._class_path: class 'subprocess.run' is not allowed"),
        ("os.system", "class 'os.system' is not allowed"),
        ("subprocess.Popen", "class 'subprocess.Popen' is not allowed"),
        ("nested class_path", "hyper_parameters.config.act: holds 'class_path'"),
        ("nested in a list", "hyper_parameters.callbacks[0]: holds 'class_path'"),
        ("ours, nested object", "hyper_parameters.lr: holds 'class_path'"),
    ],
)
def test_gadget_signed_with_project_key_refused(project: Path, name: str, expect: str, capsys) -> None:
    marker = project / "PWNED"
    gadgets = _gadgets(marker)
    ckpt = _write(project / "evil.ckpt", gadgets[name], gadgets["_weights"], key=project / "keys" / "project.pem")
    rc, out, err = _gate(capsys, str(ckpt), "--suite", str(SHIPPED_SUITE), "--signing-key", "keys/project.pem")
    _assert_refused(rc, out, err, marker, expect)


def test_gadget_refused_without_signing_configured(project: Path, capsys) -> None:
    """The allow-list holds on its own: a suite with no public key, no $SECURE_TRAIN_SIGNING_KEY."""
    suite = yaml.safe_load(SHIPPED_SUITE.read_text())
    del suite["checks"]["integrity"]
    (project / "suite.yaml").write_text(yaml.safe_dump(suite))
    marker = project / "PWNED"
    gadgets = _gadgets(marker)
    for name in ("subprocess.run", "os.system", "subprocess.Popen", "nested class_path", "ours, nested object"):
        ckpt = _write(project / "evil.ckpt", gadgets[name], gadgets["_weights"])
        rc, out, err = _gate(capsys, str(ckpt), "--suite", "suite.yaml", "--no-attestation")
        _assert_refused(rc, out, err, marker, "hyper_parameters")


class _Reduce:
    """A pickle gadget: unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_pickled_object_and_random_bytes_one_line(project: Path, capsys) -> None:
    marker = project / "PWNED"
    suite = yaml.safe_load(SHIPPED_SUITE.read_text())
    del suite["checks"]["integrity"]
    (project / "suite.yaml").write_text(yaml.safe_dump(suite))
    pickled = project / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Reduce(marker)}}, pickled)
    raw_pickle = project / "raw.pkl"
    raw_pickle.write_bytes(pickle.dumps(_Reduce(marker), protocol=4))
    noise = project / "noise.ckpt"
    noise.write_bytes(os.urandom(4096))
    empty = project / "empty.ckpt"
    empty.write_bytes(b"")
    listed = project / "list.ckpt"
    torch.save([torch.ones(2)], listed)
    legacy = project / "legacy.ckpt"  # the legacy (non-zip) format's header, with a pickle gadget after it
    legacy.write_bytes(pickle.dumps(_Reduce(marker), protocol=2))
    expected = {
        pickled: "not a weights-only checkpoint",
        legacy: "not a weights-only checkpoint",
        raw_pickle: "not a PyTorch checkpoint",
        noise: "not a PyTorch checkpoint",
        empty: "not a PyTorch checkpoint",
    }
    for path, expect in expected.items():
        rc, out, err = _gate(capsys, str(path), "--suite", "suite.yaml", "--no-attestation")
        _assert_refused(rc, out, err, marker, expect)
        # with signing configured the same files are refused before a byte is parsed
        rc, out, err = _gate(capsys, str(path), "--suite", str(SHIPPED_SUITE), "--no-attestation")
        _assert_refused(rc, out, err, marker, "unsigned")
    rc, out, err = _gate(capsys, str(listed), "--suite", "suite.yaml", "--no-attestation")
    _assert_refused(rc, out, err, marker, "not a checkpoint dictionary")


def test_signed_then_swapped_bytes_refused(project: Path) -> None:
    """Verified first: a signature that does not cover the bytes refuses the file, audited."""
    from secure_train.core.audit_log import AuditLog, read_events

    good = _write(
        project / "m.ckpt",
        {"config": MICRO_BERT, "vocab_size": 512},
        tiny_classifier(config=MICRO_BERT).state_dict(),
        key=project / "keys" / "project.pem",
    )
    suite = GateSuite.load(SHIPPED_SUITE)
    log = AuditLog(project / "audit.jsonl")
    state, digest = suite.read_checkpoint(good, "keys/project.pub", audit_log=log)
    assert len(digest) == 64 and "state_dict" in state
    good.write_bytes(good.read_bytes() + b"\0")
    with pytest.raises(IntegrityError):
        suite.read_checkpoint(good, "keys/project.pub", audit_log=log)
    assert [e["type"] for e in read_events(project / "audit.jsonl")] == ["checkpoint.verified", "checkpoint.refused"]


def test_integrity_check_fails_when_file_differs_from_loaded_bytes(project: Path) -> None:
    ckpt = _write(project / "m.ckpt", {}, {"w": torch.ones(1)}, key=project / "keys" / "project.pem")
    suite = GateSuite.from_dict({"checks": {"integrity": {"public_key": "keys/project.pub"}}})
    ok = suite.run(None, None, checkpoint=ckpt)[0]
    assert ok["passed"], ok["details"]
    swapped = suite.run(None, None, checkpoint=ckpt, checkpoint_sha256="0" * 64)[0]
    assert not swapped["passed"] and "changed while the gate ran" in swapped["details"]["problems"][0]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from secure_train.data import synthetic_classification
    from secure_train.data.tokenizer import train_tokenizer

    d = tmp_path_factory.mktemp("tok")
    tok = train_tokenizer([r.text for r in synthetic_classification(400, seed=1)], vocab_size=512, cache_dir=None)
    tok.save_pretrained(str(d))
    return d


@pytest.mark.parametrize(
    "class_path", ["secure_train.models.TextClassifier", "secure_train.models.text_classifier.TextClassifier"]
)
def test_benign_checkpoint_of_allowed_class_still_gates(
    project: Path, tokenizer_dir: Path, class_path: str, capsys
) -> None:
    """A LightningCLI-style checkpoint (``_class_path``, ``_instantiator``) of our model gates as before."""
    torch.manual_seed(0)
    model = tiny_classifier(config=MICRO_BERT)
    hparams = {
        "_class_path": class_path,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        **dict(model.hparams),
    }
    ckpt = _write(project / "m.ckpt", hparams, model.state_dict(), key=project / "keys" / "project.pem")
    data = {
        "class_path": "secure_train.data.TextClassificationDataModule",
        "init_args": {"synthetic_size": 200, "seed": 7, "tokenizer": str(tokenizer_dir), "max_length": 48},
    }
    suite = {"data": data, "checks": {"clean_accuracy": {"min": 0.0}, "integrity": {"public_key": "keys/project.pub"}}}
    (project / "suite.yaml").write_text(yaml.safe_dump(suite))
    rc, out, err = _gate(capsys, str(ckpt), "--suite", "suite.yaml", "--signing-key", "keys/project.pem")
    assert rc == 0, err
    assert "gate PASSED" in out and "pass  integrity" in out
    report = yaml.safe_load((project / "m.ckpt.gate.json").read_text())
    assert report["model_class"] == "secure_train.models.text_classifier.TextClassifier"


def test_user_named_class_allowed_others_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class path is checked as a string before any import: an unlisted module is never imported."""
    (tmp_path / "evil_on_import.py").write_text(
        f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\nclass Model:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    allow = ClassAllowList()
    with pytest.raises(ConfigError, match="'evil_on_import.Model' is not allowed"):
        allow.resolve("evil_on_import.Model", source="ckpt")
    assert not (tmp_path / "IMPORTED").exists() and "evil_on_import" not in sys.modules
    # our exported models only: a class merely imported into secure_train.models.* is not one of them
    with pytest.raises(ConfigError, match="not one of the classes"):
        allow.resolve("secure_train.models.base.AutoConfig", source="ckpt")
    with pytest.raises(ConfigError, match="not a class"):
        ClassAllowList(["os.system"]).resolve("os.system", source="cli")
    with pytest.raises(ConfigError, match="is not a LightningModule"):
        import lightning.pytorch as pl

        ClassAllowList(["collections.OrderedDict"]).resolve(
            "collections.OrderedDict", source="x", base=pl.LightningModule
        )
    # named by the user (command line / suite): allowed
    assert (
        ClassAllowList(["collections.OrderedDict"]).build({"class_path": "collections.OrderedDict"}, source="x") == {}
    )
    sys.modules.pop("evil_on_import", None)


def test_refuse_objects_every_key_at_any_depth() -> None:
    for key in sorted(OBJECT_KEYS):
        with pytest.raises(ConfigError, match=rf"ckpt\.a\[1\]\.b: holds '{key}'"):
            ClassAllowList.refuse_objects({"a": [0, {"b": {key: "x"}}]}, source="ckpt")
    ClassAllowList.refuse_objects({"config": MICRO_BERT, "lr": 0.1, "tags": ["a", {"k": 1}]}, source="ckpt")


def test_suite_model_section_overrides_and_is_trusted(project: Path) -> None:
    """The suite's model.init_args override a checkpoint value (which is then never examined)."""
    model = tiny_classifier(config=MICRO_BERT)
    state = {
        "state_dict": model.state_dict(),
        "hyper_parameters": {"config": {"class_path": "subprocess.run"}, "vocab_size": 512},
    }
    suite = GateSuite.from_dict({"checks": {"clean_accuracy": {}}, "model": {"init_args": {"config": MICRO_BERT}}})
    assert type(suite.build_model(state)).__name__ == "TextClassifier"
    with pytest.raises(ConfigError, match="hyper_parameters.config: holds 'class_path'"):
        GateSuite.from_dict({"checks": {"clean_accuracy": {}}}).build_model(state)
    with pytest.raises(ConfigError, match="hyper_parameters is a list"):
        GateSuite.from_dict({"checks": {"clean_accuracy": {}}}).build_model({"hyper_parameters": [1]})
    bad_kw = {"state_dict": {}, "hyper_parameters": {"config": MICRO_BERT, "no_such_arg": 1}}
    with pytest.raises(ConfigError, match="cannot build .*TextClassifier"):
        GateSuite.from_dict({"checks": {"clean_accuracy": {}}}).build_model(bad_kw)


def test_diff_train_recipe_builds_classes_only(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    data = {"class_path": "secure_train.data.TextClassificationDataModule", "init_args": {"synthetic_size": 100}}
    cases = {
        "not a class": {"class_path": "subprocess.run", "init_args": {"args": ["touch", str(marker)]}},
        "is not a LightningModule": {"class_path": "subprocess.Popen", "init_args": {"args": ["touch", str(marker)]}},
    }
    for expect, model in cases.items():
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({"model": model, "data": data, "trainer": {"max_epochs": 1}}))
        with pytest.raises(ConfigError, match=expect):
            DifferentialTraining(runs=2).run_recipe(recipe)
        assert not marker.exists()


def test_checkpoint_bytes_are_parsed_once_from_memory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_checkpoint parses the verified bytes (a BytesIO), never the path again."""
    ckpt = _write(project / "m.ckpt", {}, {"w": torch.ones(1)}, key=project / "keys" / "project.pem")
    seen: list[Any] = []
    real_load = torch.load

    def spy(f: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((type(f), kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    GateSuite.load(SHIPPED_SUITE).read_checkpoint(ckpt, "keys/project.pub")
    assert seen == [(io.BytesIO, True)]


def test_lightning_cli_ckpt_path_hyper_parameters_checked_before_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``fit|validate --ckpt_path``: LightningCLI's hyper-parameter merge would import ``_class_path``
    (jsonargparse checks the class after importing its module); it is refused first."""
    from lightning.pytorch.cli import LightningCLI

    if not hasattr(LightningCLI, "_parse_ckpt_path"):
        pytest.skip("lightning < 2.6 does not merge a checkpoint's hyper-parameters into the config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECURE_TRAIN_SIGNING_KEY", raising=False)
    (tmp_path / "sidefx_on_import.py").write_text(f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "PWNED"
    cmd = ["touch", str(marker)]
    cases = {
        "class 'sidefx_on_import.Model' is not allowed": {"_class_path": "sidefx_on_import.Model", "lr": 0.1},
        "class 'subprocess.Popen' is not allowed": {"_class_path": "subprocess.Popen", "args": cmd},
        "hyper_parameters.config.x: holds 'class_path'": {
            "_class_path": "secure_train.models.TextClassifier",
            "config": {"model_type": "bert", "x": {"class_path": "subprocess.Popen", "init_args": {"args": cmd}}},
        },
    }
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
    for expect, hparams in cases.items():
        ckpt = tmp_path / "evil.ckpt"
        torch.save({"state_dict": {}, "hyper_parameters": hparams}, ckpt)
        rc, out, err = _cli(capsys, "validate", "--config", str(recipe), "--ckpt_path", str(ckpt))
        _assert_refused(rc, out, err, marker, expect)
        assert not (tmp_path / "IMPORTED").exists() and "sidefx_on_import" not in sys.modules


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_pretrained_from_checkpoint_must_be_a_local_directory(tmp_path: Path) -> None:
    """A checkpoint naming a hub model would make the gate download (and maybe run) what it names."""
    suite = GateSuite.from_dict({"checks": {"clean_accuracy": {}}})
    for value in ("attacker/model-with-remote-code", str(tmp_path / "missing"), 3):
        with pytest.raises(ConfigError, match="hyper_parameters.pretrained .* is not a local directory"):
            suite.build_model({"state_dict": {}, "hyper_parameters": {"pretrained": value}})
    # the suite's own model.init_args.pretrained overrides (and so skips) the checkpoint's value
    overridden = GateSuite.from_dict(
        {"checks": {"clean_accuracy": {}}, "model": {"init_args": {"pretrained": None, "config": MICRO_BERT}}}
    )
    model = tiny_classifier(config=MICRO_BERT)
    state = {"state_dict": model.state_dict(), "hyper_parameters": {"pretrained": "attacker/x", "vocab_size": 512}}
    assert type(overridden.build_model(state)).__name__ == "TextClassifier"


def test_signing_key_env_configures_verification(project: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """No public key in the suite, but $SECURE_TRAIN_SIGNING_KEY set: checkpoints are verified first."""
    suite = yaml.safe_load(SHIPPED_SUITE.read_text())
    del suite["checks"]["integrity"]
    (project / "suite.yaml").write_text(yaml.safe_dump(suite))
    marker = project / "PWNED"
    gadgets = _gadgets(marker)
    ckpt = _write(project / "evil.ckpt", gadgets["nested class_path"], gadgets["_weights"])
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(project / "keys" / "project.pem"))
    for extra in ([], ["--no-attestation"]):
        rc, out, err = _gate(capsys, str(ckpt), "--suite", "suite.yaml", *extra)
        _assert_refused(rc, out, err, marker, "unsigned")
