"""Rollback after an incident: find the last checkpoint known to be good.

A checkpoint qualifies when (1) its signature verifies under the public key, (2) the audit
log's hash chain verifies up to the head the checkpoint pinned when it was saved, and the
event there still has that hash, and (3) a gate verdict for its exact SHA-256 passed and
verifies (and no failing verdict exists for that digest). ``before_step`` keeps checkpoints
saved before a step; ``before_anomaly`` keeps those saved before a given audit event was
recorded (their pinned head does not include it).

:meth:`RollbackPlanner.record` writes ``incident.rollback`` to the run's audit log, and
:meth:`RollbackPlanner.resume_args` gives the ``secure-train fit`` arguments that resume from
the checkpoint while continuing that same audit log.

Example:
    >>> import tempfile
    >>> from secure_train.core.audit_log import AuditLog
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> d = tempfile.mkdtemp()
    >>> _ = AuditLog(f"{d}/audit.jsonl").record("run.start", source="docs")
    >>> planner = RollbackPlanner(d, ec.generate_private_key(ec.SECP256R1()).public_key(), use_verdict_store=False)
    >>> planner.select()
    Traceback (most recent call last):
    ...
    secure_train.core.errors.SecureTrainError: no checkpoint qualifies for rollback: the run has no checkpoint
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secure_train.core.audit_head import sign_audit_head
from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import ConfigError, SecureTrainError
from secure_train.core.keys import PrivateKey, PublicKeyLike
from secure_train.response.report.checkpoints import CheckpointStatus
from secure_train.response.report.evidence import RunEvidence

__all__ = ["RollbackPlanner"]


class RollbackPlanner:
    """Judge a run's checkpoints as rollback targets.

    Args:
        run_dir: the run's log directory.
        public_key: the signer's public key (required: nothing unverified qualifies).
        require_gate: a passing gate verdict is required (default). ``False`` is for runs
            never gated; the choice is recorded in ``incident.rollback``.
        search_dirs, verdict_store, use_verdict_store: where gate verdicts are looked up
            (see :class:`~secure_train.response.report.evidence.RunEvidence`).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        public_key: PublicKeyLike,
        *,
        require_gate: bool = True,
        search_dirs: Sequence[str | os.PathLike[str]] = (),
        verdict_store: str | os.PathLike[str] | None = None,
        use_verdict_store: bool = True,
    ) -> None:
        if public_key is None:
            raise ConfigError(f"{type(self).__name__}: public_key is required (nothing unverified qualifies)")
        self.evidence = RunEvidence(
            run_dir,
            public_key=public_key,
            search_dirs=search_dirs,
            verdict_store=verdict_store,
            use_verdict_store=use_verdict_store,
        )
        self.require_gate = require_gate

    def _anomaly(self, seq: int) -> dict[str, Any]:
        for e in self.evidence.events:
            if e.get("seq") == seq:
                if not self.evidence.is_verified(e):
                    raise ConfigError(f"audit event {seq} does not verify; name a verified event")
                return e
        raise ConfigError(f"no audit event with seq {seq} in {self.evidence.audit_path}")

    def judge(
        self, *, before_step: int | None = None, before_anomaly: int | None = None
    ) -> list[tuple[CheckpointStatus, list[str]]]:
        """Every checkpoint (oldest first) with the reasons it does not qualify (empty: it does)."""
        anomaly = self._anomaly(before_anomaly) if before_anomaly is not None else None
        out = []
        for ck in self.evidence.checkpoints:
            problems = ck.problems(require_gate=self.require_gate)
            if before_step is not None and (ck.global_step is None or ck.global_step >= before_step):
                problems.append(f"saved at step {ck.global_step}, not before step {before_step}")
            if anomaly is not None:
                pinned = (ck.audit_head or {}).get("events")
                if pinned is None or int(pinned) > int(anomaly["seq"]):
                    problems.append(f"saved after audit event {anomaly['seq']} ({anomaly.get('type')})")
            out.append((ck, problems))
        return out

    def select(self, *, before_step: int | None = None, before_anomaly: int | None = None) -> CheckpointStatus:
        """The last qualifying checkpoint (highest step, then latest pinned head).

        Raises:
            SecureTrainError: none qualifies; the message lists each checkpoint and why.
        """
        judged = self.judge(before_step=before_step, before_anomaly=before_anomaly)
        good = [ck for ck, problems in judged if not problems]
        if not good:
            if not judged:
                raise SecureTrainError("no checkpoint qualifies for rollback: the run has no checkpoint")
            why = "; ".join(f"{ck.path}: {', '.join(p)}" for ck, p in judged[-8:])
            raise SecureTrainError(f"no checkpoint qualifies for rollback ({why})")
        # last.ckpt is overwritten by the next save: prefer the step-named copy of the same state
        return max(
            good,
            key=lambda c: (
                c.global_step or -1,
                Path(c.path).name != "last.ckpt",
                int((c.audit_head or {}).get("events", -1)),
            ),
        )

    def checkpoint_path(self, status: CheckpointStatus) -> Path:
        """The checkpoint's file (``status.path`` is relative to the run directory when inside it)."""
        p = Path(status.path)
        inside = self.evidence.run_dir / p
        return inside if not p.is_absolute() and inside.exists() else p

    def record(
        self,
        status: CheckpointStatus,
        *,
        reason: str = "",
        private_key: PrivateKey | None = None,
        criteria: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write ``incident.rollback`` to the run's audit log (and sign its head when a key is given).

        Raises:
            SecureTrainError: the run's audit log or its signed head does not verify (re-signing
                would cover the gap up, so the log is never extended then).
        """
        ev = self.evidence
        extendable, why = ev.extendable()
        if not extendable or ev.audit_path is None:
            raise SecureTrainError(
                f"{why}: the run's audit log is not extended; open an incident "
                "(`secure-train incident open`) and resume into a new log"
            )
        rejected = [{"path": ck.path, "problems": p} for ck, p in self.judge(**(criteria or {})) if p]
        log = AuditLog(ev.audit_path)
        event = log.record(
            "incident.rollback",
            source="secure-train incident",
            checkpoint=str(self.checkpoint_path(status)),
            sha256=status.sha256,
            global_step=status.global_step,
            audit_head=status.audit_head,
            gate=status.gate,
            gate_file=status.gate_file,
            require_gate=self.require_gate,
            criteria=criteria or {},
            reason=reason,
            rejected=rejected[-20:],
        )
        if private_key is not None:
            sign_audit_head(ev.audit_path, private_key, reason="incident.rollback")
        assert event is not None  # noqa: S101
        return event

    def resume_args(self, status: CheckpointStatus) -> list[str]:
        """``secure-train fit`` arguments resuming from ``status`` into the same audit log."""
        ev = self.evidence
        args = ["fit"]
        if (ev.run_dir / "config.yaml").is_file():
            args += ["--config", str(ev.run_dir / "config.yaml")]
        args += ["--ckpt_path", str(self.checkpoint_path(status))]
        if ev.audit_path is not None:
            args += [
                "--trainer.callbacks+=secure_train.monitors.AuditTrail",
                f"--trainer.callbacks.path={ev.audit_path}",
            ]
        return args

    def resume_command(self, status: CheckpointStatus) -> str:
        return "secure-train " + shlex.join(self.resume_args(status))
