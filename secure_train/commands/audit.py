"""``secure-train audit verify PATH [--public-key PUB]``: check an audit log's hash chain (and signed head)."""

from __future__ import annotations

import argparse
import sys

from secure_train.audit import verify
from secure_train.commands import ArgumentParser

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="secure-train audit", description="Audit-log tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    ver = sub.add_parser("verify", help="verify the hash chain; exit 1 naming the first bad event")
    ver.add_argument("path", help="audit.jsonl file")
    ver.add_argument(
        "--public-key",
        default=None,
        help="also check the signed head <path>.head.json with this public key (detects a truncated tail)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = verify(args.path)
    if not result.ok:
        print(f"FAILED: {result.error}", file=sys.stderr)
        return 1
    if args.public_key is not None:
        from secure_train.integrity.audit_head import verify_audit_head

        head = verify_audit_head(args.path, args.public_key)
        if not head.ok:
            print(f"FAILED: {args.path}: {head.error}", file=sys.stderr)
            return 1
        tail = f", {head.unsigned_tail} later events not covered" if head.unsigned_tail else ""
        print(
            f"OK: {args.path}: {result.events} events, head {result.head}, "
            f"signed head covers {head.signed_events}{tail}"
        )
        return 0
    print(f"OK: {args.path}: {result.events} events, head {result.head}")
    return 0
