"""``VerifiedFileSystemReader``: DCP reads a sharded checkpoint only after verifying all of it.

Example:
    >>> import os, tempfile, torch
    >>> import torch.distributed.checkpoint as dcp
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> from secure_train.integrity.sharded import sign_directory
    >>> key = ec.generate_private_key(ec.SECP256R1())
    >>> ckpt = os.path.join(tempfile.mkdtemp(), "step=1.ckpt")
    >>> _ = dcp.save({"w": torch.ones(4)}, checkpoint_id=ckpt)
    >>> _ = sign_directory(ckpt, key)
    >>> state = {"w": torch.zeros(4)}
    >>> with VerifiedFileSystemReader(ckpt, key.public_key()) as reader:
    ...     dcp.load(state, storage_reader=reader)
    >>> state["w"]
    tensor([1., 1., 1., 1.])
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.filesystem import FileSystem

from secure_train.core.errors import IntegrityError
from secure_train.core.keys import PublicKeyLike
from secure_train.core.signed_file import signed_target
from secure_train.integrity.sharded import _OpenFiles, _verify_open

__all__ = ["VerifiedFileSystemReader"]


class _PreadFile(io.RawIOBase):
    """A read-only, seekable view of an open descriptor with its own offset (``pread``)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd, self._pos = fd, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: os.fstat(self._fd).st_size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            n = os.preadv(self._fd, [target], self._pos)  # straight into the caller's buffer
        self._pos += n
        return n


class _PinnedFileSystem(FileSystem):
    """DCP's file system, reading only the files opened and verified at construction."""

    def __init__(self, files: _OpenFiles) -> None:
        self._files = files

    @contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Generator[io.IOBase, None, None]:
        p = Path(path)
        try:
            rel = p.relative_to(self._files.directory).as_posix()
        except ValueError:
            rel = None
        if mode != "rb" or rel not in self._files.fds:
            raise IntegrityError(p, f"is not a verified file of {self._files.directory.name} (mode {mode!r})")
        with io.BufferedReader(_PreadFile(self._files.fds[rel])) as stream:  # small buffer, like open()
            yield stream

    def init_path(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        if signed_target(p) != self._files.directory and p != self._files.directory:
            raise IntegrityError(p, f"is not the verified checkpoint {self._files.directory}")
        return self._files.directory

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        raise IntegrityError(path, "a verified checkpoint is read-only")

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        raise IntegrityError(path, "a verified checkpoint is read-only")

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        raise IntegrityError(path, "a verified checkpoint is read-only")


class VerifiedFileSystemReader(FileSystemReader):
    """A DCP ``FileSystemReader`` that verifies the whole checkpoint before DCP reads a byte.

    Every file is opened once and verified (:func:`~secure_train.integrity.sharded.verify_directory`'s checks) at
    construction; DCP's reads are then served from those open files only, so a shard
    swapped on disk after the check is never read. Use it as a context manager (or call
    :meth:`close`) to release the files.

    Args:
        path: the checkpoint directory (or a ``save_last="link"`` link to it).
        public_key: the signer's public key (object, PEM path or PEM text).

    Attributes:
        signed: what the verified signature commits to.

    Raises:
        IntegrityError: at construction, naming the first file that does not verify.

    Example:
        >>> import torch.distributed.checkpoint as dcp  # doctest: +SKIP
        >>> with VerifiedFileSystemReader("step=10.ckpt", "key.pub") as reader:  # doctest: +SKIP
        ...     dcp.load(state_dict, storage_reader=reader)
    """

    def __init__(self, path: str | os.PathLike[str], public_key: PublicKeyLike) -> None:
        files, self.signed = _verify_open(path, public_key)
        super().__init__(files.directory)
        self._files = files
        self.fs = _PinnedFileSystem(files)

    def close(self) -> None:
        """Close the verified files (later reads fail)."""
        self._files.close()

    def __enter__(self) -> VerifiedFileSystemReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return False  # never picked implicitly by ``dcp.load(checkpoint_id=...)``: it needs a key
