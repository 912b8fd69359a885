"""Provenance manifests: SHA-256 per file, a Merkle root over per-record hashes, chain of custody.

A manifest pins down a data set before anyone trains on it: for every file its SHA-256, size
and a Merkle root over the hashes of its records (one record per non-empty line, header
included), the source and licence the data came with, when and with which tool versions it
was collected, and a **chain of custody**: every transformation (filter, dedup, redaction,
poison removal, augmentation) appends an entry with its name, parameters, the digest of its
input and output records and the ids of the samples it touched. Entries are hash-chained like
the audit log, and the whole manifest is signed with the project's key when one is configured
(key from ``$SECURE_TRAIN_SIGNING_KEY``; the signature is a
:class:`~secure_train.core.envelope.SignedEnvelope` over the manifest's digest).

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

The code lives in four modules, re-exported here: :mod:`~secure_train.data_security.manifest_hashing`
(record leaves, Merkle roots, one pass per file), :mod:`~secure_train.data_security.manifest_custody`
(the chain of custody), :mod:`~secure_train.data_security.manifest_document` (:class:`Manifest`: build,
sign, save, load; on-disk formats) and :mod:`~secure_train.data_security.manifest_verify` (checking
data and signature, the trusted key).
"""

from __future__ import annotations

from secure_train.data_security.manifest_custody import CustodyEntry, iter_custody
from secure_train.data_security.manifest_document import LEGACY_MANIFEST_FORMAT, MANIFEST_FORMAT, Manifest
from secure_train.data_security.manifest_document import SHORT_HASH as _SHORT  # noqa: F401 - used by others
from secure_train.data_security.manifest_hashing import EMPTY_ROOT, merkle_root, record_leaf, records_digest
from secure_train.data_security.manifest_hashing import FileState as _FileState  # noqa: F401 - used by parallel
from secure_train.data_security.manifest_hashing import _leaf as _leaf  # used by scan, parallel
from secure_train.data_security.manifest_hashing import _record_bytes as _record_bytes  # used by scan, parallel
from secure_train.data_security.manifest_hashing import data_files as _data_files  # noqa: F401
from secure_train.data_security.manifest_hashing import hash_file as _hash_file  # noqa: F401 - used by parallel
from secure_train.data_security.manifest_verify import (
    SIGNATURE_STATES,
    ManifestCheck,
    require_verified,
    trusted_key,
    verify_manifest,
)

__all__ = [
    "EMPTY_ROOT",
    "LEGACY_MANIFEST_FORMAT",
    "MANIFEST_FORMAT",
    "SIGNATURE_STATES",
    "CustodyEntry",
    "Manifest",
    "ManifestCheck",
    "iter_custody",
    "merkle_root",
    "record_leaf",
    "records_digest",
    "require_verified",
    "trusted_key",
    "verify_manifest",
]
