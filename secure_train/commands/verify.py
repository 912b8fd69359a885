"""``secure-train verify FILE --public-key PUB``: check a signed checkpoint or export."""

from __future__ import annotations

import argparse
import json
import sys

from secure_train.commands import ArgumentParser
from secure_train.integrity.errors import IntegrityError
from secure_train.integrity.keys import load_public_key
from secure_train.integrity.signed_file import verify_file
from secure_train.safe_io import check_file

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="secure-train verify",
        description="Verify files against their .sig sidecars (signature, size, every shard); exit 1 on a mismatch.",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE", help="signed checkpoint(s) or export(s)")
    parser.add_argument("--public-key", required=True, help="signer's public key (PEM)")
    parser.add_argument("--json", action="store_true", help="print the signed record(s) as JSON")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    key = load_public_key(args.public_key)  # an unreadable key is bad input: one error line, exit 2
    for path in args.paths:
        check_file(path, what="file to verify")  # so is a missing file; a mismatch is FAILED, exit 1
    failed = 0
    for path in args.paths:
        try:
            signed = verify_file(path, key)
        except IntegrityError as err:
            print(f"FAILED: {err}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"path": path, **signed.__dict__}, default=list))
        else:
            step = signed.provenance.get("global_step")
            print(
                f"OK: {path}: {signed.size} bytes, sha256 {signed.sha256}, "
                f"key {signed.key_fingerprint[:16]}..., global_step {step}"
            )
    return 1 if failed else 0
