"""Sigstore keyless signing for online users: a thin pass-through to ``model_signing``.

Keyless signing needs network access (Fulcio, Rekor) and an OpenID Connect identity, so
it is meant for a *finished* artifact -- typically the safetensors file written by
:func:`~secure_train.integrity.export_checkpoint` -- not for every checkpoint during
training. The bundle it writes is plain ``model_signing`` (whole-file SHA-256, no
secure-train provenance extension); verify it with :func:`verify_keyless` or
``model_signing verify sigstore FILE --signature SIG --identity ... --identity_provider ...``.

Not exercised by the test suite beyond its wiring: the test machines are offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, IntegrityError

__all__ = ["sign_keyless", "verify_keyless"]


def _model_signing() -> Any:
    """``model_signing``, or a :class:`ConfigError` naming the extra that installs it."""
    try:
        import model_signing
    except ImportError:
        raise ConfigError("keyless signing needs model_signing: pip install 'secure-train[sigstore]'") from None
    return model_signing


def sign_keyless(
    path: str | os.PathLike[str], signature: str | os.PathLike[str] | None = None, **sigstore_options: Any
) -> Path:
    """Sign ``path`` with Sigstore (``model_signing``'s ``use_sigstore_signer(**sigstore_options)``).

    Args:
        path: file to sign.
        signature: bundle to write; default ``<path>.sigstore.json`` (so it never
            replaces a key-based ``.sig`` sidecar).
        sigstore_options: passed through, e.g. ``identity_token=...``, ``use_staging=True``,
            ``use_ambient_credentials=True``.

    Returns:
        The signature path.

    Raises:
        ConfigError: ``model_signing`` is not installed (the ``sigstore`` extra).
    """
    model_signing = _model_signing()

    out = Path(signature) if signature is not None else Path(os.fspath(path) + ".sigstore.json")
    model_signing.signing.Config().use_sigstore_signer(**sigstore_options).sign(Path(path), out)
    return out


def verify_keyless(
    path: str | os.PathLike[str],
    *,
    identity: str,
    oidc_issuer: str,
    signature: str | os.PathLike[str] | None = None,
    use_staging: bool = False,
) -> None:
    """Verify a Sigstore bundle for ``path`` against the expected signer identity and issuer.

    Raises:
        IntegrityError: verification failed (the message is ``model_signing``'s).
        ConfigError: ``model_signing`` is not installed (the ``sigstore`` extra).
    """
    model_signing = _model_signing()

    sig = Path(signature) if signature is not None else Path(os.fspath(path) + ".sigstore.json")
    config = model_signing.verifying.Config().use_sigstore_verifier(
        identity=identity, oidc_issuer=oidc_issuer, use_staging=use_staging
    )
    try:
        config.verify(Path(path), sig)
    except ValueError as err:
        raise IntegrityError(path, f"Sigstore verification failed: {err}") from None
