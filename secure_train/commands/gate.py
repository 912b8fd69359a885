"""Gate commands: ``gate``, ``approve``, ``drift``, ``diff-train``.

- ``secure-train gate CKPT --suite SUITE.yaml``: run the validation suite, write
  ``CKPT.gate.json`` / ``CKPT.gate.md`` and the signed ``CKPT.attestation.json``; exit 1 when
  the gate fails.
- ``secure-train approve CKPT --by NAME --role ROLE --public-key PROJECT.pub``: verify, then an
  approval signed with the approver's own key.
- ``secure-train drift REFERENCE CURRENT [--window N]``: compare inference logs; exit 1 on alert.
- ``secure-train diff-train --config RECIPE --runs K --vary subset|seed``: differential
  training analysis; exit 1 when samples or runs are flagged.

The signing key comes from ``--signing-key`` or ``$SECURE_TRAIN_SIGNING_KEY``; every decision
goes to the audit log (``--audit-log``; default the run's ``audit.jsonl`` for a checkpoint in a
run's ``checkpoints/`` folder, else ``audit.jsonl`` next to the checkpoint / report). ``gate`` and
``export`` re-sign the log's head with the project key after recording (:func:`resigned_head`),
unless the chain or the signed head failed before: re-signing would cover a cut.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from secure_train.commands import ArgumentParser
from secure_train.core.audit_log import AuditLog
from secure_train.core.keys import DEFAULT_KEY_ENV, PrivateKey, load_private_key

__all__ = ["approve_main", "checkpoint_audit_log", "diff_train_main", "drift_main", "main", "resigned_head"]


def _audit(path: str | None, default_dir: Path) -> AuditLog:
    return AuditLog(Path(path) if path else default_dir / "audit.jsonl")


def checkpoint_audit_log(path: str | None, checkpoint: str | Path, out_dir: str | None = None) -> AuditLog:
    """``path``; else the run's ``audit.jsonl`` for ``RUN/checkpoints/CKPT``; else next to ``out_dir`` / CKPT."""
    if path:
        return AuditLog(Path(path))
    ckpt = Path(checkpoint)
    run_log = ckpt.parent.parent / "audit.jsonl"
    if out_dir is None and ckpt.parent.name == "checkpoints" and run_log.is_file():
        return AuditLog(run_log)
    return _audit(None, Path(out_dir) if out_dir else ckpt.parent)


def _resignable(log_path: Path, key: PrivateKey) -> str | None:
    """Why ``log_path``'s head must not be re-signed, or None when it may be."""
    from secure_train.core.audit_head import head_path, verify_audit_head
    from secure_train.core.audit_log import iter_events, verify

    if not log_path.is_file() or log_path.stat().st_size == 0:
        return None  # a new log: nothing earlier to vouch for
    chain = verify(log_path)
    if not chain.ok:
        return f"the audit log does not verify ({chain.error})"
    if not head_path(log_path).is_file():
        if any(e.get("type") == "checkpoint.signed" for e in iter_events(log_path)):
            return "the log names signed checkpoints but has no signed head (head file removed)"
        return None  # an unsigned run's log
    # events after the head (e.g. an approval, signed by the approver's own key) are no cut
    check = verify_audit_head(log_path, key.public_key(), allow_unsigned_tail=True)
    return None if check.ok else f"its signed head does not verify ({check.error})"


