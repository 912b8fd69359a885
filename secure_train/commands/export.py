"""``secure-train export CKPT --out model.safetensors``: verify, then write signed weights-only safetensors."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from secure_train.commands import ArgumentParser
from secure_train.core.audit_log import AuditLog
from secure_train.core.errors import ConfigError
from secure_train.core.keys import DEFAULT_KEY_ENV, load_private_key
from secure_train.gate.attestation import POLICY_ENV
from secure_train.gate.verdicts import VERDICTS_ENV
from secure_train.integrity.encryption import load_encryption_key

if TYPE_CHECKING:
    from secure_train.integrity.safetensors_export import ExportCheck, ExportContext

__all__ = ["main"]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
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
        "--verdicts",
        default=None,
        help=f"verdict store searched by the checkpoint's SHA-256 (default ${VERDICTS_ENV} or ~/.local/state)",
    )
    gate.add_argument(
        "--allow-ungated",
        action="store_true",
        help="export without a passing attestation (development only; refused with --policy; a failing "
        "verdict for the same bytes still blocks; audited)",
    )
    return parser


def _gate_checks(args: argparse.Namespace) -> tuple[list[ExportCheck], AuditLog, bool]:
    """The release-policy check, always run: a passing attestation for the checkpoint's exact
    digest is required (plus approvals per ``--policy`` / ``--target``), and any failing verdict
    for that digest (next to the file or in the verdict store, wherever the copy lies) blocks.
    ``--allow-ungated``, without a policy, target or attestation, waives only the passing
    attestation. Returns the checks, the audit log and whether the export is ungated."""
    from secure_train.commands.gate import checkpoint_audit_log
    from secure_train.gate.attestation import ReleasePolicy
    from secure_train.gate.verdicts import VerdictStore

    log = checkpoint_audit_log(args.audit_log, args.checkpoint)
    if args.allow_ungated and (args.policy or args.target or args.attestation):
        raise ConfigError("--allow-ungated cannot be combined with --policy, --target or --attestation")
    store = VerdictStore(args.verdicts)
    if args.allow_ungated:
        policy = ReleasePolicy(require_attestation=False, verdicts=store)
    else:
        policy = ReleasePolicy.load(args.policy) if args.policy else ReleasePolicy()
        policy.verdicts = store
    check = policy.export_check(args.public_key, target=args.target, attestation=args.attestation, audit_log=log)
    if not args.allow_ungated:
        return [check], log, False

    def ungated(context: ExportContext) -> None:
        check(context)  # a failing verdict for these bytes blocks even an ungated export
        log.record("model.export_ungated", source="secure-train export", checkpoint=str(args.checkpoint))

    return [ungated], log, True


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    checks, audit_log, ungated = _gate_checks(args)  # a bad policy is refused before torch is imported
    from secure_train.commands.gate import resigned_head
    from secure_train.integrity.safetensors_export import export_checkpoint

    key = load_private_key(args.signing_key)
    with resigned_head(audit_log, key, reason="export"):  # refused exports are recorded and signed too
        result = export_checkpoint(
            args.checkpoint,
            args.out,
            public_key=args.public_key,
            private_key=key,
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
    if ungated:
        print("note: exported WITHOUT a gate attestation (--allow-ungated); not for deployment")
    return 0
