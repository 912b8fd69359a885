"""Everything a run directory holds as security evidence, read once and checked.

:class:`RunEvidence` finds, under a run directory (a Lightning ``log_dir``): the audit log
(``audit.jsonl``, hash chain verified; the signed head too when a public key is given), the
logged metrics (``metrics.csv``), the config and hyperparameters, the checkpoints (digest,
signature, audit trail up to each, gate verdict looked up by digest), gate reports and signed
attestations, scan reports (``*.scan.json``), ``suspects.json`` and data manifests, each
with its SHA-256. Nothing is trusted that did not verify: events after the first bad one are
shown but marked unverified, and a report states so at the top.

Example:
    >>> import tempfile
    >>> from secure_train.core.audit_log import AuditLog
    >>> d = tempfile.mkdtemp()
    >>> _ = AuditLog(f"{d}/audit.jsonl").record("run.start", source="docs")
    >>> ev = RunEvidence(d)
    >>> ev.chain.ok, [e["type"] for e in ev.events]
    (True, ['run.start'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from secure_train.core.audit_head import HeadCheck, head_path, verify_audit_head
from secure_train.core.audit_log import VerifyResult, verify
from secure_train.core.errors import ConfigError, DataError, InputError, IntegrityError
from secure_train.core.keys import PublicKey, PublicKeyLike, load_public_key
from secure_train.core.safe_io import load_json_file, load_yaml_file
from secure_train.core.signed_file import signature_path, verify_file
from secure_train.core.signing import sha256_file
from secure_train.response.report.checkpoints import CheckpointStatus
from secure_train.response.report.metrics import MetricLog

__all__ = ["RunEvidence"]

_SKIP_DIRS = {"incidents", "report", "__pycache__"}
WEIGHT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")


def _walk(root: Path) -> Iterable[Path]:
    """Files under ``root`` (sorted), skipping report / incident output."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _load_yaml(path: Path) -> Any:
    try:
        return load_yaml_file(path, what="run file") if path.is_file() else None  # bounded (size, aliases)
    except (yaml.YAMLError, InputError):
        return None


