"""``SigningFileSystemWriter``: DCP writes a sharded checkpoint and signs it, hashing every byte as it is written.

:func:`~secure_train.integrity.sharded.sign_directory` after ``dcp.save`` reads every file back
to hash it. This ``StorageWriter`` hashes the bytes on their way to the file instead (each rank
its own shards; the digests travel to the coordinator with DCP's write results), so signing
reads nothing back. The signature is the same ``DIR.sig``, verified the same way
(:func:`~secure_train.integrity.sharded.verify_directory`,
:class:`~secure_train.integrity.dcp_reader.VerifiedFileSystemReader`, ``model_signing``). It
commits to the bytes DCP handed to the operating system: a file changed on disk between its
write and the signature fails verification instead of being signed. Any other file in the
directory (one DCP did not write) is hashed from disk, as by ``sign_directory``.

Example:
    >>> import os, tempfile, torch
    >>> import torch.distributed.checkpoint as dcp
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.integrity.sharded import verify_directory
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> ckpt = os.path.join(tempfile.mkdtemp(), "step=1.ckpt")
    >>> writer = SigningFileSystemWriter(ckpt, key)
    >>> _ = dcp.save({"w": torch.ones(4)}, storage_writer=writer)
    >>> sorted(writer.signed.digests) == sorted(verify_directory(ckpt, key.public_key()).digests)
    True
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from torch.distributed.checkpoint import FileSystemWriter
from torch.distributed.checkpoint.filesystem import FileSystem
from torch.distributed.checkpoint.metadata import Metadata, MetadataIndex
from torch.distributed.checkpoint.planner import SavePlan, SavePlanner
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future as TorchFuture

from secure_train.core.errors import ConfigError
from secure_train.core.keys import PrivateKey
from secure_train.integrity.sharded import _CHUNK, HASH_TYPES, SignedDirectory, _hasher, _sign

__all__ = ["SigningFileSystemWriter"]

_DIGESTS = "__secure_train_written_digests__"
"""Index name of the extra write result that carries a rank's digests to the coordinator."""


class _HashingStream:
    """A binary file opened for writing that hashes what is written to it, in order."""

    def __init__(self, raw: Any, hash_type: str) -> None:
        self.raw, self.hasher, self.size, self.sequential = raw, _hasher(hash_type), 0, True

    def write(self, data: Any) -> int:
        """Write and hash ``data`` a slice at a time: each slice is hashed while the CPU cache holds it."""
        written = 0
        with memoryview(data) as view, view.cast("B") as flat:
            while written < flat.nbytes:
                piece = flat[written : written + _CHUNK]
                n = int(self.raw.write(piece))
                self.hasher.update(piece[:n])
                written += n
                if n < piece.nbytes:  # a short write: the caller sees how much went
                    break
        self.size += written
        return written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.sequential = False  # a rewrite: the digest no longer describes the file, it is hashed from disk
        return int(self.raw.seek(offset, whence))

    def __getattr__(self, name: str) -> Any:  # tell, flush, fileno, close, ...
        return getattr(self.raw, name)


class _HashingFileSystem(FileSystem):
    """DCP's local file system, keeping (digest, size) of every file written through it."""

    def __init__(self, hash_type: str) -> None:
        self.hash_type = hash_type
        self.written: dict[Path, tuple[str, int]] = {}
        self._lock = threading.Lock()  # DCP writes with several threads when thread_count > 1

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Generator[io.IOBase, None, None]:
        if mode != "wb":
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        with super().create_stream(path, mode) as raw:
            hashing = _HashingStream(raw, self.hash_type)
            yield cast(io.IOBase, hashing)  # DCP closes it (after its fsync)
        with self._lock:
            if hashing.sequential:
                self.written[Path(path)] = (str(hashing.hasher.hexdigest()), hashing.size)
            else:
                self.written.pop(Path(path), None)

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        super().rename(path, new_path)
        with self._lock:
            if (entry := self.written.pop(Path(path), None)) is not None:
                self.written[Path(new_path)] = entry

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        super().rm_file(path)
        with self._lock:
            self.written.pop(Path(path), None)

    def relative(self, directory: Path) -> dict[str, tuple[str, int]]:
        """What was written under ``directory``, by POSIX path relative to it."""
        with self._lock:
            written = [(p, e) for p, e in self.written.items() if p.is_relative_to(directory)]
        return {p.relative_to(directory).as_posix(): e for p, e in written}