@contextmanager
def resigned_head(log: AuditLog, key: PrivateKey | None, *, reason: str) -> Iterator[None]:
    """Re-sign ``log``'s head with ``key`` after the events the block records.

    Checked before the block: a log whose chain or signed head fails is never re-signed (that
    would hide a cut); the events are still recorded and a warning names the log. Without a
    key nothing is signed.

    Example:
        >>> import tempfile
        >>> from secure_train.core.audit_head import verify_audit_head
        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> key, log = ec.generate_private_key(ec.SECP256R1()), AuditLog(tempfile.mkdtemp() + "/audit.jsonl")
        >>> with resigned_head(log, key, reason="gate"):
        ...     _ = log.record("gate.decision", passed=True)
        >>> verify_audit_head(log.path, key.public_key()).ok
        True
    """
    why = _resignable(Path(log.path), key) if key is not None else None
    try:
        yield
    finally:
        if key is not None and why is None:
            from secure_train.core.audit_head import sign_audit_head

            sign_audit_head(log.path, key, reason=reason)
        elif key is not None:
            print(f"secure-train: warning: audit head of {log.path} not re-signed: {why}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """``secure-train gate``."""
    from secure_train.gate.verdicts import VerdictStore

    p = ArgumentParser(prog="secure-train gate", description="Run the deployment gate on a checkpoint.")
    p.add_argument("checkpoint")
    p.add_argument("--suite", required=True, help="gate suite YAML (e.g. recipes/gate/gate-suite.yaml)")
    p.add_argument("--signing-key", default=None, help=f"private key for the attestation (default ${DEFAULT_KEY_ENV})")
    p.add_argument("--no-attestation", action="store_true", help="report only, sign nothing")
    p.add_argument("--out-dir", default=None, help="where reports go (default: next to the checkpoint)")
    p.add_argument("--verdicts", default=None, help="verdict store, by digest (default $SECURE_TRAIN_VERDICTS)")
    p.add_argument("--audit-log", default=None)
    p.add_argument("--allow-class", action="append", default=[], metavar="MODULE.CLASS",
                   help="also allow this model class from a checkpoint's _class_path (repeatable)")  # fmt: skip
    args = p.parse_args(argv)
    from secure_train.gate.suite import GateSuite, run_gate  # heavy: after --help

    suite = GateSuite.load(args.suite)
    key = None if args.no_attestation else load_private_key(args.signing_key)
    ckpt = Path(args.checkpoint)
    log = checkpoint_audit_log(args.audit_log, ckpt, args.out_dir)
    verify_key = key.public_key() if key is not None else None  # the suite's public_key comes first
    with resigned_head(log, key, reason="gate"):
        report = run_gate(ckpt, suite, private_key=key, out_dir=args.out_dir, audit_log=log, public_key=verify_key,
                          allow_classes=args.allow_class, verdicts=VerdictStore(args.verdicts))  # fmt: skip
    for c in report["checks"]:
        mark = "pass" if c["passed"] else "FAIL"
        print(f"{mark:4}  {c['name']:22} {c['metric']} = {c['value']:.4f} ({c['op']} {c['threshold']})")
    print(f"verdict filed by digest: {report['verdict']}")
    verdict = "PASSED" if report["passed"] else "FAILED"
    print(f"gate {verdict}: {ckpt} sha256 {report['checkpoint_sha256']}; attestation {report['attestation']}")
    return 0 if report["passed"] else 1


def approve_main(argv: list[str]) -> int:
    """``secure-train approve`` (see :mod:`secure_train.commands.approve`)."""
    from secure_train.commands.approve import main as approve

    return approve(argv)


def drift_main(argv: list[str]) -> int:
    """``secure-train drift``."""

    p = ArgumentParser(prog="secure-train drift", description="Compare two inference logs for drift.")
    p.add_argument("reference", help="reference inference log (JSONL with probs, or pred+confidence)")
    p.add_argument("current", help="current inference log")
    p.add_argument("--window", type=int, default=None, help="judge consecutive windows of N predictions")
    p.add_argument("--psi-threshold", type=float, default=0.25)
    p.add_argument("--ks-alpha", type=float, default=1e-3)
    p.add_argument("--js-threshold", type=float, default=0.05)
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--audit-log", default=None)
    args = p.parse_args(argv)
    from secure_train.monitoring.drift import DriftMonitor, load_inference_log, summarize  # heavy: after --help

    monitor = DriftMonitor(
        args.reference, psi_threshold=args.psi_threshold, ks_alpha=args.ks_alpha, js_threshold=args.js_threshold
    )
    current = load_inference_log(args.current)
    reports = monitor.check_windows(current, args.window) if args.window else [monitor.compare(current)]
    summary = summarize(reports)
    for i, r in enumerate(reports):
        status = "ALERT" if r.alert else "ok"
        print(f"window {i}: {status:5} psi={r.psi:.3f} ks={r.ks:.3f} (p={r.ks_pvalue:.1e}) js={r.js:.4f} "
              f"{'; '.join(r.reasons)}")  # fmt: skip
    log = _audit(args.audit_log, Path(args.current).parent)
    event = "drift.alert" if summary["alerts"] else "drift.checked"
    log.record(event, source="drift", reference=args.reference, current=args.current, **summary)
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "windows": [r.to_dict() for r in reports]}, indent=2))
    print(f"{summary['alerts']} alert(s) in {summary['windows']} window(s)")
    return 1 if summary["alerts"] else 0


def diff_train_main(argv: list[str]) -> int:
    """``secure-train diff-train``."""

    p = ArgumentParser(
        prog="secure-train diff-train", description="Train K variants and flag samples and runs that disagree."
    )
    p.add_argument("--config", required=True, help="training recipe (LightningCLI YAML)")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--vary", choices=["subset", "seed"], default="subset")
    p.add_argument("--max-epochs", type=int, default=None, help="override trainer.max_epochs")
    p.add_argument("--out-dir", default="diff-train")
    p.add_argument("--z-threshold", type=float, default=4.0)
    p.add_argument("--audit-log", default=None)
    args = p.parse_args(argv)
    from secure_train.gate.differential_training import DifferentialTraining  # heavy: after --help

    out = Path(args.out_dir)
    analysis = DifferentialTraining(runs=args.runs, vary=args.vary, z_threshold=args.z_threshold)
    report = analysis.run_recipe(args.config, max_epochs=args.max_epochs)
    paths = analysis.write_report(report, out)
    log = _audit(args.audit_log, out)
    log.record(
        "diff_train.report",
        source="diff-train",
        config=args.config,
        runs=args.runs,
        vary=args.vary,
        flagged_samples=[s["sample_id"] for s in report["flagged_samples"]],
        flagged_runs=report["flagged_runs"],
    )
    print(f"{len(report['flagged_samples'])} sample(s) and {len(report['flagged_runs'])} run(s) flagged; "
          f"report: {', '.join(str(x) for x in paths)}")  # fmt: skip
    return 1 if report["flagged_samples"] or report["flagged_runs"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
