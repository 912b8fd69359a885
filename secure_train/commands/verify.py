"""``secure-train verify PATH --public-key PUB``: check a signed checkpoint (file or sharded directory) or export."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from secure_train.commands import ArgumentParser
from secure_train.core.errors import IntegrityError
from secure_train.core.keys import load_public_key
from secure_train.core.safe_io import check_file
from secure_train.core.signed_file import signed_target, verify_file

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="secure-train verify",
        description=(
            "Verify files, or sharded checkpoint directories, against their .sig sidecars "
            "(signature, size, every shard / every file); exit 1 on a mismatch."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="signed checkpoint file(s) or directories, or export(s)"
    )
    parser.add_argument("--public-key", required=True, help="signer's public key (PEM)")
    parser.add_argument("--json", action="store_true", help="print the signed record(s) as JSON")
    return parser


def _report_directory(path: str, signed: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": path, "kind": "directory", **signed.__dict__}, default=dict))
        return
    print(
        f"OK: {path}: directory of {len(signed.digests)} files, {signed.size} bytes, sha256 {signed.sha256}, "
        f"key {signed.key_fingerprint[:16]}..., global_step {signed.provenance.get('global_step')}"
    )


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    key = load_public_key(args.public_key)  # an unreadable key is bad input: one error line, exit 2
    for path in args.paths:
        if not os.path.isdir(path):
            check_file(path, what="file to verify")  # so is a missing file; a mismatch is FAILED, exit 1
    failed = 0
    for path in args.paths:
        try:
            if signed_target(path).is_dir():
                from secure_train.integrity.sharded import verify_directory

                directory = verify_directory(path, key)
                _report_directory(path, directory, args.json)
                continue
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
