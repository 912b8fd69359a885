"""Signed files: write bytes and their signature sidecar atomically, verify before use.

A file ``F`` is signed by a sidecar ``F.sig``: a Sigstore bundle (DSSE envelope, in-toto
statement, ECDSA over the DSSE PAE) in exactly the format OpenSSF ``model_signing`` writes
for ``model_signing sign key F``, so the standard tool verifies it::

    model_signing verify key F --signature F.sig --public_key pub.pem

The statement's predicate holds, besides ``model_signing``'s whole-file SHA-256 resource,
a ``secure_train`` extension (ignored by ``model_signing``, covered by the signature):
the file size, SHA-256 digests of fixed-size shards (verified in parallel, so checking
scales with cores), the provenance record, and the encryption scheme when the bytes are
encrypted at rest. The subject name binds the file name: a renamed file is refused.

Writing (:func:`write_signed`) is crash-safe: the bytes go to a temporary file while being
hashed (in parallel threads), the signature to a second temporary file (``.F.tmp-…`` and
``.F.sig.tmp-…``, named after the host, process and thread that write them), then the data
file is renamed into place and, last, the sidecar. Two renames are never atomic together,
so the one state in between -- new ``F`` next to the old ``F.sig``, with the complete new
signature in ``.F.sig.tmp-…`` -- is *recoverable*: :func:`recover_signed` (run by
``SignedCheckpointIO`` at the next start, before anything is loaded or saved) finishes the
publication when that temporary signature verifies the bytes at ``F``, and removes the
temporary files of writers that are gone. A ``kill -9`` at any point therefore leaves,
after recovery, either the previous verified pair untouched or the new verified pair;
never bytes without a signature that checks. The previous pair's sidecar is never removed
before the new one is complete. Durability across power loss (not only process death)
needs ``fsync=True``.

Example:
    >>> import os, tempfile
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> signed = write_signed(b"x" * 1000, path, key, provenance={"global_step": 3})
    >>> verify_file(path, key.public_key()).provenance
    {'global_step': 3}
    >>> with open(path, "r+b") as fh:
    ...     _ = fh.write(b"y")
    >>> verify_file(path, key.public_key())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secure_train.core.errors.IntegrityError: ...weights.bin: content does not match its signature: bytes 0...
"""

from __future__ import annotations

import base64
import hashlib
import json
import mmap
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from secure_train.core.errors import IntegrityError
from secure_train.core.keys import PrivateKey, PublicKeyLike, key_fingerprint, load_public_key
from secure_train.core.require import require_int
from secure_train.core.signing import ec_hash_for

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "SIGNATURE_SUFFIX",
    "Recovery",
    "SignedFile",
    "read_verified",
    "read_verified_pair",
    "recover_signed",
    "remove_signed",
    "sign_statement",
    "signature_path",
    "signed_target",
    "verify_buffer",
    "verify_file",
    "write_signed",
]

SIGNATURE_SUFFIX = ".sig"
DEFAULT_SHARD_SIZE = 32 << 20
"""Bytes per independently hashed shard (32 MiB)."""

_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_EXTENSION = "secure_train"
_EXTENSION_VERSION = 1
_IGNORE_PATHS = [".git", ".gitattributes", ".github", ".gitignore"]
_WRITE_CHUNK = 16 << 20
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.tmp-(?:(?P<host>[0-9a-f]{8})-)?(?P<pid>\d+)-(?P<tid>\d+)$")
"""A temporary file of :func:`write_signed`: ``.<target>.tmp-<host>-<pid>-<thread>`` (no host: older releases)."""
FOREIGN_STALE_AFTER = 15 * 60.0
"""Seconds after which a temporary file written on another host (shared storage) counts as abandoned."""

_READ_SIZE = 2**20
"""Bytes per ``pread`` when a file is verified in place."""

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="secure-train-hash")
        return _POOL


