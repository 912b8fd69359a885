"""The provenance manifest document: build it, extend its custody chain, sign, save and load it.

On disk a manifest is JSON with ``format`` ``secure-train-manifest/2``. Its ``signature`` is a
:class:`~secure_train.core.envelope.SignedEnvelope` of kind ``data-manifest`` whose body is
``{"manifest_digest": D}``, ``D`` the SHA-256 of the canonical JSON of everything but
``signature`` and ``root`` (:attr:`Manifest.digest`). A manifest written by an older release
(``secure-train-manifest/1``: ``signature`` ``{"digest", "value", "key_fingerprint"}``, ECDSA
over the hex digest) is still read and its signature still checked; signing it again writes
format 2. Any other format is refused, naming it and the formats this release reads.

Example:
    >>> import os, tempfile
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> d, key = tempfile.mkdtemp(), ec.generate_private_key(ec.SECP256R1())
    >>> _ = open(os.path.join(d, "train.tsv"), "w").write("sentence\\tlabel\\ngood\\t1\\n")
    >>> m = Manifest.build(d, source="docs", license="CC0")
    >>> m.sign(key)
    >>> m.data["signature"]["kind"], m.verify_signature(key.public_key())
    ('data-manifest', True)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secure_train.core.envelope import SignedEnvelope, canonical_json, pretty_json
from secure_train.core.errors import DataError, IntegrityError
from secure_train.core.keys import DEFAULT_KEY_ENV, load_private_key, load_public_key
from secure_train.core.require import require_int
from secure_train.core.safe_io import read_text
from secure_train.core.signing import verify_bytes
from secure_train.data_security.manifest_custody import CustodyEntry
from secure_train.data_security.manifest_hashing import FileState, data_files, hash_file, merkle_root

if TYPE_CHECKING:
    from secure_train.data_security.manifest_verify import ManifestCheck

__all__ = ["LEGACY_MANIFEST_FORMAT", "MANIFEST_FORMAT", "SIGNATURE_KIND", "Manifest"]

MANIFEST_FORMAT = "secure-train-manifest/2"
"""The format this release writes."""
LEGACY_MANIFEST_FORMAT = "secure-train-manifest/1"
"""The format of older releases: read and verified, never written."""
SIGNATURE_KIND = "data-manifest"
"""The envelope kind of a manifest's signature."""
SHORT_HASH = 16
"""Hex digits of the stored per-record hashes (they locate changes; full hashes decide)."""


