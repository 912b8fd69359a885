"""Verify ``--ckpt_path`` before LightningCLI reads the checkpoint's hyperparameters.

LightningCLI parses ``ckpt_path`` with ``torch.load`` to merge the saved hyperparameters into
the config *before* the Trainer (and so ``SignedCheckpointIO``) exists. When the config
configures signing (a ``CheckpointSigning`` callback or a ``SignedCheckpointIO`` plugin),
:func:`verify_ckpt_path` checks the file first, with that configuration's key; the Trainer
verifies it again when it actually loads it.

Example:
    >>> verify_ckpt_path({"ckpt_path": None, "trainer": {}}) is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secure_train.integrity.keys import DEFAULT_KEY_ENV, DEFAULT_PASSPHRASE_ENV, load_private_key, load_public_key
from secure_train.integrity.signed_file import SignedFile, signature_path, verify_file

__all__ = ["verify_ckpt_path"]

_SIGNING_CLASSES = {"CheckpointSigning", "SignedCheckpointIO"}


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def verify_ckpt_path(config: Mapping[str, Any]) -> SignedFile | None:
    """Verify ``config["ckpt_path"]`` when ``config["trainer"]`` configures checkpoint signing.

    Args:
        config: one subcommand's config as a dict (``ckpt_path``, ``trainer``).

    Returns:
        The signed record, or None when no checkpoint is given, signing is not configured,
        or the file is unsigned and ``require_signature`` is off.

    Raises:
        IntegrityError: the checkpoint is unsigned (and a signature is required) or does
            not match its signature.
    """
    ckpt_path = config.get("ckpt_path")
    if not ckpt_path or not Path(str(ckpt_path)).is_file():
        return None
    trainer = config.get("trainer") or {}
    for entry in _entries(trainer.get("callbacks")) + _entries(trainer.get("plugins")):
        if not isinstance(entry, Mapping):
            continue
        if str(entry.get("class_path", "")).rsplit(".", 1)[-1] not in _SIGNING_CLASSES:
            continue
        args = entry.get("init_args") or {}
        if not args.get("require_signature", True) and not signature_path(ckpt_path).exists():
            return None
        public = args.get("public_key")
        if public is None:
            private = args.get("private_key")
            key = load_private_key(
                None if private is None else os.fspath(private),
                env=args.get("key_env") or DEFAULT_KEY_ENV,
                passphrase_env=args.get("passphrase_env", DEFAULT_PASSPHRASE_ENV),
            )
            public_key = key.public_key()
        else:
            public_key = load_public_key(public)
        return verify_file(ckpt_path, public_key)
    return None