def signature_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of ``path``: ``<path>.sig``."""
    return Path(os.fspath(path) + SIGNATURE_SUFFIX)


@dataclass(frozen=True)
class SignedFile:
    """What a verified signature commits to.

    Attributes:
        name: the file name the signature was made for.
        size: bytes on disk.
        sha256: SHA-256 of the whole file (``model_signing``'s resource digest).
        shard_size: bytes per shard; ``shards`` are their SHA-256 digests, in order.
        provenance: the signed provenance record.
        encryption: the at-rest encryption scheme (``None``: plaintext).
        key_fingerprint: SHA-256 of the signer's public key PEM.
    """

    name: str
    size: int
    sha256: str
    shard_size: int
    shards: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    encryption: dict[str, Any] | None = None
    key_fingerprint: str = ""


def _sha256(view: memoryview) -> str:
    return hashlib.sha256(view).hexdigest()


def _shard_bounds(size: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)] or [(0, 0)]


def _pae(payload: bytes) -> bytes:
    return f"DSSEv1 {len(_PAYLOAD_TYPE)} {_PAYLOAD_TYPE} {len(payload)} ".encode() + payload


def _statement(signed: SignedFile) -> dict[str, Any]:
    return {
        "_type": _STATEMENT_TYPE,
        "subject": [
            {"name": signed.name, "digest": {"sha256": hashlib.sha256(bytes.fromhex(signed.sha256)).hexdigest()}}
        ],
        "predicateType": _PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": _IGNORE_PATHS,
            },
            "resources": [{"name": ".", "algorithm": "sha256", "digest": signed.sha256}],
            _EXTENSION: {
                "version": _EXTENSION_VERSION,
                "size": signed.size,
                "shard_size": signed.shard_size,
                "shards": list(signed.shards),
                "provenance": signed.provenance,
                "encryption": signed.encryption,
            },
        },
    }


def make_bundle(signed: SignedFile, private_key: PrivateKey) -> bytes:
    """The sidecar bytes (Sigstore bundle JSON) signing ``signed`` with ``private_key``."""
    return sign_statement(_statement(signed), private_key)


def sign_statement(statement: dict[str, Any], private_key: PrivateKey) -> bytes:
    """A Sigstore bundle (DSSE envelope, ECDSA over the PAE) signing the in-toto ``statement``.

    The one signing path of every sidecar: single files (:func:`make_bundle`) and
    directories (:mod:`~secure_train.integrity.sharded`).
    """
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), default=str).encode()
    sig = private_key.sign(_pae(payload), ec.ECDSA(ec_hash_for(private_key.curve)))
    bundle = {
        "mediaType": _BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_fingerprint(private_key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": _PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=1).encode()


def open_bundle(sidecar: bytes, public_key: PublicKeyLike, path: str | os.PathLike[str]) -> SignedFile:
    """Check the sidecar's signature and structure; return what it commits to.

    Raises:
        IntegrityError: malformed sidecar, another key, bad signature, or a statement made
            for another file name.
    """
    payload, fingerprint = open_envelope(sidecar, public_key, path)
    return _file_statement(payload, fingerprint, path)


def open_envelope(sidecar: bytes, public_key: PublicKeyLike, path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """Check a sidecar's bundle structure, key and ECDSA signature; return the authentic payload.

    Returns:
        ``(payload, key_fingerprint)``: the signed in-toto statement bytes (not yet
        checked against ``path``) and the fingerprint of ``public_key``.

    Raises:
        IntegrityError: malformed sidecar, another key or a bad signature.
    """
    key = load_public_key(public_key)
    sig_name = signature_path(path).name
    try:
        bundle = json.loads(sidecar)
        envelope = bundle["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
        hint = (bundle.get("verificationMaterial") or {}).get("publicKey", {}).get("hint")
        media_type, payload_type = bundle["mediaType"], envelope["payloadType"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise IntegrityError(path, f"signature file {sig_name} is malformed ({type(err).__name__})") from None
    if media_type != _BUNDLE_MEDIA_TYPE or payload_type != _PAYLOAD_TYPE:
        raise IntegrityError(path, f"signature file {sig_name} is not a model_signing bundle ({media_type})")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise IntegrityError(path, f"signature file {sig_name} must hold exactly one signature")
    fingerprint = key_fingerprint(key)
    if hint and hint != fingerprint:
        raise IntegrityError(
            path,
            f"signed by another key (fingerprint {hint[:16]}...), not the given public key ({fingerprint[:16]}...)",
        )
    try:
        raw_sig = base64.b64decode(signatures[0]["sig"], validate=True)
        key.verify(raw_sig, _pae(payload), ec.ECDSA(ec_hash_for(key.curve)))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        raise IntegrityError(path, f"signature in {sig_name} is not valid for the given public key") from None
    return payload, fingerprint


def _file_statement(payload: bytes, fingerprint: str, path: str | os.PathLike[str]) -> SignedFile:
    """What an authentic single-file statement commits to, once checked to describe ``path``."""
    try:
        statement = json.loads(payload)
        subject = statement["subject"]
        predicate = statement["predicate"]
        resources = predicate["resources"]
        ok_shape = (
            statement["_type"] == _STATEMENT_TYPE
            and statement["predicateType"] == _PREDICATE_TYPE
            and len(subject) == 1
            and len(resources) == 1
            and resources[0]["name"] == "."
            and resources[0]["algorithm"] == "sha256"
            and predicate["serialization"]["method"] == "files"
        )
        name, whole = subject[0]["name"], resources[0]["digest"]
        root = hashlib.sha256(bytes.fromhex(whole)).hexdigest()
        ok_shape = ok_shape and subject[0]["digest"]["sha256"] == root
    except (ValueError, KeyError, TypeError, IndexError):
        raise IntegrityError(path, "signed statement is not a single-file model_signing statement") from None
    if not ok_shape:
        raise IntegrityError(path, "signed statement is not a single-file model_signing statement")
    actual_name = Path(path).name
    if name != actual_name:
        raise IntegrityError(path, f"signature was made for a file named {name!r}, not {actual_name!r} (renamed)")
    ext = predicate.get(_EXTENSION)
    if not isinstance(ext, dict):  # signed by plain model_signing: whole-file hash only
        return SignedFile(name, -1, whole, 0, (), {}, None, fingerprint)
    try:
        return SignedFile(
            name=name,
            size=int(ext["size"]),
            sha256=whole,
            shard_size=int(ext["shard_size"]),
            shards=tuple(str(s) for s in ext["shards"]),
            provenance=dict(ext.get("provenance") or {}),
            encryption=ext.get("encryption"),
            key_fingerprint=fingerprint,
        )
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(path, f"the {_EXTENSION} part of the signed statement is malformed") from None


def verify_buffer(data: bytes | bytearray | memoryview | mmap.mmap, signed: SignedFile, path: object) -> None:
    """Check ``data`` against ``signed`` (shards in parallel threads); raise naming what differs.

    Raises:
        IntegrityError: size or content mismatch.
    """
    view = memoryview(data)  # type: ignore[arg-type]

    def digest(a: int, b: int) -> str:
        with view[a:b] as piece:  # released at once, so a memory map can be closed
            return _sha256(piece)

    try:
        _check_digests(view.nbytes, signed, path, digest)
    finally:
        view.release()


def _sha256_fd(fd: int, start: int, end: int) -> str:
    """SHA-256 of bytes ``start..end`` of an open file, read with ``pread`` in 1 MiB pieces."""
    h = hashlib.sha256()
    while start < end:
        chunk = os.pread(fd, min(_READ_SIZE, end - start), start)
        if not chunk:  # the file shrank meanwhile: the digest differs
            break
        h.update(chunk)
        start += len(chunk)
    return h.hexdigest()


def _check_digests(size: int, signed: SignedFile, path: object, digest: Callable[[int, int], str]) -> None:
    """Compare ``size`` and the digests of ``digest(start, end)`` per shard (in parallel) with ``signed``."""
    if signed.size < 0:  # no shard list: whole-file digest
        if digest(0, size) != signed.sha256:
            raise IntegrityError(path, "content does not match its signature (SHA-256 differs)")
        return
    if size != signed.size:
        how = "truncated" if size < signed.size else "bytes appended"
        raise IntegrityError(path, f"size is {size} bytes but {signed.size} were signed ({how})")
    bounds = _shard_bounds(size, signed.shard_size)
    if len(bounds) != len(signed.shards):
        raise IntegrityError(path, f"signed shard list has {len(signed.shards)} entries, expected {len(bounds)}")
    futures = [_pool().submit(digest, a, b) for a, b in bounds]
    try:
        for i, ((a, b), fut, want) in enumerate(zip(bounds, futures, signed.shards, strict=True)):
            if fut.result() != want:
                raise IntegrityError(
                    path,
                    f"content does not match its signature: bytes {a}..{b} differ (shard {i + 1} of {len(bounds)})",
                )
    finally:  # no hashing left running on the caller's buffer
        for fut in futures:
            fut.cancel()
        for fut in futures:
            if not fut.cancelled():
                fut.exception()


def signed_target(path: str | os.PathLike[str]) -> Path:
    """The path whose signature vouches for ``path``: itself, or the checkpoint a link points to.

    ``ModelCheckpoint(save_last="link")`` makes ``last.ckpt`` a symbolic link to the newest
    checkpoint file or directory, by a name in the same folder; that link has no sidecar
    of its own and verifies through its target (whose signature binds the target's name).
    A hard link (a second name for a signed file's inode, without a sidecar) verifies
    through the signed name in the same folder that shares its inode.

    Raises:
        IntegrityError: a symbolic link that points anywhere else (another folder, an
            absolute path, another link): refused, naming the link and its target.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> open(os.path.join(d, "step=3.ckpt"), "wb").close()
        >>> os.symlink("step=3.ckpt", os.path.join(d, "last.ckpt"))
        >>> signed_target(os.path.join(d, "last.ckpt")).name
        'step=3.ckpt'
    """
    p = Path(path)
    if p.is_symlink():
        target = os.readlink(p)
        resolved = p.parent / target
        if os.path.isabs(target) or os.path.basename(target) != target or target in ("", ".", ".."):
            raise IntegrityError(p, f"is a link to {target}, outside its folder: refused")
        if resolved.is_symlink():
            raise IntegrityError(p, f"is a link to {target}, itself a link: refused")
        return resolved
    try:
        st = p.stat()
    except OSError:
        return p
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not signature_path(p).exists():
        with os.scandir(p.parent) as entries:
            for entry in entries:
                if entry.name == p.name or entry.is_symlink() or not signature_path(p.parent / entry.name).is_file():
                    continue
                other = entry.stat(follow_symlinks=False)
                if (other.st_ino, other.st_dev) == (st.st_ino, st.st_dev):
                    return p.parent / entry.name
    return p


def _read_sidecar(path: Path) -> bytes:
    sig = signature_path(path)
    if not sig.is_file():
        raise IntegrityError(path, f"unsigned: no signature file {sig.name} next to it")
    from secure_train.core.safe_io import read_bytes  # size-checked: a huge or sparse sidecar is refused

    return read_bytes(sig, what="signature file")


def verify_file(path: str | os.PathLike[str], public_key: PublicKeyLike) -> SignedFile:
    """Verify ``path`` against ``path.sig`` without loading it (shards hashed in parallel, streamed).

    Raises:
        IntegrityError: missing file or sidecar, or any mismatch (the message says which).
    """
    p = signed_target(path)
    if not p.is_file():
        raise IntegrityError(p, "no such file")
    signed = open_bundle(_read_sidecar(p), public_key, p)
    with p.open("rb") as fh:  # streamed per shard with pread: constant memory whatever the size
        fd = fh.fileno()
        _check_digests(os.fstat(fd).st_size, signed, p, lambda a, b: _sha256_fd(fd, a, b))
    return signed


def read_verified(path: str | os.PathLike[str], public_key: PublicKeyLike) -> tuple[bytes, SignedFile]:
    """Read ``path`` once into memory and verify those very bytes; return them and the signed record.

    The caller then parses the returned bytes, never the file again, so the file cannot
    be swapped between the check and the use.
    """
    data, _, signed = read_verified_pair(path, public_key)
    return data, signed


def read_verified_pair(path: str | os.PathLike[str], public_key: PublicKeyLike) -> tuple[bytes, bytes, SignedFile]:
    """Like :func:`read_verified`, also returning the sidecar bytes that were checked.

    Returns:
        ``(data, sidecar, signed)``: each file read exactly once; ``data`` matches
        ``sidecar``, which is signed by ``public_key`` for the name of ``path``. Written
        together under the same file name elsewhere, they form a pair that verifies.
    """
    p = signed_target(path)
    if not p.is_file():
        raise IntegrityError(p, "no such file")
    sidecar = _read_sidecar(p)
    signed = open_bundle(sidecar, public_key, p)
    data = p.read_bytes()
    verify_buffer(data, signed, p)
    return data, sidecar, signed


def _write_all(fd: int, view: memoryview) -> None:
    for start in range(0, view.nbytes, _WRITE_CHUNK):
        chunk = view[start : start + _WRITE_CHUNK]
        while chunk.nbytes:
            written = os.write(fd, chunk)
            chunk = chunk[written:]


def _write_temp(path: Path, view: memoryview, fsync: bool) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{_HOST_TAG}-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, view)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_signed(
    data: bytes | bytearray | memoryview,
    path: str | os.PathLike[str],
    private_key: PrivateKey,
    *,
    provenance: dict[str, Any] | None = None,
    encryption: dict[str, Any] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    fsync: bool = True,
    _before_signature: Callable[[], None] | None = None,
) -> SignedFile:
    """Write ``data`` to ``path`` and its signature to ``path.sig``, crash-safely.

    A process killed at any point leaves the previous pair untouched, the new pair, or the
    new bytes with their complete signature still in a temporary file, which
    :func:`recover_signed` renames into place (see the module docstring).

    Args:
        data: the exact bytes to store (already serialized, and encrypted if wanted).
        path: destination; its directory is created.
        private_key: EC signing key.
        provenance: JSON-serializable record the signature covers.
        encryption: description of the at-rest encryption of ``data`` (recorded, signed).
        shard_size: bytes per independently hashed shard.
        fsync: flush both files and the directory to disk before and after renaming
            (durability across power loss; renames alone are atomic across crashes).

    Returns:
        The signed record.
    """
    require_int("write_signed", "shard_size", shard_size, minimum=1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    view = memoryview(data).cast("B")
    bounds = _shard_bounds(view.nbytes, shard_size)
    pool = _pool()
    whole: Future[str] = pool.submit(_sha256, view)
    slices = [view[a:b] for a, b in bounds]
    shards = [pool.submit(_sha256, s) for s in slices]
    tmp_data = tmp_sig = None
    published = False
    try:
        tmp_data = _write_temp(p, view, fsync)  # hashing runs in the pool meanwhile
        signed = SignedFile(
            name=p.name,
            size=view.nbytes,
            sha256=whole.result(),
            shard_size=shard_size,
            shards=tuple(f.result() for f in shards),
            provenance=json.loads(json.dumps(provenance or {}, sort_keys=True, default=str)),
            encryption=encryption,
            key_fingerprint=key_fingerprint(private_key.public_key()),
        )
        if _before_signature is not None:
            _before_signature()
        bundle = make_bundle(signed, private_key)
        sig = signature_path(p)
        tmp_sig = _write_temp(sig, memoryview(bundle), fsync)
        # Publish: data first, then its signature. In between, the new bytes sit next to the
        # old sidecar (refused as a mismatch) and ``tmp_sig`` is their only signature: it is
        # kept on any failure from here on, for recover_signed to finish the job.
        os.replace(tmp_data, p)
        tmp_data, published = None, True
        try:
            os.replace(tmp_sig, sig)
        except FileNotFoundError:  # a concurrent recover_signed finished the publication
            if not (sig.is_file() and sig.read_bytes() == bundle):
                raise
        tmp_sig = None
        if fsync:
            _fsync_dir(p.parent)
        return signed
    finally:
        for tmp in (tmp_data, None if published else tmp_sig):
            if tmp is not None:
                _unlink(tmp)
        for fut in (whole, *shards):  # wait for the hashing threads before releasing the views they read
            if not fut.cancel():
                fut.exception()
        for s in slices:
            s.release()
        view.release()


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_signed(path: str | os.PathLike[str]) -> None:
    """Remove a signed file or checkpoint directory and its sidecar (sidecar first: no half pair looks valid)."""
    _unlink(signature_path(path))
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        _unlink(p)


@dataclass(frozen=True)
class Recovery:
    """One step :func:`recover_signed` took.

    Attributes:
        action: ``"completed"`` (a temporary signature was renamed into place: it verifies
            the bytes published at ``target``) or ``"removed"`` (an abandoned temporary file).
        temp: the temporary file.
        target: the file it was written for.
    """

    action: str
    temp: Path
    target: Path


def _abandoned(temp: Path, host: str | None, pid: int) -> bool:
    """Whether the process that wrote ``temp`` is gone (same host: by pid; other host: by age)."""
    if host is not None and host != _HOST_TAG:
        modified = _mtime(temp)
        return modified > 0 and time.time() - modified > FOREIGN_STALE_AFTER
    if pid == os.getpid():
        return False  # a save of this very process may be in flight
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _complete(target: Path, sig_temps: list[Path], key: PublicKeyLike) -> Path | None:
    """Rename into place the temporary signature that verifies ``target``'s bytes, if its pair does not."""
    try:
        verify_file(target, key)
        return None  # the published pair verifies: nothing to finish
    except IntegrityError:
        pass
    for temp in sorted(sig_temps, key=_mtime, reverse=True):  # the newest first
        try:
            signed = open_bundle(temp.read_bytes(), key, target)
            with target.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size == 0:
                    verify_buffer(b"", signed, target)
                else:
                    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                        verify_buffer(mm, signed, target)
            os.replace(temp, signature_path(target))
        except (IntegrityError, OSError):
            continue  # not this one (or another process finished first)
        _fsync_dir(target.parent)
        return temp
    return None


def recover_signed(directory: str | os.PathLike[str], public_key: PublicKeyLike) -> list[Recovery]:
    """Finish or clean up the saves in ``directory`` that a crash interrupted.

    For every file whose temporary files lie in ``directory``: when the published pair
    does not verify but a temporary signature verifies the bytes at the file (the writer
    died between its two renames), that signature is renamed into place; then the
    temporary files of writers that are gone (a dead process on this host; on another
    host, older than :data:`FOREIGN_STALE_AFTER`) are removed. Safe to run from several
    processes at once (DDP ranks) and next to live writers, whose files are left alone.

    Returns:
        What was done, for the audit log; empty when nothing was left behind.

    Example:
        >>> import os, tempfile
        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> key = ec.generate_private_key(ec.SECP256R1())
        >>> d = tempfile.mkdtemp()
        >>> _ = write_signed(b"old", os.path.join(d, "last.ckpt"), key)
        >>> recover_signed(d, key.public_key())
        []
    """
    d = Path(directory)
    groups: dict[str, tuple[list[Path], list[Path]]] = {}
    writers: dict[Path, tuple[str | None, int]] = {}
    try:
        entries = list(os.scandir(d))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        name, temp = match["target"], d / entry.name
        writers[temp] = (match["host"], int(match["pid"]))
        is_sig = name.endswith(SIGNATURE_SUFFIX)
        data_temps, sig_temps = groups.setdefault(name[: -len(SIGNATURE_SUFFIX)] if is_sig else name, ([], []))
        (sig_temps if is_sig else data_temps).append(temp)
    actions: list[Recovery] = []
    for name, (data_temps, sig_temps) in sorted(groups.items()):
        target = d / name
        if sig_temps and target.is_file():
            done = _complete(target, sig_temps, public_key)
            if done is not None:
                actions.append(Recovery("completed", done, target))
                sig_temps.remove(done)
        for temp in data_temps + sig_temps:
            if _abandoned(temp, *writers[temp]) and _unlink(temp):
                actions.append(Recovery("removed", temp, target))
    return actions