class SigningFileSystemWriter(FileSystemWriter):
    """A DCP ``FileSystemWriter`` that signs the checkpoint directory when the save finishes.

    Every rank hashes the shards it writes while writing them; the coordinator collects the
    digests, hashes ``.metadata`` as it writes it, and writes ``DIR.sig`` (as
    :func:`~secure_train.integrity.sharded.sign_directory` does, without reading the files back).
    Only the coordinator needs the key.

    Args:
        path: the checkpoint directory.
        private_key: EC signing key (the coordinator's; ``None`` on the other ranks).
        provenance: JSON-serializable record the signature covers.
        hash_type: per-file hash, ``"blake3"`` (default) or ``"sha256"``.
        **kwargs: ``FileSystemWriter`` options (``thread_count``, ``sync_files``, ...); with
            ``sync_files`` (the default) the sidecar is flushed to disk too.

    Attributes:
        signed: what the signature commits to, on the coordinator once the save finished.

    Raises:
        ConfigError: a bad ``hash_type``, no key on the coordinator, or a save without
            collectives (``use_collectives=False``: no coordinator sees every rank's files).

    Example:
        >>> import torch.distributed.checkpoint as dcp  # doctest: +SKIP
        >>> dcp.save(state_dict, storage_writer=SigningFileSystemWriter("step=10.ckpt", key))  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        private_key: PrivateKey | None = None,
        *,
        provenance: dict[str, Any] | None = None,
        hash_type: str = "blake3",
        **kwargs: Any,
    ) -> None:
        if hash_type not in HASH_TYPES:
            raise ConfigError(f"hash_type must be one of {HASH_TYPES}, got {hash_type!r}")
        super().__init__(path, **kwargs)
        self.fs: _HashingFileSystem = _HashingFileSystem(hash_type)
        self.path = self.fs.init_path(path)
        self.private_key, self.provenance, self.hash_type = private_key, provenance, hash_type
        self.signed: SignedDirectory | None = None

    def reset(self, checkpoint_id: str | os.PathLike[str] | None = None) -> None:
        super().reset(checkpoint_id)
        self.fs.written.clear()
        self.signed = None

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        super().set_up_storage_writer(is_coordinator, *args, **kwargs)
        if not self.use_collectives:
            raise ConfigError("SigningFileSystemWriter signs on the coordinator: save with use_collectives=True")
        if is_coordinator and self.private_key is None:
            raise ConfigError("SigningFileSystemWriter needs the private key on the coordinator rank")

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> TorchFuture[list[WriteResult]]:
        results = list(super().write_data(plan, planner).wait())
        digests = self.fs.relative(Path(self.path))
        results.append(WriteResult(index=MetadataIndex(_DIGESTS), size_in_bytes=0, storage_data=digests))
        fut: TorchFuture[list[WriteResult]] = TorchFuture()
        fut.set_result(results)
        return fut

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        known: dict[str, tuple[str, int]] = {}
        kept = []
        for rank_results in results:
            kept.append([r for r in rank_results if r.index.fqn != _DIGESTS])
            for r in rank_results:
                if r.index.fqn == _DIGESTS:
                    known.update(r.storage_data)
        super().finish(metadata, kept)
        if self.private_key is None:  # pragma: no cover - refused in set_up_storage_writer
            raise ConfigError("SigningFileSystemWriter needs the private key on the coordinator rank")
        known.update(self.fs.relative(Path(self.path)))  # .metadata, written just now
        self.signed = _sign(
            self.path,
            self.private_key,
            provenance=self.provenance,
            hash_type=self.hash_type,
            fsync=self.sync_files,
            known=known,
        )
