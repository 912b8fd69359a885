"""Canonical JSON and signed envelopes: the rules, signing, refusals, and files of older releases.

The "old" files are built here byte for byte the way the code before envelopes wrote them
(``git show 3473774:secure_train/core/audit_log.py``, ``core/audit_head.py``,
``gate/attestation.py``, ``data_security/manifest.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.core.audit_head import head_path, sign_audit_head, verify_audit_head
from secure_train.core.audit_log import GENESIS_HASH, AuditLog, read_events, verify
from secure_train.core.envelope import (
    ENVELOPE_FORMAT,
    ENVELOPE_VERSION,
    SignedEnvelope,
    canonical_json,
    json_value,
    pretty_json,
)
from secure_train.core.errors import DataError, IntegrityError
from secure_train.core.keys import key_fingerprint
from secure_train.core.signing import sign_bytes
from secure_train.data_security.manifest import MANIFEST_FORMAT, Manifest, verify_manifest
from secure_train.gate.attestation import GateRefused, _signature_ok, read_signed_json, write_signed_json


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _old_canonical(obj: object, *, ascii_only: bool = False) -> bytes:
    """The canonical JSON of the code before envelopes (audit log, attestations, manifests; the
    audit head used ``ensure_ascii=True`` and no ``default``)."""
    if ascii_only:
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


# -- canonical rules -----------------------------------------------------------------------------
def test_canonical_rules() -> None:
    a = {"b": [1, 2.5, None, True], "a": {"é": "ü", "z": "x"}}
    b = {"a": {"z": "x", "é": "ü"}, "b": (1, 2.5, None, True)}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"z":"x","é":"ü"},"b":[1,2.5,null,true]}'.encode()
    assert canonical_json(a) == _old_canonical(a)  # the rules the audit log, attestations, manifests hashed with
    assert pretty_json(a).endswith(b"\n") and json.loads(pretty_json(a)) == json.loads(canonical_json(a))


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"loss": float("nan")}, r"nan .* at \$\.loss$"),
        ({"x": [1, {"y": float("-inf")}]}, r"-inf .* at \$\.x\[1\]\.y$"),
        ({"k": {3: "x"}}, r"key 3 is not a string at \$\.k$"),
        ({"k": [[{"v": [0, float("nan")]}]]}, r"nan .* at \$\.k\[0\]\[0\]\.v\[1\]$"),
        ({"a": {"ok": 1, 5: float("nan")}}, r"key 5 is not a string at \$\.a$"),
        ([{"a": 1}, {"b": {2}}], r"a set is not a JSON value at \$\[1\]\.b$"),
        ({"p": Path("a")}, r"PosixPath is not a JSON value at \$\.p$|Path is not a JSON value"),
        ({"s": "\ud800"}, "not valid Unicode"),
    ],
)
def test_canonical_refuses_what_json_cannot_hold(value: object, where: str) -> None:
    with pytest.raises(DataError, match=where):
        canonical_json(value)


def test_json_value_makes_values_canonical() -> None:
    value = json_value({"p": Path("a/b"), "n": float("nan"), 1: (2, float("inf")), None: {True: 1}})
    assert value == {"p": "a/b", "n": "nan", "1": [2, "inf"], "null": {"true": 1}}
    canonical_json(value)


# -- sign / verify -------------------------------------------------------------------------------
def test_sign_write_read_verify(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    env = SignedEnvelope.sign("attestation", {"passed": True, "name": "ü"}, key)
    path = env.write(tmp_path / "a.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert (doc["format"], doc["version"], doc["kind"]) == (ENVELOPE_FORMAT, ENVELOPE_VERSION, "attestation")
    assert doc["key_fingerprint"] == key_fingerprint(key.public_key())
    read = SignedEnvelope.read(path, kind="attestation")
    assert read == env and read.verify(key.public_key()).body == {"passed": True, "name": "ü"}
    assert read_signed_json(path, key.public_key(), kind="attestation") == {"passed": True, "name": "ü"}


def test_tampered_and_wrong_key_refused(tmp_path: Path, key: ec.EllipticCurvePrivateKey, other) -> None:
    path = SignedEnvelope.sign("attestation", {"passed": False}, key).write(tmp_path / "a.json")
    doc = json.loads(path.read_text())
    for field, value in (("body", {"passed": True}), ("kind", "approval")):
        forged = tmp_path / f"forged-{field}.json"
        forged.write_text(json.dumps({**doc, field: value}))
        refused = r"forged-\w+\.json: signature does not verify .*\(tampered or foreign\)"
        with pytest.raises(IntegrityError, match=refused):
            SignedEnvelope.read(forged).verify(key.public_key())
    with pytest.raises(IntegrityError, match="tampered or foreign: it names key"):
        SignedEnvelope.read(path).verify(other.public_key())
    assert not SignedEnvelope.read(path).verifies(other.public_key())
    with pytest.raises(GateRefused, match="tampered or foreign"):
        read_signed_json(path, other.public_key())


def test_version_kind_and_format_named(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    doc = SignedEnvelope.sign("approval", {"by": "alice"}, key).to_dict()
    with pytest.raises(IntegrityError, match=r"envelope version 3, this release reads version 2"):
        SignedEnvelope.from_dict({**doc, "version": 3}, source="x.json")
    with pytest.raises(IntegrityError, match=r"format 'other/1', expected 'secure-train-envelope'"):
        SignedEnvelope.from_dict({**doc, "format": "other/1"})
    with pytest.raises(IntegrityError, match=r"is a 'approval' envelope, expected 'attestation'"):
        SignedEnvelope.from_dict(doc, kind="attestation")
    with pytest.raises(IntegrityError, match=r"envelope fields .*extra"):
        SignedEnvelope.from_dict({**doc, "extra": 1})
    path = tmp_path / "v3.json"
    path.write_text(json.dumps({**doc, "version": 3}))
    with pytest.raises(GateRefused, match=r"v3\.json: envelope version 3, this release reads version 2"):
        read_signed_json(path, key.public_key())


def test_version_1_only_where_allowed(key: ec.EllipticCurvePrivateKey) -> None:
    body = {"kind": "forensic_bundle", "id": "x"}
    old = {"body": body, "signature": base64.b64encode(sign_bytes(_old_canonical(body), key)).decode()}
    with pytest.raises(IntegrityError, match=r"envelope version 1 \(no format field.*expected version 2"):
        SignedEnvelope.from_dict(old)
    assert SignedEnvelope.from_dict(old, legacy="body").verify(key.public_key()).body == body
    # a version-2 envelope's signed fields cannot be passed off as a version-1 body
    env = SignedEnvelope.sign("attestation", {"passed": True}, key)
    signed = json.loads(env.signed_bytes())
    replay = {"body": signed, "signature": base64.b64encode(env.signature).decode()}
    with pytest.raises(IntegrityError, match="may not itself be an envelope"):
        SignedEnvelope.from_dict(replay, legacy="body")
    with pytest.raises(DataError, match="never written"):
        SignedEnvelope.from_dict(old, legacy="body").to_dict()


# -- files written by the code before envelopes --------------------------------------------------
def _old_attestation(path: Path, body: dict, key: ec.EllipticCurvePrivateKey) -> None:
    signature = base64.b64encode(sign_bytes(_old_canonical(body), key)).decode()
    doc = {"body": body, "signature": signature, "key_fingerprint": key_fingerprint(key.public_key())}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def test_old_attestation_and_approval_still_verify(tmp_path: Path, key: ec.EllipticCurvePrivateKey, other) -> None:
    att = {"kind": "attestation", "checkpoint_sha256": "ab" * 32, "passed": True, "note": "é"}
    _old_attestation(tmp_path / "m.ckpt.attestation.json", att, key)
    assert read_signed_json(tmp_path / "m.ckpt.attestation.json", key.public_key(), kind="attestation") == att
    with pytest.raises(GateRefused, match="tampered or foreign"):
        read_signed_json(tmp_path / "m.ckpt.attestation.json", other.public_key())
    approval = {"kind": "approval", "by": "alice", "role": "security", "checkpoint_sha256": "ab" * 32}
    _old_attestation(tmp_path / "security-alice.json", approval, key)
    doc = json.loads((tmp_path / "security-alice.json").read_text())
    assert _signature_ok(doc, key.public_key(), "approval")
    doc["body"]["role"] = "ml-lead"
    assert not _signature_ok(doc, key.public_key(), "approval")
    # what this release writes in their place is version 2
    write_signed_json(att, tmp_path / "new.json", key)
    assert json.loads((tmp_path / "new.json").read_text())["version"] == ENVELOPE_VERSION


def test_old_audit_log_verifies_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    prev, lines = GENESIS_HASH, []
    for seq, payload in enumerate([{"path": "/ckpt/ü.ckpt", "step": 3}, {"ratio": 0.25, "ids": [1, 2]}]):
        event = {"seq": seq, "time": "2026-01-01T00:00:00+00:00", "type": "t", "source": "s", "payload": payload,
                 "prev": prev}  # fmt: skip
        event["hash"] = hashlib.sha256(_old_canonical(event)).hexdigest()
        lines.append(_old_canonical(event).decode())
        prev = event["hash"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify(path).ok and verify(path).events == 2
    AuditLog(path).record("after", loss=float("nan"), where=Path("x"))
    assert verify(path).ok and read_events(path)[-1]["payload"] == {"loss": "nan", "where": "x"}
    # an old event with a bare NaN: named, not silently accepted
    event = {"seq": 3, "time": "t", "type": "t", "source": "s", "payload": {"loss": float("nan")},
             "prev": verify(path).head}  # fmt: skip
    event["hash"] = hashlib.sha256(_old_canonical(event)).hexdigest()
    with path.open("a") as fh:
        fh.write(_old_canonical(event).decode() + "\n")
    result = verify(path)
    assert not result.ok and result.bad_seq == 3 and "seq 3 cannot be hashed" in str(result.error)
    assert "nan" in str(result.error) and "$.payload.loss" in str(result.error)


def test_old_audit_head_still_verifies(tmp_path: Path, key: ec.EllipticCurvePrivateKey, other) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("run.start")
    events, head = log.head
    payload = {"log": "audit.jsonl", "events": events, "head": head, "time": "2026-01-01T00:00:00+00:00",
               "reason": "checkpoint"}  # fmt: skip
    record = {
        "payload": payload,
        "signature": base64.b64encode(sign_bytes(_old_canonical(payload, ascii_only=True), key)).decode(),
        "key_fingerprint": key_fingerprint(key.public_key()),
    }
    head_path(log.path).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    assert verify_audit_head(log.path, key.public_key()).ok
    assert "not valid for the given public key" in str(verify_audit_head(log.path, other.public_key()).error)
    # the head this release writes is a version-2 envelope; a future version is named
    doc = sign_audit_head(log.path, key)
    assert (doc["format"], doc["version"], doc["kind"]) == (ENVELOPE_FORMAT, ENVELOPE_VERSION, "audit-head")
    assert verify_audit_head(log.path, key.public_key()).ok
    head_path(log.path).write_text(json.dumps({**doc, "version": 3}))
    error = verify_audit_head(log.path, key.public_key()).error
    assert error == (
        "signed head audit.jsonl.head.json: envelope version 3, this release reads version 2 (newer writer?)"
    )


def test_old_manifest_still_verifies(tmp_path: Path, key: ec.EllipticCurvePrivateKey, other) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    m = Manifest.build(data, source="docs", license="CC0")
    m.data["format"] = "secure-train-manifest/1"  # as the older release built it
    body = {k: v for k, v in m.data.items() if k not in ("signature", "root")}
    digest = hashlib.sha256(_old_canonical(body)).hexdigest()
    m.data["signature"] = {
        "digest": digest,
        "value": sign_bytes(digest.encode(), key).hex(),
        "key_fingerprint": key_fingerprint(key.public_key()),
    }
    m.data["root"] = "data"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(m.data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    check = verify_manifest(path, public_key=key.public_key(), require_signature=True)
    assert check.ok and check.signature == "verified" and Manifest.load(path).digest == digest
    assert verify_manifest(path, public_key=other.public_key()).signature == "invalid"
    # re-signing writes format 2 with an envelope; the old signature shape is refused there
    loaded = Manifest.load(path)
    loaded.save(path, private_key=key)
    saved = json.loads(path.read_text())
    assert saved["format"] == MANIFEST_FORMAT and saved["signature"]["kind"] == "data-manifest"
    assert verify_manifest(path, public_key=key.public_key(), require_signature=True).ok
    saved["signature"] = m.data["signature"]
    path.write_text(json.dumps(saved))
    (problem,) = verify_manifest(path, public_key=key.public_key()).problems
    assert "format None, expected 'secure-train-envelope'" in problem
    # a manifest format this release does not know is refused, naming both
    path.write_text(json.dumps({**saved, "format": "secure-train-manifest/3"}))
    with pytest.raises(DataError, match=r"format 'secure-train-manifest/3', expected 'secure-train-manifest/2'"):
        Manifest.load(path)
