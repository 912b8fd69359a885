"""Fast CLI: the non-training commands start without importing torch or Lightning.

``import secure_train`` and its subpackages are lazy (PEP 562); LightningCLI lives in
``secure_train.commands.lightning_cli`` and is imported only for fit / validate / test / predict.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "lightning.pytorch", "transformers", "opacus")

_PROBE = """
import json, sys
from secure_train.cli import main
try:
    rc = main({argv!r})
except SystemExit as exc:  # --help
    rc = exc.code
print(json.dumps({{"rc": rc, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _probe(argv: list[str]) -> dict:
    proc = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_cli_is_light():
    proc = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            f"import sys, secure_train, secure_train.cli; print([m for m in {HEAVY!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == "[]"


@pytest.fixture
def signed_log(tmp_path):
    from secure_train.core.audit_head import sign_audit_head
    from secure_train.core.audit_log import AuditLog
    from secure_train.core.keys import generate_keypair, load_private_key

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("test.event", source="startup")
    sign_audit_head(log.path, load_private_key(tmp_path / "k.pem"))
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify", "{d}/audit.jsonl"],
        ["audit", "verify", "{d}/audit.jsonl", "--public-key", "{d}/k.pub"],
        ["verify", "{d}/audit.jsonl", "--public-key", "{d}/k.pub"],
        ["data", "verify", "{d}/missing.json"],
        ["keygen", "--help"],
        ["scan", "--help"],
        ["verify", "--help"],
    ],
)
def test_non_training_commands_do_not_import_torch(signed_log, argv):
    result = _probe([a.format(d=signed_log) for a in argv])
    assert result["heavy"] == [], result
    assert result["rc"] in (0, 1, 2)


def test_lazy_packages_export_everything():
    """Every public name is still importable from the package, as before the lazy ``__init__``."""
    import importlib

    for name in ("secure_train", "secure_train.data", "secure_train.integrity", "secure_train.gate"):
        package = importlib.import_module(name)
        for attr in package.__all__:
            assert getattr(package, attr) is not None, f"{name}.{attr}"
    from secure_train import AuditLog, TextClassifier  # noqa: F401 - from-import through __getattr__

    with pytest.raises(AttributeError):
        importlib.import_module("secure_train").NoSuchThing  # noqa: B018


def test_training_commands_still_resolve_the_lightning_cli():
    from secure_train.cli import SecureTrainCLI
    from secure_train.commands.lightning_cli import SecureTrainCLI as Direct

    assert SecureTrainCLI is Direct
