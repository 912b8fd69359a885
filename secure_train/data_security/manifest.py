"""Provenance manifests: SHA-256 per file, a Merkle root over per-record hashes, chain of custody.

A manifest pins down a data set before anyone trains on it: for every file its SHA-256, size
and a Merkle root over the hashes of its records (one record per non-empty line, header
included), the source and licence the data came with, when and with which tool versions it
was collected, and a **chain of custody**: every transformation (filter, dedup, redaction,
poison removal, augmentation) appends an entry with its name, parameters, the digest of its
input and output records and the ids of the samples it touched. Entries are hash-chained like
the audit log, and the whole manifest is signed with the project's key when one is configured
(:mod:`secure_train.integrity`, key from ``$SECURE_TRAIN_SIGNING_KEY``).

:func:`verify_manifest` (``secure-train data verify``, ``TextDataModule(manifest=...)``)
recomputes everything and names what changed: edited, added or removed files, and edited,
added, removed or reordered records (by line number).

**Trust.** A signature is only checked under a public key the *caller* trusts
(:func:`trusted_key`: a key given explicitly, else the public half of
``$SECURE_TRAIN_SIGNING_KEY``); a manifest carries only its signer's key fingerprint, never a
key to verify it with, because whoever can edit the data can also regenerate and re-sign a
manifest with a key of their own. :func:`require_verified` (what training uses) refuses an
unsigned manifest, or one whose signature cannot be checked, unless ``allow_unsigned=True``.

Per-record hashes are stored truncated to 64 bits (16 hex digits) to keep manifests small (a
67k-line file gives a ~1.2 MB manifest): they only *locate* changes; the full SHA-256 of each
file and the Merkle root over full-length record hashes decide whether anything changed.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "train.tsv"), "w").write("sentence\\tlabel\\ngood\\t1\\nbad\\t0\\n")
    >>> m = Manifest.build(d, source="docs", license="CC0")
    >>> verify_manifest(m).ok
    True
    >>> _ = open(os.path.join(d, "train.tsv"), "w").write("sentence\\tlabel\\ngood\\t1\\nbad\\t1\\n")
    >>> print(verify_manifest(m).problems[0])
    train.tsv: contents changed (sha256 mismatch); records changed: line 3
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, DataError
from secure_train.core.records import TextRecord
from secure_train.core.safe_io import iter_raw_lines, read_text

__all__ = [
    "MANIFEST_FORMAT",
    "CustodyEntry",
    "Manifest",
    "ManifestCheck",
    "merkle_root",
    "records_digest",
    "require_verified",
    "trusted_key",
    "verify_manifest",
]

MANIFEST_FORMAT = "secure-train-manifest/1"
_LEAF, _NODE = b"\x00", b"\x01"
_SHORT = 16  # hex digits of the stored per-record hashes
_MAX_NAMED = 10
_DATA_SUFFIXES = {".tsv", ".csv", ".jsonl", ".json", ".txt"}
_NOT_DATA = ("manifest.json", ".scan.json")  # manifests and scan reports next to the data
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def merkle_root(leaves: Iterable[bytes]) -> str:
    """Merkle root (hex) over leaf hashes, RFC 6962 style (``0x01`` prefix on inner nodes, an odd
    node is promoted). The empty tree's root is SHA-256 of the empty string.

    Example:
        >>> a, b = _leaf(b"a"), _leaf(b"b")
        >>> merkle_root([a, b]) == hashlib.sha256(b"\\x01" + a + b).hexdigest()
        True
    """
    level = list(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [hashlib.sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def _record_bytes(record: TextRecord) -> bytes:
    return _canonical([record.sample_id, record.text, record.label, record.completion])


def records_digest(records: Iterable[TextRecord]) -> str:
    """Merkle root over in-memory records (id, text, label, completion): the input / output digest
    of a chain-of-custody entry.

    Example:
        >>> r = TextRecord("fine", 1, 0, "x:1")
        >>> records_digest([r]) == records_digest([TextRecord("fine", 1, 0, "elsewhere")])
        True
    """
    return merkle_root(_leaf(_record_bytes(r)) for r in records)


@dataclass(frozen=True)
class CustodyEntry:
    """One transformation in the chain of custody.

    ``affected`` maps an action (``dropped``, ``redacted``, ``quarantined``, ``relabeled``...) to the
    sample ids it touched; ``prev`` / ``hash`` chain the entries (``hash`` covers every other field).
    """

    name: str
    params: dict[str, Any]
    input_digest: str
    output_digest: str
    n_in: int
    n_out: int
    affected: dict[str, list[int]] = field(default_factory=dict)
    time: str = ""
    prev: str = "0" * 64
    hash: str = ""

    @classmethod
    def create(
        cls,
        name: str,
        params: dict[str, Any],
        records_in: Sequence[TextRecord],
        records_out: Sequence[TextRecord],
        affected: dict[str, Iterable[int]] | None = None,
    ) -> CustodyEntry:
        """An (unchained) entry for a transform from ``records_in`` to ``records_out``."""
        return cls(
            name=name,
            params=json.loads(_canonical(params)),
            input_digest=records_digest(records_in),
            output_digest=records_digest(records_out),
            n_in=len(records_in),
            n_out=len(records_out),
            affected={k: sorted(set(v)) for k, v in (affected or {}).items()},
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "affected": self.affected,
            "time": self.time,
            "prev": self.prev,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> CustodyEntry:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})

    def body_hash(self) -> str:
        body = self.to_dict()
        body.pop("hash")
        return hashlib.sha256(_canonical(body)).hexdigest()

    def chained(self, prev: str) -> CustodyEntry:
        """This entry linked after an entry whose hash is ``prev``."""
        linked = CustodyEntry(**{**self.to_dict(), "prev": prev, "hash": ""})
        return CustodyEntry(**{**linked.to_dict(), "hash": linked.body_hash()})


@dataclass
class _FileState:
    sha256: str
    size: int
    records: list[str]  # full-length hex leaf hashes
    merkle_root: str
    lines: list[int]


def _hash_file(path: Path) -> _FileState:
    """One streaming pass: SHA-256 of the bytes, and a leaf hash per non-empty line."""
    whole = hashlib.sha256()
    leaves: list[bytes] = []
    lines: list[int] = []
    size = 0
    for lineno, raw in iter_raw_lines(path, error=DataError):  # streamed, bounded line length
        whole.update(raw)
        size += len(raw)
        line = raw.rstrip(b"\r\n")
        if line.strip():
            leaves.append(_leaf(line))
            lines.append(lineno)
    return _FileState(whole.hexdigest(), size, [x.hex() for x in leaves], merkle_root(leaves), lines)


def _tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("secure-train", "datasketch", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in _DATA_SUFFIXES and not p.name.endswith(_NOT_DATA)
        )
    raise DataError(f"{path}: no such file or directory")


def _signing() -> Any | None:
    try:
        from secure_train.core import keys, signing
    except ImportError:
        return None
    return keys, signing


def trusted_key(public_key: Any | None = None, *, env: str = "SECURE_TRAIN_SIGNING_KEY") -> Any | None:
    """The public key a manifest's signature is checked with, or None when none is configured.

    ``public_key`` (a key object, PEM text or a PEM file path) when given, else the public half
    of the private key in ``$SECURE_TRAIN_SIGNING_KEY`` (the project key that signs manifests
    and checkpoints). Never a key taken from the manifest itself.

    Raises:
        ConfigError: the key cannot be loaded (the message names the file or variable).

    Example:
        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> key = ec.generate_private_key(ec.SECP256R1())
        >>> trusted_key(key.public_key()) == key.public_key()
        True
    """
    mods = _signing()
    if mods is None:
        return None
    keys, _ = mods
    if public_key is not None:
        return keys.load_public_key(public_key)
    if os.environ.get(env):
        return keys.load_private_key(env=env).public_key()
    return None


SIGNATURE_STATES = ("verified", "invalid", "unsigned", "unchecked")
"""``ManifestCheck.signature``: valid under the trusted key; not valid under it; no signature;
signed, but no trusted key was given (the signature proves nothing then)."""


@dataclass(frozen=True)
class ManifestCheck:
    """Outcome of :func:`verify_manifest`: ``ok`` and one line per problem, naming files and records.

    ``signature`` is one of :data:`SIGNATURE_STATES`; ``key_fingerprint`` is the trusted key's
    (SHA-256 of its PEM) when one was given.
    """

    ok: bool
    problems: list[str]
    files: int
    signed: bool
    signature: str = "unsigned"
    key_fingerprint: str | None = None

    def __bool__(self) -> bool:
        return self.ok


class Manifest:
    """A provenance manifest (see the module docstring); JSON on disk.

    Build one with :meth:`build`, extend its chain of custody with :meth:`append_custody`, write
    it with :meth:`save` (signed when a key is given or configured), load it with :meth:`load`.

    Attributes:
        data: the manifest as a JSON-ready dict (``format``, ``root``, ``files``, ``merkle_root``,
            ``source``, ``license``, ``created``, ``tools``, ``custody``, optional ``signature``).
        path: where it was loaded from or saved to (file paths inside are relative to ``root``,
            which is itself relative to the manifest's directory when saved).
        check: the outcome of :func:`require_verified` on this manifest (``None`` before).
    """

    def __init__(self, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        if data.get("format") != MANIFEST_FORMAT:
            raise DataError(
                f"not a secure-train manifest (format {data.get('format')!r}, expected {MANIFEST_FORMAT!r})"
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
        base = Path(path).resolve()
        files = _data_files(base)
        if not files:
            raise DataError(f"{path}: no data files (.tsv, .csv, .jsonl, .json, .txt)")
        root = base if base.is_dir() else base.parent
        entries = []
        states: Iterable[_FileState]
        if workers > 1 or engine != "local":
            from secure_train.data_security.parallel import hash_files

            states = hash_files(files, workers=workers, engine=engine)
        else:
            iterator: Iterable[Path] = files
            if progress:
                from tqdm import tqdm

                iterator = tqdm(files, desc="hashing", unit="file", file=sys.stderr)
            states = (_hash_file(file) for file in iterator)
        for file, state in zip(files, states, strict=True):
            entries.append(
                {
                    "path": file.relative_to(root).as_posix(),
                    "sha256": state.sha256,
                    "size": state.size,
                    "n_records": len(state.records),
                    "merkle_root": state.merkle_root,
                    "records": [h[:_SHORT] for h in state.records],
                }
            )
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
        return hashlib.sha256(_canonical(self.body())).hexdigest()

    @property
    def signed(self) -> bool:
        return "signature" in self.data

    def sign(self, private_key: Any) -> None:
        """Sign :attr:`digest` with a private key from :func:`secure_train.core.keys.load_private_key`.

        The signature records the signer's key fingerprint, not the key: a verifier brings the
        public key it trusts (:func:`trusted_key`).
        """
        mods = _signing()
        if mods is None:
            raise DataError("signing needs secure_train.integrity (keys, signing), which is not installed")
        keys, signing = mods
        sig = signing.sign_bytes(self.digest.encode(), private_key)
        self.data["signature"] = {
            "digest": self.digest,
            "value": sig.hex(),
            "key_fingerprint": keys.key_fingerprint(private_key.public_key()),
        }

    def verify_signature(self, public_key: Any) -> bool:
        """True when the signature is valid over the current contents under ``public_key`` (a key
        object, PEM text or PEM path the caller trusts). A key embedded in the manifest is never used.
        """
        sig = self.data.get("signature")
        mods = _signing()
        if sig is None or mods is None:
            return False
        keys, signing = mods
        key = keys.load_public_key(public_key)
        try:
            value = bytes.fromhex(str(sig["value"]))
        except (KeyError, TypeError, ValueError):
            return False
        return bool(signing.verify_bytes(self.digest.encode(), value, key))

    def save(self, path: str | os.PathLike[str], *, private_key: Any | None = None, sign: bool = True) -> Path:
        """Write the manifest as JSON; sign it with ``private_key``, or with the configured key
        (``$SECURE_TRAIN_SIGNING_KEY``) when there is one and ``sign`` is true."""
        out = Path(path)
        if private_key is None and sign and os.environ.get("SECURE_TRAIN_SIGNING_KEY") and _signing():
            keys, _ = _signing()  # type: ignore[misc]
            private_key = keys.load_private_key()
        data_root = Path(self.data["root"])
        try:
            self.data["root"] = os.path.relpath(data_root, out.resolve().parent)
        except ValueError:  # different drive on Windows
            self.data["root"] = str(data_root)
        if private_key is not None:
            self.sign(private_key)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
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


def _name_lines(lines: Sequence[int]) -> str:
    shown = ", ".join(str(x) for x in lines[:_MAX_NAMED])
    more = f" and {len(lines) - _MAX_NAMED} more" if len(lines) > _MAX_NAMED else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _diff_records(old: list[str], new: list[str], new_lines: list[int]) -> str:
    """Name the records that differ between stored (short) and current hashes."""
    cur = [h[:_SHORT] for h in new]
    if Counter(old) == Counter(cur):
        moved = [new_lines[i] for i, (a, b) in enumerate(zip(old, cur, strict=True)) if a != b]
        return f"records reordered: {_name_lines(moved)}"
    old_set, cur_set = Counter(old), Counter(cur)
    added = [new_lines[i] for i, h in enumerate(cur) if (cur_set - old_set)[h] > 0]
    removed_n = sum((old_set - cur_set).values())
    parts = []
    if len(old) == len(cur):
        changed = [new_lines[i] for i, (a, b) in enumerate(zip(old, cur, strict=True)) if a != b]
        return f"records changed: {_name_lines(changed)}"
    if added:
        parts.append(f"records added or edited: {_name_lines(added)}")
    if removed_n:
        gone = [i + 1 for i, h in enumerate(old) if (old_set - cur_set)[h] > 0]
        parts.append(
            f"{removed_n} record(s) removed or edited (record numbers {', '.join(map(str, gone[:_MAX_NAMED]))})"
        )
    return "; ".join(parts) or "record hashes differ"


def verify_manifest(
    manifest: Manifest | str | os.PathLike[str],
    *,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    public_key: Any | None = None,
    require_signature: bool = False,
) -> ManifestCheck:
    """Recompute every hash and compare: the result's ``problems`` name changed files and records.

    Args:
        manifest: a :class:`Manifest` or the path of one.
        paths: check only these data files (each must be listed in the manifest); default all of
            them. Either way, a data file under a manifested directory that the manifest does not
            list is a problem.
        public_key: the trusted signer's key (object, PEM or path; see :func:`trusted_key`). The
            signature is checked only with it: without it a signed manifest is ``unchecked``.
        require_signature: a manifest whose signature is missing, or not checked for want of
            ``public_key``, is a problem. Without it the result's ``signature`` still says whether
            the signature was ``verified`` (an ``invalid`` one is always a problem).
    """
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
    problems: list[str] = []
    listed = {(m.root / e["path"]).resolve(): e for e in m.data["files"]}
    if m.data.get("target", ".") == "." and m.root.is_dir():
        for extra in _data_files(m.root):
            if extra.resolve() not in listed and (m.path is None or extra.resolve() != m.path.resolve()):
                problems.append(f"{extra.relative_to(m.root).as_posix()}: file added (not in the manifest)")
    if paths is None:
        targets = list(listed)
    else:
        targets = []
        for p in paths:
            rp = Path(p).resolve()
            if rp not in listed:
                problems.append(f"{p}: not in the manifest")
            else:
                targets.append(rp)
    for rp in targets:
        entry = listed[rp]
        name = entry["path"]
        if not rp.is_file():
            problems.append(f"{name}: file removed (missing)")
            continue
        state = _hash_file(rp)
        if state.sha256 == entry["sha256"] and state.merkle_root == entry["merkle_root"]:
            continue
        if state.merkle_root == entry["merkle_root"]:
            problems.append(f"{name}: contents changed (sha256 mismatch) outside records (blank lines or line endings)")
            continue
        problems.append(
            f"{name}: contents changed (sha256 mismatch); {_diff_records(entry['records'], state.records, state.lines)}"
        )
    body_root = merkle_root(bytes.fromhex(str(e["merkle_root"])) for e in m.data["files"])
    if body_root != m.data["merkle_root"]:
        problems.append("manifest: merkle_root does not match its files (manifest edited)")
    prev = "0" * 64
    for i, entry in enumerate(m.custody):
        if entry.prev != prev or entry.body_hash() != entry.hash:
            problems.append(f"manifest: chain of custody broken at entry {i} ({entry.name})")
            break
        prev = entry.hash
    fingerprint: str | None = None
    if public_key is not None:
        keys, _ = _signing()  # type: ignore[misc]
        public_key = keys.load_public_key(public_key)
        fingerprint = keys.key_fingerprint(public_key)
    if not m.signed:
        sig_state = "unsigned"
        if require_signature:
            problems.append("manifest: not signed")
    elif public_key is None:
        sig_state = "unchecked"
        if require_signature:
            problems.append("manifest: signature not checked (no trusted public key given)")
    elif m.verify_signature(public_key):
        sig_state = "verified"
    else:
        sig_state = "invalid"
        problems.append(
            f"manifest: signature does not verify under the trusted key {str(fingerprint)[:16]}... "
            "(manifest edited, or signed by another key)"
        )
    return ManifestCheck(not problems, problems, len(targets), m.signed, sig_state, fingerprint)


def require_verified(
    manifest: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    public_key: Any | None = None,
    allow_unsigned: bool = False,
) -> Manifest:
    """Load ``manifest``, check its signature under the trusted key and ``paths`` against it.

    What training runs (``TextDataModule(manifest=...)``): the manifest must carry a valid
    signature under :func:`trusted_key` (``public_key``, else ``$SECURE_TRAIN_SIGNING_KEY``'s
    public half), every file in ``paths`` must match, and no unlisted data file may sit in a
    manifested directory. ``allow_unsigned=True`` accepts a manifest that is unsigned or cannot
    be checked for want of a key (a signature that does not verify is refused regardless);
    the caller warns and audits that. The outcome is left in the manifest's ``check``.

    Raises:
        ConfigError: no trusted key is configured and ``allow_unsigned`` is False, or the key
            cannot be loaded.
        DataError: the manifest is missing or malformed, unsigned, its signature does not
            verify, or the data does not match (the message names files and lines).

    Example:
        >>> import os, tempfile
        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> d, key = tempfile.mkdtemp(), ec.generate_private_key(ec.SECP256R1())
        >>> train = os.path.join(d, "train.tsv")
        >>> _ = open(train, "w").write("sentence\\tlabel\\ngood\\t1\\n")
        >>> m = Manifest.build(d, source="docs", license="CC0").save(os.path.join(d, "manifest.json"), private_key=key)
        >>> require_verified(m, [train], public_key=key.public_key()).check.signature
        'verified'
        >>> _ = open(os.path.join(d, "extra.tsv"), "w").write("sentence\\tlabel\\nbad\\t0\\n")
        >>> require_verified(m, [train], public_key=key.public_key())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        secure_train.core.errors.DataError: data does not match manifest ...: extra.tsv: file added ...
    """
    for p in paths:
        if str(p).startswith("hf://"):
            raise DataError(f"{p}: hub datasets cannot be checked against a manifest; download the files first")
    key = trusted_key(public_key)
    if key is None and not allow_unsigned:
        raise ConfigError(
            f"manifest {manifest}: no trusted public key to check its signature: set $SECURE_TRAIN_SIGNING_KEY "
            "(the key that signed it) or give manifest_public_key=, or pass allow_unsigned_manifest=True (audited)"
        )
    m = Manifest.load(manifest)
    check = verify_manifest(m, paths=paths, public_key=key, require_signature=not allow_unsigned)
    if not check.ok:
        raise DataError(f"data does not match manifest {manifest}: " + "; ".join(check.problems))
    m.check = check
    return m


def iter_custody(transforms: Iterable[Any]) -> Iterator[CustodyEntry]:
    """Custody entries recorded by record transforms (those with a ``custody`` list)."""
    for t in transforms:
        yield from getattr(t, "custody", [])
