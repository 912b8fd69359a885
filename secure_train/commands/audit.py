"""``secure-train audit verify PATH [--public-key PUB]``: check an audit log's hash chain, signed head and pinned heads.

With ``--public-key`` the signed head ``<PATH>.head.json`` is checked, and so are the audit
heads the run's signed checkpoints pin (next to the log, under ``<log dir>/checkpoints/``,
named by the log's ``checkpoint.signed`` events, plus ``--checkpoints``): a log or head file
older than the newest of them, or rewritten, fails. Events after the last signed head fail
unless ``--allow-unsigned-tail``. Exit 0 verified, 1 a failed check, 2 bad usage.
"""

from __future__ import annotations

import sys

from secure_train.commands import ArgumentParser
from secure_train.core.audit_log import verify
from secure_train.core.errors import ConfigError

__all__ = ["main"]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="secure-train audit", description="Audit-log tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    ver = sub.add_parser("verify", help="verify the hash chain; exit 1 naming the first bad event")
    ver.add_argument("path", help="audit.jsonl file")
    ver.add_argument(
        "--public-key",
        default=None,
        help="also check the signed head <path>.head.json and the audit heads pinned by the run's signed "
        "checkpoints with this public key (detects truncation, rollback and rewriting)",
    )
    ver.add_argument(
        "--checkpoints",
        nargs="+",
        default=[],
        metavar="PATH",
        help="more signed checkpoints (files or directories) whose pinned audit heads to check",
    )
    ver.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept events recorded after the last signed head (reported, not protected)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.public_key is None and (args.checkpoints or args.allow_unsigned_tail):
        raise ConfigError("--checkpoints and --allow-unsigned-tail need --public-key")
    from secure_train.core.safe_io import check_file

    check_file(args.path, what="audit log")  # a missing file is bad input (exit 2), not a FAILED chain
    result = verify(args.path)
    if not result.ok:
        print(f"FAILED: {result.error}", file=sys.stderr)
        return 1
    if args.public_key is None:
        print(
            f"OK: {args.path}: {result.events} events, head {result.head} "
            "(chain only: give --public-key to check the signed heads)"
        )
        return 0
    from secure_train.core.audit_head import verify_audit_head

    head = verify_audit_head(
        args.path, args.public_key, checkpoints=args.checkpoints, allow_unsigned_tail=args.allow_unsigned_tail
    )
    if not head.ok:
        print(f"FAILED: {args.path}: {head.error}", file=sys.stderr)
        return 1
    pinned = (
        f"; {head.checkpoints} signed checkpoint(s) agree (newest pins {head.pinned_events})"
        if head.checkpoints
        else "; no signed checkpoint found to cross-check"
    )
    tail = (
        f", {head.unsigned_tail} later event(s) not covered (accepted with --allow-unsigned-tail)"
        if head.unsigned_tail
        else ""
    )
    print(
        f"OK: {args.path}: {result.events} events, head {result.head}, "
        f"signed head covers {head.signed_events}{tail}{pinned}"
    )
    return 0
