"""``secure-train keygen``: write an EC signing key pair (P-256 by default)."""

from __future__ import annotations

import argparse

from secure_train.integrity.keys import (
    CURVES,
    DEFAULT_PASSPHRASE_ENV,
    generate_keypair,
    key_fingerprint,
    load_public_key,
)

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secure-train keygen",
        description="Write a private key (mode 0600, PEM; encrypted when the passphrase variable is set) "
        "and its public key.",
    )
    parser.add_argument("--out", default="signing-key.pem", help="private key file (default: signing-key.pem)")
    parser.add_argument("--public-out", default=None, help="public key file (default: <out without .pem>.pub)")
    parser.add_argument("--curve", choices=sorted(CURVES), default="P-256")
    parser.add_argument(
        "--passphrase-env",
        default=DEFAULT_PASSPHRASE_ENV,
        help=f"environment variable holding a passphrase (default: {DEFAULT_PASSPHRASE_ENV}); unset: no encryption",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    public = args.public_out or (args.out[: -len(".pem")] if args.out.endswith(".pem") else args.out) + ".pub"
    priv, pub = generate_keypair(args.out, public, args.passphrase_env, curve=args.curve, overwrite=args.force)
    print(f"private key: {priv} (mode 0600)")
    print(f"public key:  {pub}")
    print(f"fingerprint: {key_fingerprint(load_public_key(pub))}")
    return 0