def _tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("secure-train", "datasketch", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


class Manifest:
    """A provenance manifest (see :mod:`secure_train.data_security.manifest`); JSON on disk.

    Build one with :meth:`build`, extend its chain of custody with :meth:`append_custody`, write
    it with :meth:`save` (signed when a key is given or configured), load it with :meth:`load`.

    Attributes:
        data: the manifest as a JSON-ready dict (``format``, ``root``, ``files``, ``merkle_root``,
            ``source``, ``license``, ``created``, ``tools``, ``custody``, optional ``signature``).
        path: where it was loaded from or saved to (file paths inside are relative to ``root``,
            which is itself relative to the manifest's directory when saved).
        check: the outcome of :func:`~secure_train.data_security.manifest.require_verified` on
            this manifest (``None`` before).

    Raises:
        DataError: ``data`` is not a manifest of a format this release reads.
    """

    def __init__(self, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        fmt = data.get("format")
        if fmt not in (MANIFEST_FORMAT, LEGACY_MANIFEST_FORMAT):
            raise DataError(
                f"{path or 'manifest'}: not a manifest this release reads (format {fmt!r}, expected "
                f"{MANIFEST_FORMAT!r} or the older {LEGACY_MANIFEST_FORMAT!r})"
            )
        self.data = data
        self.path = Path(path) if path is not None else None
        self.check: ManifestCheck | None = None

    # -- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        path: str | os.PathLike[str],
        *,
        source: str,
        license: str,  # noqa: A002 - the manifest field's name
        description: str = "",
        progress: bool = False,
        workers: int = 1,
        engine: str = "local",
    ) -> Manifest:
        """Hash a data file, or every data file (``.tsv .csv .jsonl .json .txt``) under a directory.

        The manifest's ``merkle_root`` is a Merkle tree over per-file (per-shard) roots; with
        ``workers > 1`` or ``engine="ray"`` the files are hashed in parallel on that engine
        (:func:`secure_train.data_security.parallel.hash_files`): the manifest is the same either way.

        Raises:
            DataError: the path does not exist or holds no data file.
        """
        require_int("Manifest.build", "workers", workers, minimum=1)
        base = Path(path).resolve()
        files = data_files(base)
        if not files:
            raise DataError(f"{path}: no data files (.tsv, .csv, .jsonl, .json, .txt)")
        root = base if base.is_dir() else base.parent
        states: Iterable[FileState]
        if workers > 1 or engine != "local":
            from secure_train.data_security.parallel import hash_files

            states = hash_files(files, workers=workers, engine=engine)
        else:
            iterator: Iterable[Path] = files
            if progress:
                from tqdm import tqdm

                iterator = tqdm(files, desc="hashing", unit="file", file=sys.stderr)
            states = (hash_file(file) for file in iterator)
        entries = [
            {
                "path": file.relative_to(root).as_posix(),
                "sha256": state.sha256,
                "size": state.size,
                "n_records": len(state.records),
                "merkle_root": state.merkle_root,
                "records": [h[:SHORT_HASH] for h in state.records],
            }
            for file, state in zip(files, states, strict=True)
        ]
        data = {
            "format": MANIFEST_FORMAT,
            "root": str(root),
            "target": base.name if base.is_file() else ".",
            "source": source,
            "license": license,
            "description": description,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tools": _tool_versions(),
            "files": entries,
            "merkle_root": merkle_root(bytes.fromhex(str(e["merkle_root"])) for e in entries),
            "custody": [],
        }
        return cls(data)

    # -- custody --------------------------------------------------------------------------
    @property
    def custody(self) -> list[CustodyEntry]:
        return [CustodyEntry.from_dict(e) for e in self.data["custody"]]

    def append_custody(self, entry: CustodyEntry) -> CustodyEntry:
        """Chain ``entry`` after the last one and add it (drops any signature: save again to re-sign)."""
        prev = self.data["custody"][-1]["hash"] if self.data["custody"] else "0" * 64
        linked = entry.chained(prev)
        self.data["custody"].append(linked.to_dict())
        self.data.pop("signature", None)
        return linked

    # -- digest, signature, io ------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        """Everything the digest and signature cover (all but ``signature``, and ``root``, which
        depends on where the manifest lives)."""
        return {k: v for k, v in self.data.items() if k not in ("signature", "root")}

    @property
    def digest(self) -> str:
        """SHA-256 over the canonical JSON of :meth:`body`: what checkpoints and the audit log cite."""
        return hashlib.sha256(canonical_json(self.body())).hexdigest()

    @property
    def signed(self) -> bool:
        return "signature" in self.data

    def sign(self, private_key: Any) -> None:
        """Sign :attr:`digest` with a private key from :func:`secure_train.core.keys.load_private_key`.

        Writes the current format (a format-1 manifest becomes format 2). The signature records
        the signer's key fingerprint, not the key: a verifier brings the public key it trusts
        (:func:`~secure_train.data_security.manifest.trusted_key`).
        """
        self.data["format"] = MANIFEST_FORMAT
        self.data.pop("signature", None)
        envelope = SignedEnvelope.sign(SIGNATURE_KIND, {"manifest_digest": self.digest}, private_key)
        self.data["signature"] = envelope.to_dict()

    def signature_problem(self, public_key: Any) -> str | None:
        """Why the signature is not valid over the current contents under ``public_key`` (a key
        object, PEM text or PEM path the caller trusts), or ``None`` when it is. A key embedded
        in the manifest is never used."""
        sig = self.data.get("signature")
        if sig is None:
            return "not signed"
        key = load_public_key(public_key)
        if self.data.get("format") == LEGACY_MANIFEST_FORMAT:
            return self._legacy_signature_problem(sig, key)
        try:
            envelope = SignedEnvelope.from_dict(sig, kind=SIGNATURE_KIND, source="signature")
        except IntegrityError as err:
            return err.reason
        if not envelope.verifies(key):
            return "manifest edited, or signed by another key"
        if envelope.body.get("manifest_digest") != self.digest:
            return "manifest edited after it was signed (digest differs)"
        return None

    def _legacy_signature_problem(self, sig: Any, key: Any) -> str | None:
        """Format 1: ECDSA over the hex digest itself."""
        try:
            value = bytes.fromhex(str(sig["value"]))
        except (KeyError, TypeError, ValueError):
            return f"malformed {LEGACY_MANIFEST_FORMAT} signature"
        if not verify_bytes(self.digest.encode(), value, key):
            return "manifest edited, or signed by another key"
        return None

    def verify_signature(self, public_key: Any) -> bool:
        """True when the signature is valid over the current contents under ``public_key``."""
        return self.signed and self.signature_problem(public_key) is None

    def save(self, path: str | os.PathLike[str], *, private_key: Any | None = None, sign: bool = True) -> Path:
        """Write the manifest as JSON; sign it with ``private_key``, or with the configured key
        (``$SECURE_TRAIN_SIGNING_KEY``) when there is one and ``sign`` is true."""
        out = Path(path)
        if private_key is None and sign and os.environ.get(DEFAULT_KEY_ENV):
            private_key = load_private_key()
        data_root = Path(self.data["root"])
        try:
            self.data["root"] = os.path.relpath(data_root, out.resolve().parent)
        except ValueError:  # different drive on Windows
            self.data["root"] = str(data_root)
        try:
            if private_key is not None:
                self.sign(private_key)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(pretty_json(self.data))
        finally:
            self.data["root"] = str(data_root)
        self.path = out
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest written by :meth:`save`; ``DataError`` when missing or malformed."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: no such manifest")
        try:
            data = json.loads(read_text(p, what="manifest"))  # size-checked: a huge/sparse file is refused
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{p}: not a valid manifest ({err})") from None
        if not isinstance(data, dict):
            raise DataError(f"{p}: not a valid manifest (expected a JSON object)")
        manifest = cls(data, p)
        root = Path(data.get("root", "."))
        if not root.is_absolute():
            manifest.data["root"] = str((p.resolve().parent / root).resolve())
        return manifest

    @property
    def root(self) -> Path:
        return Path(self.data["root"])

    def file_paths(self) -> list[Path]:
        return [self.root / e["path"] for e in self.data["files"]]

    def summary(self) -> dict[str, Any]:
        """What :meth:`TextDataModule.provenance` reports and checkpoints carry (``signature``:
        the state :func:`require_verified` found, ``None`` when it was not run)."""
        return {
            "manifest": str(self.path) if self.path else None,
            "manifest_digest": self.digest,
            "merkle_root": self.data["merkle_root"],
            "source": self.data["source"],
            "license": self.data["license"],
            "signed": self.signed,
            "signature": self.check.signature if self.check is not None else None,
            "key_fingerprint": self.check.key_fingerprint if self.check is not None else None,
            "files": {e["path"]: e["sha256"] for e in self.data["files"]},
        }

