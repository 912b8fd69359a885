"""Gate verdicts indexed by the checkpoint's SHA-256, so they follow every copy of the file.

``CKPT.attestation.json`` sits next to one file name; a copy of the same bytes elsewhere has
none. :func:`~secure_train.gate.run_gate` (``secure-train gate``) therefore also files every
verdict (the signed attestation, or the unsigned report with ``--no-attestation``) under
``<store>/<sha256>/``, and the release policy looks verdicts up there by the digest of the file
being exported, wherever it lies. A failing verdict found for the digest blocks export of every
copy (``--allow-ungated`` included).

The store is ``$SECURE_TRAIN_VERDICTS`` when set (a team can point it at a shared folder),
else ``$XDG_STATE_HOME/secure-train/verdicts`` (default ``~/.local/state/secure-train/verdicts``).

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

from secure_train.core.envelope import json_value, pretty_json
from secure_train.core.errors import ConfigError

__all__ = ["VERDICTS_ENV", "VerdictStore", "default_verdict_dir"]

VERDICTS_ENV = "SECURE_TRAIN_VERDICTS"
"""Environment variable naming the verdict store folder."""

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def default_verdict_dir() -> Path:
    """``$SECURE_TRAIN_VERDICTS``, else ``$XDG_STATE_HOME/secure-train/verdicts``
    (``~/.local/state/secure-train/verdicts``)."""
    env = os.environ.get(VERDICTS_ENV)
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "secure-train" / "verdicts"


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
        return self.record({"body": {k: v for k, v in report.items() if k not in ("attestation", "verdict")}})
