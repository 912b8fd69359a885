"""``secure-train audit verify PATH``: check an audit log's hash chain."""

from __future__ import annotations

import argparse
import sys

from secure_train.audit import verify

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secure-train audit", description="Audit-log tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    ver = sub.add_parser("verify", help="verify the hash chain; exit 1 naming the first bad event")
    ver.add_argument("path", help="audit.jsonl file")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = verify(args.path)
    if result.ok:
        print(f"OK: {args.path}: {result.events} events, head {result.head}")
        return 0
    print(f"FAILED: {result.error}", file=sys.stderr)
    return 1
