"""``secure-train export CKPT --out model.safetensors``: verify, then write signed weights-only safetensors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from secure_train.audit import AuditLog
from secure_train.errors import ConfigError
from secure_train.integrity.encryption import load_encryption_key
from secure_train.integrity.export import ExportCheck, export_checkpoint
from secure_train.integrity.keys import DEFAULT_KEY_ENV, load_private_key

__all__ = ["main"]

POLICY_ENV = "SECURE_TRAIN_RELEASE_POLICY"


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
    gate = parser.add_argument_group("deployment gate (see `secure-train gate` / `approve`)")
    gate.add_argument(
        "--policy",
        default=os.environ.get(POLICY_ENV),
        help=f"release policy YAML; enforces a passing attestation and approvals (default ${POLICY_ENV})",
    )
    gate.add_argument("--target", default=None, help="deployment target, e.g. production (approvals per policy)")
    gate.add_argument("--attestation", default=None, help="attestation file (default CKPT.attestation.json)")
    gate.add_argument("--audit-log", default=None, help="audit log of gate decisions (default next to CKPT)")
    gate.add_argument(
        "--allow-ungated",
        action="store_true",
        help="export without a gate attestation (development only; refused with --policy; audited)",
    )
    return parser


def _gate_checks(args: argparse.Namespace) -> tuple[list[ExportCheck], AuditLog]:
    """The release-policy check: a passing attestation for the checkpoint's exact digest is
    required (plus approvals per ``--policy`` / ``--target``). Only ``--allow-ungated``, without
    a policy, target or attestation, skips it; a failing or foreign ``CKPT.attestation.json``
    next to the checkpoint blocks export even then."""
    from secure_train.gate.attestation import ReleasePolicy, attestation_path

    log = AuditLog(Path(args.audit_log) if args.audit_log else Path(args.checkpoint).parent / "audit.jsonl")
    if args.allow_ungated and (args.policy or args.target or args.attestation):
        raise ConfigError("--allow-ungated cannot be combined with --policy, --target or --attestation")
    if args.allow_ungated and not attestation_path(args.checkpoint).is_file():
        log.record("model.export_ungated", source="secure-train export", checkpoint=str(args.checkpoint))
        return [], log
    policy = ReleasePolicy.load(args.policy) if args.policy else ReleasePolicy()
    check = policy.export_check(args.public_key, target=args.target, attestation=args.attestation, audit_log=log)
    return [check], log


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    checks, audit_log = _gate_checks(args)
    result = export_checkpoint(
        args.checkpoint,
        args.out,
        public_key=args.public_key,
        private_key=load_private_key(args.signing_key),
        require_signature=not args.allow_unsigned,
        encryption_key=load_encryption_key(args.encryption_key),
        encrypt_output=args.encrypt,
        checks=checks,
        audit_log=audit_log,
    )
    print(
        f"OK: {result.path}: {result.tensors} tensors, {result.signed.size} bytes, "
        f"sha256 {result.signed.sha256}, signature {result.path}.sig"
    )
    if not checks:
        print("note: exported WITHOUT a gate attestation (--allow-ungated); not for deployment")
    return 0
