"""Checking data against a provenance manifest, and the key a manifest's signature is checked with.

:func:`verify_manifest` recomputes every hash and names what changed (files edited, added or
removed; records edited, added, removed or reordered, by line number), checks the Merkle root
and the chain of custody, and the signature under a key the *caller* trusts.
:func:`require_verified` is what training runs: it refuses on any problem.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "train.tsv"), "w").write("sentence\\tlabel\\ngood\\t1\\n")
    >>> m = Manifest.build(d, source="docs", license="CC0")
    >>> check = verify_manifest(m)
    >>> check.ok, check.signature
    (True, 'unsigned')
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError, DataError
from secure_train.core.keys import DEFAULT_KEY_ENV, key_fingerprint, load_private_key, load_public_key
from secure_train.data_security.manifest_document import SHORT_HASH, Manifest
from secure_train.data_security.manifest_hashing import data_files, hash_file, merkle_root

__all__ = ["SIGNATURE_STATES", "ManifestCheck", "require_verified", "trusted_key", "verify_manifest"]

_MAX_NAMED = 10

SIGNATURE_STATES = ("verified", "invalid", "unsigned", "unchecked")
"""``ManifestCheck.signature``: valid under the trusted key; not valid under it; no signature;
signed, but no trusted key was given (the signature proves nothing then)."""


def trusted_key(public_key: Any | None = None, *, env: str = DEFAULT_KEY_ENV) -> Any | None:
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
    if public_key is not None:
        return load_public_key(public_key)
    if os.environ.get(env):
        return load_private_key(env=env).public_key()
    return None


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


def _name_lines(lines: Sequence[int]) -> str:
    shown = ", ".join(str(x) for x in lines[:_MAX_NAMED])
    more = f" and {len(lines) - _MAX_NAMED} more" if len(lines) > _MAX_NAMED else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _diff_records(old: list[str], new: list[str], new_lines: list[int]) -> str:
    """Name the records that differ between stored (short) and current hashes."""
    cur = [h[:SHORT_HASH] for h in new]
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


def _file_problems(m: Manifest, paths: Sequence[str | os.PathLike[str]] | None) -> tuple[list[str], int]:
    """Problems with the data files (added, missing, changed) and the number of files checked."""
    problems: list[str] = []
    listed = {(m.root / e["path"]).resolve(): e for e in m.data["files"]}
    if m.data.get("target", ".") == "." and m.root.is_dir():
        for extra in data_files(m.root):
            if extra.resolve() not in listed and (m.path is None or extra.resolve() != m.path.resolve()):
                problems.append(f"{extra.relative_to(m.root).as_posix()}: file added (not in the manifest)")
    targets: list[Path] = []
    for p in paths if paths is not None else list(listed):
        rp = Path(p).resolve()
        if rp in listed:
            targets.append(rp)
        else:
            problems.append(f"{p}: not in the manifest")
    for rp in targets:
        entry = listed[rp]
        name = entry["path"]
        if not rp.is_file():
            problems.append(f"{name}: file removed (missing)")
            continue
        state = hash_file(rp)
        if state.sha256 == entry["sha256"] and state.merkle_root == entry["merkle_root"]:
            continue
        if state.merkle_root == entry["merkle_root"]:
            problems.append(f"{name}: contents changed (sha256 mismatch) outside records (blank lines or line endings)")
            continue
        problems.append(
            f"{name}: contents changed (sha256 mismatch); {_diff_records(entry['records'], state.records, state.lines)}"
        )
    return problems, len(targets)


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
    problems, checked = _file_problems(m, paths)
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
        public_key = load_public_key(public_key)
        fingerprint = key_fingerprint(public_key)
    if not m.signed:
        sig_state = "unsigned"
        if require_signature:
            problems.append("manifest: not signed")
    elif public_key is None:
        sig_state = "unchecked"
        if require_signature:
            problems.append("manifest: signature not checked (no trusted public key given)")
    elif (why := m.signature_problem(public_key)) is None:
        sig_state = "verified"
    else:
        sig_state = "invalid"
        problems.append(f"manifest: signature does not verify under the trusted key {str(fingerprint)[:16]}... ({why})")
    return ManifestCheck(not problems, problems, checked, m.signed, sig_state, fingerprint)


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
