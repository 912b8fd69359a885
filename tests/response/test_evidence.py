"""Run evidence reads gate verdicts from the store by digest: old unsigned files, the current format,
and a version it does not know (an invalid verdict naming the version, never a pass or a failure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_train.gate.verdicts import VerdictStore, verdict_document
from secure_train.response.report.evidence import RunEvidence

DIGEST = "ab" * 32


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    return run


def _evidence(run_dir: Path, store: Path) -> RunEvidence:
    return RunEvidence(run_dir, verdict_store=store)


@pytest.mark.parametrize(
    "document",
    [
        {"body": {"kind": "attestation", "checkpoint_sha256": DIGEST, "passed": False}},  # before the format field
        verdict_document({"kind": "attestation", "checkpoint_sha256": DIGEST, "passed": False}),
    ],
    ids=["no-format", "version-1"],
)
def test_failing_unsigned_verdict_is_read(run_dir: Path, tmp_path: Path, document: dict) -> None:
    path = VerdictStore(tmp_path / "store").record(document)
    verdict = _evidence(run_dir, tmp_path / "store").gate_verdict(DIGEST)
    assert verdict == ("failed", str(path), "the gate failed for this digest")


@pytest.mark.parametrize(
    ("changed", "expected"),
    [({"version": 7}, "gate verdict version 7 is not supported (this release reads 1)"),
     ({"format": "secure-train-report"},
      "format 'secure-train-report' is not a gate verdict ('secure-train-verdict' or 'secure-train-envelope')")],
)
def test_unknown_verdict_version_is_invalid_naming_it(
    run_dir: Path, tmp_path: Path, changed: dict, expected: str
) -> None:
    doc = {**verdict_document({"kind": "attestation", "checkpoint_sha256": DIGEST, "passed": False}), **changed}
    path = VerdictStore(tmp_path / "store").record(doc)
    assert json.loads(path.read_text())["body"]["passed"] is False  # a failure it cannot vouch for: not read as one
    verdict, file, error = _evidence(run_dir, tmp_path / "store").gate_verdict(DIGEST)
    assert (verdict, file) == ("invalid", str(path))
    assert error == f"{path}: {expected}"
