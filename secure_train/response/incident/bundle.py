"""Signed forensic bundle: the evidence of a run, frozen when an incident is opened.

``ForensicBundle.open_incident(run_dir, reason=..., private_key=...)`` records
``incident.opened`` in the run's audit log (and signs its head), then writes one tar holding:

- ``manifest.json``: signed (the project's signed-JSON format, as gate attestations): the
  incident id and reason, the SHA-256 and size of every file in the tar, every checkpoint's
  digest, signature status, signed step and audit head (the weights stay out), the integrity
  of the audit log, and the environment (:class:`~secure_train.response.incident.environment.EnvironmentSnapshot`);
- ``files/...``: every non-weight file of the run directory (audit log and signed head,
  ``config.yaml``, ``hparams.yaml``, ``metrics.csv``, checkpoint ``.sig`` sidecars, gate
  reports and attestations, scan reports, ``suspects.json``...);
- ``external/...``: data manifests the run's ``data.provenance`` events name, gate verdicts
  filed for the checkpoints' digests, and any ``include`` path;
- ``environment/pip-freeze.txt``.

The tar itself gets a ``model_signing``-compatible sidecar (``BUNDLE.sig``, ``secure-train
verify`` checks it), and ``incident.bundle`` (its SHA-256) goes to the audit log.
:meth:`ForensicBundle.verify` checks the sidecar, the manifest's signature and every member
against the manifest, without extracting anything to disk.

Example:
    >>> import tempfile, os
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.core.audit_log import AuditLog
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> run = tempfile.mkdtemp()
    >>> _ = AuditLog(os.path.join(run, "audit.jsonl")).record("run.start", source="docs")
    >>> bundle = ForensicBundle.open_incident(run, reason="docs example", private_key=key, use_verdict_store=False)
    >>> check = bundle.verify(key.public_key())
    >>> check.ok, check.manifest["reason"]
    (True, 'docs example')
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from secure_train.core.audit_head import sign_audit_head
from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import ConfigError, IntegrityError
from secure_train.core.keys import PrivateKey, PublicKeyLike, key_fingerprint
from secure_train.core.signed_file import signature_path, verify_file, write_signed
from secure_train.gate.attestation import GateRefused, read_signed_json, write_signed_json
from secure_train.response.incident.environment import EnvironmentSnapshot
from secure_train.response.report.evidence import WEIGHT_SUFFIXES, RunEvidence, _walk

__all__ = ["BundleCheck", "ForensicBundle"]

SCHEMA = "secure-train.incident/1"
MANIFEST = "manifest.json"
MAX_FILE_BYTES = 256 << 20
"""Files larger than this are listed with their digest but not copied into the bundle."""


@dataclass(frozen=True)
class BundleCheck:
    """Outcome of :meth:`ForensicBundle.verify`: ``ok``, the problems found, the manifest."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    files: int = 0

    def __bool__(self) -> bool:
        return self.ok


def _record(log: AuditLog, key: PrivateKey, event: str, **payload: Any) -> dict[str, Any]:
    entry = log.record(event, source="secure-train incident", **payload)
    sign_audit_head(log.path, key, reason=event)
    assert entry is not None  # noqa: S101 - the log is enabled
    return entry