class RunEvidence:
    """The evidence of one run, verified.

    Args:
        run_dir: the run's log directory (holds ``audit.jsonl``).
        public_key: signer's key (object, PEM path or text): checks the signed audit head,
            each checkpoint's signature and the gate attestations. Without it those are
            reported as not checked.
        search_dirs: more directories with gate reports, attestations, scan reports or
            data manifests (e.g. where ``secure-train gate --out-dir`` wrote).
        verdict_store: the gate's verdict store (default ``$SECURE_TRAIN_VERDICTS`` or the
            per-user store); verdicts are looked up there by checkpoint SHA-256.
        use_verdict_store: set False to use only the attestations found in the directories.

    Raises:
        ConfigError: ``run_dir`` is not a directory.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        public_key: PublicKeyLike | None = None,
        search_dirs: Sequence[str | os.PathLike[str]] = (),
        verdict_store: str | os.PathLike[str] | None = None,
        use_verdict_store: bool = True,
    ) -> None:
        self.verdict_store: Path | None = None
        if use_verdict_store and verdict_store is not None:
            self.verdict_store = Path(verdict_store)
        elif use_verdict_store:
            try:
                from secure_train.gate.verdicts import default_verdict_dir

                self.verdict_store = default_verdict_dir()
            except ImportError:  # pragma: no cover - a secure-train without the verdict store
                self.verdict_store = None
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise ConfigError(f"run directory {self.run_dir}: no such directory")
        self.public_key: PublicKey | None = load_public_key(public_key) if public_key is not None else None
        self.search_dirs = [Path(d) for d in search_dirs]
        all_files = list(_walk(self.run_dir))
        for d in self.search_dirs:
            if not d.is_dir():
                raise ConfigError(f"evidence directory {d}: no such directory")
            all_files += [f for f in _walk(d) if f not in all_files]
        self._all_files = all_files
        self.audit_path = self._find_audit_log()
        self.events, self.hashes = self._read_events()
        self.chain: VerifyResult = (
            verify(self.audit_path) if self.audit_path else VerifyResult(False, 0, "0" * 64, "no audit.jsonl found")
        )
        self.head: HeadCheck | None = None
        if self.audit_path is not None and self.public_key is not None:
            self.head = verify_audit_head(self.audit_path, self.public_key)
        self.metrics = MetricLog.read_csv(self.run_dir / "metrics.csv")
        self.config = _load_yaml(self.run_dir / "config.yaml")
        self.hparams = _load_yaml(self.run_dir / "hparams.yaml")
        self.attestations = self._read_attestations()
        self.gate_reports = self._read_json_files(".gate.json")
        self.scan_reports = self._read_json_files(".scan.json")
        self.suspects = self._read_json_files("suspects.json")
        self.checkpoints = self._assess_checkpoints()
        self.files = self._evidence_files()

    # -- audit log -------------------------------------------------------------------------
    def _find_audit_log(self) -> Path | None:
        direct = self.run_dir / "audit.jsonl"
        if direct.is_file():
            return direct
        found = sorted((f for f in self._all_files if f.name == "audit.jsonl"), key=lambda p: len(p.parts))
        return found[0] if found else None

    def _read_events(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every parseable event (verified or not) and the hash of each, in file order."""
        if self.audit_path is None:
            return [], []
        events: list[dict[str, Any]] = []
        with self.audit_path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and "type" in event:
                    events.append(event)
        return events, [str(e.get("hash")) for e in events]

    @property
    def verified_events(self) -> int:
        """Events that verify (the chain's good prefix)."""
        return self.chain.events

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        """Events of the given types, in order (verified or not: see :meth:`is_verified`)."""
        wanted = set(types)
        return [e for e in self.events if e.get("type") in wanted]

    def is_verified(self, event: dict[str, Any]) -> bool:
        seq = event.get("seq")
        return isinstance(seq, int) and seq < self.verified_events

    # -- files -------------------------------------------------------------------------------
    def _read_json_files(self, suffix: str) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for f in self._all_files:
            if f.name.endswith(suffix):
                try:
                    doc = load_json_file(f, what="evidence file")  # size-checked, never read whole
                except InputError:
                    continue
                if isinstance(doc, dict):
                    out.append((f, doc))
        return out

    def _verdict_entry(self, f: Path) -> dict[str, Any] | None:
        """``{file, body, verified, signed, error}`` of a gate verdict document, or None if it is not one."""
        from secure_train.gate.attestation import GateRefused, read_signed_json
        from secure_train.gate.verdicts import check_verdict_format

        try:
            doc = load_json_file(f, what="gate verdict")  # size-checked, never read whole
            body = doc["body"]
        except (InputError, KeyError, TypeError):
            return None
        if not isinstance(body, dict) or not body.get("checkpoint_sha256"):
            return None
        try:
            check_verdict_format(doc, f)
        except DataError as err:  # unreadable by this release: neither a pass nor a failure, an invalid verdict
            body = {"kind": body.get("kind"), "checkpoint_sha256": body["checkpoint_sha256"]}
            return {"file": f, "body": body, "verified": False, "signed": False, "error": str(err)}
        entry: dict[str, Any] = {
            "file": f,
            "body": body,
            "verified": False,
            "signed": "signature" in doc,
            "error": None,
        }
        if self.public_key is not None and entry["signed"]:
            try:
                entry["body"] = read_signed_json(f, self.public_key)
                entry["verified"] = True
            except GateRefused as err:
                entry["error"] = str(err)
        return entry

    def _read_attestations(self) -> dict[str, list[dict[str, Any]]]:
        """``{checkpoint_sha256: [entry]}`` from every ``*.attestation.json`` of the run and ``search_dirs``."""
        index: dict[str, list[dict[str, Any]]] = {}
        for f in self._all_files:
            if f.name.endswith(".attestation.json"):
                entry = self._verdict_entry(f)
                if entry is not None and entry["body"].get("kind") == "attestation":
                    index.setdefault(str(entry["body"]["checkpoint_sha256"]), []).append(entry)
        return index

    def _store_entries(self, digest: str) -> list[dict[str, Any]]:
        """Verdicts filed by digest in the gate's verdict store (when this secure-train has one)."""
        if self.verdict_store is None:
            return []
        try:
            from secure_train.gate.verdicts import VerdictStore
        except ImportError:  # pragma: no cover - older secure-train
            return []
        entries = []
        for f in VerdictStore(self.verdict_store).paths(digest):
            entry = self._verdict_entry(f)
            if entry is not None and entry["body"].get("checkpoint_sha256") == digest:
                entries.append(entry)
        return entries

    def gate_verdict(self, digest: str) -> tuple[str, str | None, str | None]:
        """``(verdict, file, error)`` for the checkpoint whose SHA-256 is ``digest``.

        Verdicts are found by digest: attestations in the run (and ``search_dirs``) and the
        gate's verdict store. A failing verdict wins over a passing one (as for export); a
        pass counts only when its signature verifies under the public key.
        """
        entries = [
            e
            for e in self.attestations.get(digest, []) + self._store_entries(digest)
            if e["body"].get("checkpoint_sha256") == digest
        ]
        for e in entries:
            if e["body"].get("passed") is False and (e["verified"] or not e["signed"]):
                return "failed", str(e["file"]), "the gate failed for this digest"
        for e in entries:
            if e["verified"] and e["body"].get("passed") is True:
                return "passed", str(e["file"]), None
        for e in entries:
            if e["error"]:
                return "invalid", str(e["file"]), e["error"]
        if entries:
            return "unverified", str(entries[0]["file"]), "give --public-key to check the attestation"
        return "none", None, "no gate attestation for this digest"

    def rel(self, path: Path) -> str:
        """``path`` relative to the run directory when inside it."""
        try:
            return str(path.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(path)

    def _checkpoint_paths(self) -> list[Path]:
        paths = [f for f in self._all_files if f.suffix == ".ckpt" and f.is_relative_to(self.run_dir)]
        seen = {p.resolve() for p in paths}
        for e in self.events_of("checkpoint.signed"):
            p = Path(str(e.get("payload", {}).get("path", "")))
            if p.suffix == ".ckpt" and p.is_file() and p.resolve() not in seen:
                seen.add(p.resolve())
                paths.append(p)
        signed_sidecars = [f for f in self._all_files if f.name.endswith(".ckpt.sig")]
        for sig in signed_sidecars:  # a sidecar whose checkpoint is gone: show it as missing
            p = sig.with_name(sig.name[: -len(".sig")])
            if p.resolve() not in seen:
                seen.add(p.resolve())
                paths.append(p)
        return paths

    def _assess_checkpoints(self) -> list[CheckpointStatus]:
        signing_configured = bool(self.events_of("integrity.configured", "checkpoint.signed"))
        out = []
        for path in self._checkpoint_paths():
            if not path.is_file():
                status = CheckpointStatus(path=self.rel(path), sha256="", size=0, signature="failed")
                status.errors["signature"] = "the checkpoint file is missing; only its signature is left"
                out.append(status)
                continue
            status = CheckpointStatus(path=self.rel(path), sha256=sha256_file(path), size=path.stat().st_size)
            if not signature_path(path).is_file():
                status.signature = "failed" if signing_configured else "unsigned"
                status.errors["signature"] = "no signature file" + (
                    " although the run signed its checkpoints (sidecar removed?)" if signing_configured else ""
                )
            elif self.public_key is None:
                status.signature = "not checked"
                status.errors["signature"] = "give --public-key to verify"
            else:
                try:
                    signed = verify_file(path, self.public_key)
                    status.signature = "verified"
                    status.global_step = signed.provenance.get("global_step")
                    status.audit_head = signed.provenance.get("audit_head")
                    status.key_fingerprint = signed.key_fingerprint
                except IntegrityError as err:
                    status.signature = "failed"
                    status.errors["signature"] = err.reason
            if status.audit_head is not None and self.audit_path is not None:
                status.check_trail(self.hashes, self.verified_events, self.chain.error)
            elif status.signature == "verified":
                status.errors["trail"] = "no audit head in the signed provenance"
            status.gate, status.gate_file, gate_error = self.gate_verdict(status.sha256)
            if gate_error:
                status.errors["gate"] = gate_error
            out.append(status)
        # a copy of the run: its log still names the original's files; keep one of each (name, digest)
        inside = {(Path(s.path).name, s.sha256) for s in out if not self._outside(s.path)}
        out = [s for s in out if not (self._outside(s.path) and (Path(s.path).name, s.sha256) in inside)]
        return sorted(out, key=lambda s: (s.global_step if s.global_step is not None else -1, s.path))

    def _outside(self, path: str) -> bool:
        p = Path(path)
        return p.is_absolute() or not (self.run_dir / p).exists()

    def _evidence_files(self) -> list[dict[str, Any]]:
        """Every non-weight file of the run (and of ``search_dirs``) with its SHA-256."""
        out = []
        for f in self._all_files:
            if f.suffix in WEIGHT_SUFFIXES:
                continue
            out.append({"path": self.rel(f), "sha256": sha256_file(f), "size": f.stat().st_size})
        return out

    def file_entry(self, path: Path | str) -> dict[str, Any] | None:
        rel = self.rel(Path(path)) if Path(path).is_absolute() or Path(path).exists() else str(path)
        return next((f for f in self.files if f["path"] == rel), None)

    def extendable(self) -> tuple[bool, str | None]:
        """Whether new events (an incident) may be appended to the run's audit log and its head re-signed.

        Not when the chain is broken, nor when the signed head fails: re-signing would cover up
        a truncated or rolled-back log. A log that never had a signed head (an unsigned run) may
        be extended, unless signed checkpoints exist (then the head file was removed).
        """
        if self.audit_path is None:
            return False, "no audit log"
        if not self.chain.ok:
            return False, f"the audit log does not verify ({self.chain.error})"
        if self.head is not None and not self.head.ok:
            signed = any(c.signature == "verified" for c in self.checkpoints)
            if self.head_file is not None or signed:
                return False, f"the signed audit head does not verify ({self.head.error})"
        return True, None

    @property
    def head_file(self) -> Path | None:
        if self.audit_path is None:
            return None
        p = head_path(self.audit_path)
        return p if p.is_file() else None
