"""``secure-train incident open|verify|rollback``: incident response.

- ``incident open RUN_DIR --reason TEXT``: record ``incident.opened``, write a signed forensic
  bundle (``RUN_DIR/incidents/<id>.tar`` + ``.sig``), record ``incident.bundle``.
- ``incident verify BUNDLE --public-key PUB``: check the bundle; exit 1 on any mismatch.
- ``incident rollback RUN_DIR --public-key PUB [--before-step N | --before-anomaly SEQ]``:
  print every checkpoint's standing and the last one that verifies, whose audit trail verifies
  and that passed the gate; record ``incident.rollback``; print the resume and export commands.
  Exit 1 when none qualifies.

The signing key comes from ``--signing-key`` or ``$SECURE_TRAIN_SIGNING_KEY``.
"""

from __future__ import annotations

import argparse
import sys

from secure_train.commands import ArgumentParser
from secure_train.core.keys import DEFAULT_KEY_ENV, PrivateKey

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="secure-train incident", description="Incident response.")
    sub = parser.add_subparsers(dest="action", required=True)
    op = sub.add_parser("open", help="freeze the run's evidence into a signed forensic bundle")
    op.add_argument("run_dir")
    op.add_argument("--reason", required=True, help="why the incident is opened (recorded)")
    op.add_argument("--out", default=None, help="bundle path (default RUN_DIR/incidents/<id>.tar)")
    op.add_argument("--signing-key", default=None, help=f"private key (default ${DEFAULT_KEY_ENV})")
    op.add_argument("--public-key", default=None, help="key the run was signed with (default: the signing key's)")
    op.add_argument("--include", action="append", default=[], help="another file to freeze (repeatable)")
    ver = sub.add_parser("verify", help="verify a forensic bundle")
    ver.add_argument("bundle")
    ver.add_argument("--public-key", required=True)
    rb = sub.add_parser("rollback", help="find the last verified, gated checkpoint and record the rollback")
    rb.add_argument("run_dir")
    rb.add_argument("--public-key", required=True, help="key the checkpoints and attestations are signed with")
    which = rb.add_mutually_exclusive_group()
    which.add_argument("--before-step", type=int, default=None, help="only checkpoints saved before this step")
    which.add_argument(
        "--before-anomaly",
        type=int,
        default=None,
        metavar="SEQ",
        help="only checkpoints saved before audit event SEQ (e.g. a monitor.anomaly)",
    )
    rb.add_argument("--reason", default="", help="recorded in incident.rollback")
    rb.add_argument(
        "--signing-key", default=None, help=f"re-sign the audit head after recording (default ${DEFAULT_KEY_ENV})"
    )
    rb.add_argument("--allow-ungated", action="store_true", help="do not require a passing gate verdict (recorded)")
    rb.add_argument("--evidence-dir", action="append", default=[], help="more directories with gate attestations")
    rb.add_argument("--dry-run", action="store_true", help="print the choice, record nothing")
    return parser


def _signing_key(path: str | None, required: bool) -> PrivateKey | None:
    import os

    from secure_train.core.keys import load_private_key

    if path is None and not os.environ.get(DEFAULT_KEY_ENV) and not required:
        return None
    return load_private_key(path)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "open":
        from secure_train.response.incident import ForensicBundle

        key = _signing_key(args.signing_key, required=True)
        assert key is not None  # noqa: S101 - required=True loads or raises
        bundle = ForensicBundle.open_incident(
            args.run_dir,
            reason=args.reason,
            private_key=key,
            public_key=args.public_key,
            out=args.out,
            include=args.include,
        )
        check = bundle.verify(key.public_key())
        m = check.manifest
        print(
            f"incident {m.get('id')} opened: audit event seq {m.get('audit_event', {}).get('seq')} in "
            f"{m.get('audit_event', {}).get('log')}"
        )
        print(
            f"bundle: {bundle.path} ({check.files} files, {len(m.get('checkpoints', []))} checkpoint digests), "
            f"signature {bundle.path}.sig"
        )
        integ = m.get("integrity", {}).get("audit_log", {})
        print(
            f"audit log at opening: {'verifies' if integ.get('ok') else 'DOES NOT VERIFY: ' + str(integ.get('error'))}"
        )
        for note in m.get("notes", []):
            print(f"note: {note}")
        return 0
    if args.action == "verify":
        from secure_train.response.incident import ForensicBundle

        check = ForensicBundle(args.bundle).verify(args.public_key)
        if not check.ok:
            for err in check.errors:
                print(f"FAILED: {err}", file=sys.stderr)
            return 1
        m = check.manifest
        print(
            f"OK: {args.bundle}: incident {m['id']} ({m['reason']!r}, opened {m['opened']}), {check.files} files "
            f"and {len(m['checkpoints'])} checkpoint digests match the signed manifest"
        )
        return 0
    from secure_train.core.errors import SecureTrainError
    from secure_train.response.incident import RollbackPlanner

    planner = RollbackPlanner(
        args.run_dir, args.public_key, require_gate=not args.allow_ungated, search_dirs=args.evidence_dir
    )
    criteria = {
        k: v for k, v in (("before_step", args.before_step), ("before_anomaly", args.before_anomaly)) if v is not None
    }
    for ck, problems in planner.judge(**criteria):
        verdict = "ok " if not problems else "no "
        print(
            f"{verdict} step {ck.global_step!s:>6}  {ck.sha256[:12]}  {ck.path}"
            + (f"  ({'; '.join(problems)})" if problems else "")
        )
    try:
        chosen = planner.select(**criteria)
    except SecureTrainError as err:
        print(f"REFUSED: {err}", file=sys.stderr)
        return 1
    path = planner.checkpoint_path(chosen)
    print(f"ROLLBACK TARGET: {path} (step {chosen.global_step}, sha256 {chosen.sha256}, gate {chosen.gate})")
    if not args.dry_run:
        key = _signing_key(args.signing_key, required=False)
        event = planner.record(chosen, reason=args.reason, private_key=key, criteria=criteria)
        print(
            f"recorded incident.rollback as audit event seq {event['seq']}"
            + ("" if key is not None else " (audit head NOT re-signed: no signing key)")
        )
    print(f"resume: {planner.resume_command(chosen)}")
    print(f"export: secure-train export {path} --out model.safetensors --public-key {args.public_key}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