class ForensicBundle:
    """A forensic bundle file (tar) and its checks.

    Args:
        path: the ``.tar`` file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def open_incident(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        reason: str,
        private_key: PrivateKey,
        public_key: PublicKeyLike | None = None,
        out: str | os.PathLike[str] | None = None,
        include: Sequence[str | os.PathLike[str]] = (),
        use_verdict_store: bool = True,
    ) -> ForensicBundle:
        """Open an incident on ``run_dir``: audit it, freeze the evidence, sign the bundle.

        Args:
            run_dir: the run's log directory.
            reason: why (recorded in the audit log and the manifest).
            private_key: signs the manifest, the bundle and the audit head.
            public_key: checks the run's signatures (default: ``private_key``'s public half).
            out: bundle path (default ``RUN_DIR/incidents/<id>.tar``).
            include: more files to freeze (copied under ``external/``).
            use_verdict_store: also freeze gate verdicts filed by digest in the verdict store.

        Raises:
            ConfigError: empty reason, missing run directory or included file.
        """
        if not reason or not reason.strip():
            raise ConfigError("an incident needs a --reason")
        run = Path(run_dir)
        evidence = RunEvidence(
            run, public_key=public_key or private_key.public_key(), use_verdict_store=use_verdict_store
        )
        now = datetime.now(timezone.utc)
        incident_id = f"incident-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
        target = Path(out) if out is not None else run / "incidents" / f"{incident_id}.tar"
        # 1. the opening is an audit event: in the run's log when it and its signed head verify;
        # else beside it -- appending to (and re-signing) a failing log would cover the failure up
        notes: list[str] = []
        extendable, why = evidence.extendable()
        if extendable and evidence.audit_path is not None:
            log = AuditLog(evidence.audit_path)
        else:
            log = AuditLog(run / "incidents" / "audit.jsonl")
            notes.append(f"{why}; the run's log is left as found and the incident is recorded in {log.path}")
        opened = _record(log, private_key, "incident.opened", id=incident_id, reason=reason, bundle=str(target))
        # 2. collect the files (read once: the digest is of the bytes that go into the tar)
        members: list[tuple[str, bytes]] = []
        listed: list[dict[str, Any]] = []

        def add(name: str, source: Path) -> None:
            size = source.stat().st_size
            if size > MAX_FILE_BYTES:
                from secure_train.core.signing import sha256_file

                listed.append(
                    {"name": None, "source": str(source), "sha256": sha256_file(source), "size": size, "copied": False}
                )
                return
            data = source.read_bytes()
            members.append((name, data))
            listed.append(
                {
                    "name": name,
                    "source": str(source),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "copied": True,
                }
            )

        for f in _walk(run):
            if f.suffix not in WEIGHT_SUFFIXES:
                add(f"files/{f.relative_to(run).as_posix()}", f)
        if not log.path.resolve().is_relative_to(evidence.audit_path.resolve() if evidence.audit_path else run):
            add("files/incidents/audit.jsonl", log.path)
        external: list[Path] = []
        for e in evidence.events_of("data.provenance"):
            manifest = (e.get("payload", {}).get("data_manifest") or {}).get("manifest")
            if manifest and Path(manifest).is_file():
                external.append(Path(manifest))
        for ck in evidence.checkpoints:
            if ck.sha256:
                external += [Path(x["file"]) for x in evidence._store_entries(ck.sha256)]
        for p in include:
            if not Path(p).is_file():
                raise ConfigError(f"--include {p}: no such file")
            external.append(Path(p))
        seen: set[Path] = set()
        for i, p in enumerate(external):
            rp = p.resolve()
            if rp in seen or rp.is_relative_to(run.resolve()):
                continue
            seen.add(rp)
            add(f"external/{i:03d}-{p.name}", p)
        env = EnvironmentSnapshot.capture()
        members.append(("environment/pip-freeze.txt", env.pip_freeze().encode()))
        listed.append(
            {
                "name": "environment/pip-freeze.txt",
                "source": "importlib.metadata",
                "sha256": hashlib.sha256(members[-1][1]).hexdigest(),
                "size": len(members[-1][1]),
                "copied": True,
            }
        )
        head = evidence.head
        body = {
            "kind": "forensic_bundle",
            "schema": SCHEMA,
            "id": incident_id,
            "reason": reason,
            "opened": now.isoformat(timespec="seconds"),
            "run_dir": str(run.resolve()),
            "audit_event": {"log": str(log.path), "seq": opened["seq"], "hash": opened["hash"]},
            "integrity": {
                "audit_log": {"ok": evidence.chain.ok, "events": evidence.chain.events, "error": evidence.chain.error},
                "signed_head": None
                if head is None
                else {"ok": head.ok, "signed_events": head.signed_events, "error": head.error},
            },
            "checkpoints": [c.to_dict() for c in evidence.checkpoints],
            "files": listed,
            "environment": env.to_dict(),
            "notes": notes,
            "signer": key_fingerprint(private_key.public_key()),
        }
        # 3. the signed manifest, then the tar and its sidecar
        with tempfile.TemporaryDirectory() as tmp:
            mpath = Path(tmp) / MANIFEST
            write_signed_json(json.loads(json.dumps(body, default=str)), mpath, private_key)
            manifest_bytes = mpath.read_bytes()
        buf = io.BytesIO()
        mtime = int(now.timestamp())
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in [(MANIFEST, manifest_bytes), *members]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), mtime, 0o644
                tar.addfile(info, io.BytesIO(data))
        signed = write_signed(
            buf.getbuffer(),
            target,
            private_key,
            provenance={
                "kind": "forensic_bundle",
                "id": incident_id,
                "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            },
        )
        _record(
            log,
            private_key,
            "incident.bundle",
            id=incident_id,
            path=str(target),
            sha256=signed.sha256,
            size=signed.size,
            files=len(listed),
            checkpoints=len(evidence.checkpoints),
        )
        return cls(target)

    def verify(self, public_key: PublicKeyLike) -> BundleCheck:
        """Check the bundle's sidecar, its manifest's signature and every member's digest.

        Never raises for a bad bundle; the result lists every problem.
        """
        errors: list[str] = []
        if not self.path.is_file():
            return BundleCheck(False, [f"{self.path}: no such file"])
        if signature_path(self.path).is_file():
            try:
                verify_file(self.path, public_key)
            except IntegrityError as err:
                errors.append(f"bundle signature: {err.reason}")
        else:
            errors.append(f"no signature sidecar {signature_path(self.path).name}")
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                contents: dict[str, bytes] = {}
                for info in tar.getmembers():
                    name = info.name
                    if not info.isfile() or name.startswith("/") or ".." in Path(name).parts:
                        errors.append(f"unexpected member {name!r} (not a plain relative file)")
                        continue
                    fh = tar.extractfile(info)
                    if fh is not None:
                        contents[name] = fh.read()
        except (tarfile.TarError, OSError) as err:
            return BundleCheck(False, [*errors, f"not a readable tar: {err}"])
        if MANIFEST not in contents:
            return BundleCheck(False, [*errors, f"no {MANIFEST} in the bundle"])
        with tempfile.TemporaryDirectory() as tmp:
            mpath = Path(tmp) / MANIFEST
            mpath.write_bytes(contents[MANIFEST])
            try:
                manifest = read_signed_json(mpath, public_key)
            except GateRefused as err:
                return BundleCheck(False, [*errors, f"manifest: {err}".replace(str(mpath), MANIFEST)])
        listed = {f["name"]: f for f in manifest.get("files", []) if f.get("copied")}
        for name, entry in listed.items():
            data = contents.get(name)
            if data is None:
                errors.append(f"{name}: listed in the manifest but missing from the bundle")
            elif hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
                errors.append(f"{name}: content differs from the manifest (sha256)")
        for name in sorted(set(contents) - set(listed) - {MANIFEST}):
            errors.append(f"{name}: in the bundle but not in the manifest (added)")
        return BundleCheck(not errors, errors, manifest, len(listed))
