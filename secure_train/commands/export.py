"""``secure-train export CKPT --out model.safetensors``: verify, then write signed weights-only safetensors."""

from __future__ import annotations

import argparse

from secure_train.integrity.encryption import load_encryption_key
from secure_train.integrity.export import export_checkpoint
from secure_train.integrity.keys import DEFAULT_KEY_ENV, load_private_key

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secure-train export",
        description="Verify a signed checkpoint, then write its state_dict as safetensors with a signature sidecar.",
    )
    parser.add_argument("checkpoint", help="signed checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="destination .safetensors file")
    parser.add_argument("--public-key", required=True, help="public key the checkpoint must be signed with")
    parser.add_argument(
        "--signing-key", default=None, help=f"private key that signs the export (default: ${DEFAULT_KEY_ENV})"
    )
    parser.add_argument(
        "--encryption-key",
        default=None,
        help="AES-256 key file (0600) for encrypted checkpoints; default $SECURE_TRAIN_ENCRYPTION_KEY",
    )
    parser.add_argument("--encrypt", action="store_true", help="encrypt the export at rest (AES-256-GCM)")
    parser.add_argument("--allow-unsigned", action="store_true", help="accept a checkpoint without signature")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = export_checkpoint(
        args.checkpoint,
        args.out,
        public_key=args.public_key,
        private_key=load_private_key(args.signing_key),
        require_signature=not args.allow_unsigned,
        encryption_key=load_encryption_key(args.encryption_key),
        encrypt_output=args.encrypt,
    )
    print(
        f"OK: {result.path}: {result.tensors} tensors, {result.signed.size} bytes, "
        f"sha256 {result.signed.sha256}, signature {result.path}.sig"
    )
    return 0
