"""``secure-train approve CKPT --by NAME --role ROLE --signing-key NAME.pem --public-key project.pub``.

Verifies the checkpoint's signature under the project key first (streaming: an unsigned or
garbage file is refused in one line without being read into memory), then writes the
approver's signed approval of its exact SHA-256 to ``CKPT.approvals/ROLE-NAME.json``. With
``--keyring`` (or a ``--policy`` that names one, default ``$SECURE_TRAIN_RELEASE_POLICY``) the
approver, their key and the role are checked against the keyring before anything is signed.
Registered in :data:`secure_train.cli.COMMANDS`.
"""

from __future__ import annotations

import os
from pathlib import Path

from secure_train.commands import ArgumentParser
from secure_train.commands.gate import checkpoint_audit_log
from secure_train.core.keys import DEFAULT_KEY_ENV, load_private_key
from secure_train.gate.attestation import POLICY_ENV, ReleasePolicy, write_approval
from secure_train.gate.keyring import ApproverKeyring

__all__ = ["main"]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="secure-train approve",
        description="Verify a signed checkpoint, then write an approval signed with the approver's own key.",
    )
    p.add_argument("checkpoint")
    p.add_argument("--by", required=True, help="approver name (as in the keyring)")
    p.add_argument("--role", required=True, help="approver role (e.g. security, ml-lead)")
    p.add_argument("--target", default="production")
    p.add_argument("--note", default="")
    p.add_argument("--signing-key", default=None, help=f"the approver's own private key (default ${DEFAULT_KEY_ENV})")
    p.add_argument("--public-key", required=True, help="public key the checkpoint must be signed with (project key)")
    ring = p.add_mutually_exclusive_group()
    ring.add_argument("--keyring", default=None, help="approver keyring (name -> public key -> roles) to check against")
    ring.add_argument(
        "--policy",
        default=os.environ.get(POLICY_ENV),
        help=f"release policy whose keyring to check against (default ${POLICY_ENV})",
    )
    p.add_argument("--audit-log", default=None, help="default: audit.jsonl next to the checkpoint")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    ckpt = Path(args.checkpoint)
    keyring = None
    if args.keyring:
        keyring = ApproverKeyring.load(args.keyring)
    elif args.policy:
        policy = ReleasePolicy.load(args.policy)
        keyring = policy.approver_keyring() if policy.keyring is not None else None
    path = write_approval(
        ckpt,
        by=args.by,
        role=args.role,
        target=args.target,
        note=args.note,
        private_key=load_private_key(args.signing_key),
        public_key=args.public_key,
        keyring=keyring,
        audit_log=checkpoint_audit_log(args.audit_log, ckpt),  # not re-signed: the key is the approver's
    )
    print(f"OK: approval by {args.by} ({args.role}) for {args.target}: {path}")
    return 0
