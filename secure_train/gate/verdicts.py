"""Gate verdicts indexed by the checkpoint's SHA-256, so they follow every copy of the file.

``CKPT.attestation.json`` sits next to one file name; a copy of the same bytes elsewhere has
none. :func:`~secure_train.gate.run_gate` (``secure-train gate``) therefore also files every
verdict (the signed attestation, or the unsigned report with ``--no-attestation``) under
``<store>/<sha256>/``, and the release policy looks verdicts up there by the digest of the file
being exported, wherever it lies. A failing verdict found for the digest blocks export of every
copy (``--allow-ungated`` included).

The store is ``$SECURE_TRAIN_VERDICTS`` when set (a team can point it at a shared folder),
else ``$XDG_STATE_HOME/secure-train/verdicts`` (default ``~/.local/state/secure-train/verdicts``).

An unsigned verdict is ``{"format": "secure-train-verdict", "version": 1, "body": {...}}``
(:func:`verdict_document`); a signed one is the attestation's
:class:`~secure_train.core.envelope.SignedEnvelope`. Unsigned verdicts filed before the format
field existed (``{"body": {...}}``) are read as version 1; any other version or format is
refused by :func:`check_verdict_format`, naming the file and the version.

Example:
    >>> import tempfile
    >>> store = VerdictStore(tempfile.mkdtemp())
    >>> doc = {"body": {"kind": "attestation", "checkpoint_sha256": "ab" * 32, "passed": False}}
    >>> path = store.record(doc)
    >>> store.paths("ab" * 32) == [path], store.paths("cd" * 32)
    (True, [])

:func:`~secure_train.gate.run_gate` (and so ``secure-train gate``) files each verdict with
:meth:`VerdictStore.record_report`; the policy
reads them back with :meth:`VerdictStore.paths` and decides (see
:class:`~secure_train.gate.ReleasePolicy`).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from secure_train.core.envelope import ENVELOPE_FORMAT, json_value, pretty_json
from secure_train.core.errors import ConfigError, DataError

__all__ = [
    "VERDICTS_ENV",
    "VERDICT_FORMAT",
    "VERDICT_VERSION",
    "VerdictStore",
    "check_verdict_format",
    "default_verdict_dir",
    "verdict_document",
]

VERDICTS_ENV = "SECURE_TRAIN_VERDICTS"
"""Environment variable naming the verdict store folder."""
VERDICT_FORMAT = "secure-train-verdict"
"""The ``format`` field of an unsigned gate verdict (``secure-train gate --no-attestation``)."""
VERDICT_VERSION = 1
"""The unsigned-verdict version this release writes and reads (a file without ``format``: version 1)."""

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def default_verdict_dir() -> Path:
    """``$SECURE_TRAIN_VERDICTS``, else ``$XDG_STATE_HOME/secure-train/verdicts``
    (``~/.local/state/secure-train/verdicts``)."""
    env = os.environ.get(VERDICTS_ENV)
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "secure-train" / "verdicts"


def verdict_document(body: dict[str, Any]) -> dict[str, Any]:
    """The unsigned verdict document of a gate report ``body``: format, version and body.

    >>> verdict_document({"passed": True})
    {'format': 'secure-train-verdict', 'version': 1, 'body': {'passed': True}}
    """
    return {"format": VERDICT_FORMAT, "version": VERDICT_VERSION, "body": body}


def check_verdict_format(document: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """Refuse a verdict document this release cannot read.

    Accepted: an unsigned verdict of :data:`VERDICT_VERSION`, one without ``format`` (filed
    before the field existed), and a signed envelope (whose own version is checked when its
    signature is).

    >>> check_verdict_format({"body": {}}, "old.json")
    >>> check_verdict_format({"format": "secure-train-verdict", "version": 2, "body": {}}, "new.json")
    Traceback (most recent call last):
    ...
    secure_train.core.errors.DataError: new.json: gate verdict version 2 is not supported (this release reads 1)

    Raises:
        DataError: another format, or another version of :data:`VERDICT_FORMAT` (one line naming
            ``source`` and the version).
    """
    fmt = document.get("format")
    if fmt is None or fmt == ENVELOPE_FORMAT:
        return
    if fmt != VERDICT_FORMAT:
        raise DataError(f"{source}: format {fmt!r} is not a gate verdict ({VERDICT_FORMAT!r} or {ENVELOPE_FORMAT!r})")
    version = document.get("version")
    if type(version) is not int or version != VERDICT_VERSION:
        raise DataError(
            f"{source}: gate verdict version {version!r} is not supported (this release reads {VERDICT_VERSION})"
        )


class VerdictStore:
    """A folder of gate verdict documents, one subfolder per checkpoint SHA-256.

    Args:
        root: the store folder (default :func:`default_verdict_dir`).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_verdict_dir()

    def __repr__(self) -> str:
        return f"VerdictStore({str(self.root)!r})"

    def record(self, document: dict[str, Any]) -> Path:
        """File ``document`` (``{"body": {..., "checkpoint_sha256": D}, "signature": ...}``) under ``D``.

        The file name is the document's own SHA-256, so recording the same verdict twice
        writes one file. Returns its path.

        Raises:
            ConfigError: the document names no valid checkpoint digest, or the store is not writable.
        """
        body = document.get("body") if isinstance(document, dict) else None
        digest = body.get("checkpoint_sha256") if isinstance(body, dict) else None
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise ConfigError("a gate verdict needs body.checkpoint_sha256 (64 hex digits)")
        raw = pretty_json(json_value(document))
        folder = self.root / digest
        path = folder / f"{hashlib.sha256(raw).hexdigest()[:32]}.json"
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(raw)
            os.replace(tmp, path)
        except OSError as err:  # an unfiled failing verdict would let a copy through: stop here
            raise ConfigError(
                f"cannot file the gate verdict in {self.root} ({err.strerror or type(err).__name__}); "
                f"set ${VERDICTS_ENV} or --verdicts to a writable folder"
            ) from None
        return path

    def paths(self, digest: str) -> list[Path]:
        """The verdict files recorded for ``digest``, sorted."""
        if not _DIGEST_RE.match(digest):
            return []
        folder = self.root / digest
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.json") if p.is_file())

    def record_report(self, report: dict[str, Any]) -> Path:
        """File the verdict of a :func:`~secure_train.gate.run_gate` report: its signed attestation
        when one was written, else the unsigned report (a failing one blocks all the same)."""
        from secure_train.gate.attestation import _read_document

        att = report.get("attestation")
        if att:
            return self.record(_read_document(Path(att)))
        return self.record(verdict_document({k: v for k, v in report.items() if k not in ("attestation", "verdict")}))
