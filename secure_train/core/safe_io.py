"""Bounded reading of files a user or an attacker hands us.

Every command reads its inputs (configs, suites, policies, audit logs, inference logs,
manifests, signature sidecars) through these helpers, so that a hostile file ends in one
:class:`~secure_train.core.errors.InputError` naming it, in bounded memory and time:

- :func:`read_text` / :func:`read_bytes`: size-checked before reading (a 2 GB sparse file is
  refused from its ``stat``), strict UTF-8 (random bytes name the byte offset);
- :func:`load_yaml` / :func:`load_yaml_file`: safe YAML with limits on the size of the text,
  the nesting depth and the number of nodes *after alias expansion* (a "billion laughs"
  bomb is refused before anything walks it); :func:`check_yaml` does the check alone, and
  :func:`install_jsonargparse_limits` puts it in front of jsonargparse's loader (LightningCLI's
  ``--config`` and command-line values);
- :func:`load_json_file`: size-checked, UTF-8, JSON;
- :func:`iter_lines` / :func:`iter_raw_lines` / :func:`open_lines`: JSONL, CSV and text streamed
  line by line with a maximum line length (a file without newlines is refused after 16 MiB);
- :func:`sha256_file`: streaming SHA-256 in fixed-size chunks.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> path = os.path.join(d, "bomb.yaml")
    >>> _ = open(path, "w").write("a: &a [x, x, x, x, x, x, x, x, x, x]\\n"
    ...     + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\\n"
    ...               for p, c in zip("abcdefgh", "bcdefghi")))
    >>> try:
    ...     load_yaml_file(path, what="config")
    ... except InputError as err:
    ...     print(str(err).split(":")[-1].strip())
    more than 200000 nodes after alias expansion (a YAML bomb?)
    >>> load_yaml("lr: 0.1", source="inline")
    {'lr': 0.1}
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from secure_train.core.errors import InputError, SecureTrainError

__all__ = [
    "CHUNK_SIZE",
    "MAX_JSON_BYTES",
    "MAX_LINE_BYTES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "check_file",
    "check_yaml",
    "install_jsonargparse_limits",
    "iter_lines",
    "iter_raw_lines",
    "load_json_file",
    "load_yaml",
    "load_yaml_file",
    "open_lines",
    "read_bytes",
    "read_text",
    "sha256_file",
]

MAX_YAML_BYTES = 8 * 2**20
"""Largest YAML document (config, suite, policy, recipe) read: 8 MiB."""
MAX_YAML_NODES = 200_000
"""Most YAML nodes after alias expansion; a real recipe has a few hundred."""
MAX_YAML_DEPTH = 100
"""Deepest YAML nesting accepted."""
MAX_JSON_BYTES = 64 * 2**20
"""Largest JSON document (manifest, attestation, signature sidecar, head) read whole: 64 MiB."""
MAX_LINE_BYTES = 16 * 2**20
"""Longest line of a JSONL / text file (audit log, inference log): 16 MiB."""
CHUNK_SIZE = 2**20
"""Read size of :func:`sha256_file`."""

PathLike = str | os.PathLike[str]


def check_file(path: PathLike, *, what: str = "file", max_bytes: int | None = None) -> int:
    """Check that ``path`` is an existing regular file of at most ``max_bytes``; return its size.

    Example:
        >>> check_file("/nonexistent.yaml", what="config")
        Traceback (most recent call last):
        ...
        secure_train.core.errors.InputError: config /nonexistent.yaml: no such file
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read ({err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {path}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {path}: not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputError(f"{what} {path}: {st.st_size} bytes, more than the limit of {max_bytes}")
    return st.st_size


def read_bytes(path: PathLike, *, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of ``path``, refused when larger than ``max_bytes`` (checked before and while reading).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as fh:
        ...     _ = fh.write(b"abc")
        >>> read_bytes(fh.name)
        b'abc'
    """
    check_file(path, what=what, max_bytes=max_bytes)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read ({err.strerror})") from None
    if len(data) > max_bytes:  # grew after the stat
        raise InputError(f"{what} {path}: more than the limit of {max_bytes} bytes")
    return data


def _decode(data: bytes, path: PathLike, what: str, line: int | None = None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where = f" line {line}" if line is not None else ""
        raise InputError(f"{what} {path}:{where} not UTF-8 text (byte {err.start}: {err.reason})") from None


def read_text(path: PathLike, *, what: str = "file", max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of ``path``, size-checked; invalid UTF-8 is an :class:`InputError`.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as fh:
        ...     _ = fh.write(b"\\xff\\xfe")
        >>> read_text(fh.name, what="policy")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        secure_train.core.errors.InputError: policy ...: not UTF-8 text (byte 0: invalid start byte)
    """
    text = _decode(read_bytes(path, what=what, max_bytes=max_bytes), path, what)
    if "\x00" in text:
        raise InputError(f"{what} {path}: contains NUL bytes, not a text file")
    return text


def _yaml_loader_class() -> type:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[no-any-return]


def _expanded_size(root: Any, *, source: str, max_nodes: int, max_depth: int) -> int:
    """Number of nodes of the composed tree with every alias expanded (iterative, memoised)."""
    from yaml.nodes import MappingNode, SequenceNode

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            if isinstance(node, MappingNode):
                kids = [n for pair in node.value for n in pair]
            else:
                kids = list(node.value)
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[key] > max_nodes:
                raise InputError(f"{source}: more than {max_nodes} nodes after alias expansion (a YAML bomb?)")
            continue
        if key in sizes:
            continue
        if depth > max_depth:
            raise InputError(f"{source}: nested deeper than {max_depth} levels")
        if not isinstance(node, (MappingNode, SequenceNode)):
            sizes[key] = 1
            continue
        if key in on_path:
            raise InputError(f"{source}: recursive YAML alias")
        on_path.add(key)
        stack.append((node, depth, True))
        kids = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else node.value
        for kid in kids:
            if id(kid) in on_path:
                raise InputError(f"{source}: recursive YAML alias")
            if id(kid) not in sizes:
                stack.append((kid, depth + 1, False))
    return sizes[id(root)]


def _compose(text: str, *, source: str, loader_cls: type | None, max_nodes: int, max_depth: int) -> tuple[Any, Any]:
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{source}: {len(text)} characters of YAML, more than the limit of {MAX_YAML_BYTES}")
    loader = (loader_cls or _yaml_loader_class())(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as err:
        loader.dispose()
        raise InputError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        loader.dispose()
        raise InputError(f"{source}: nested too deeply") from None
    if node is not None:
        try:
            _expanded_size(node, source=source, max_nodes=max_nodes, max_depth=max_depth)
        except InputError:
            loader.dispose()
            raise
    return loader, node


def check_yaml(
    text: str,
    *,
    source: str = "<yaml>",
    loader_cls: type | None = None,
    max_nodes: int = MAX_YAML_NODES,
    max_depth: int = MAX_YAML_DEPTH,
) -> None:
    """Raise :class:`InputError` when ``text`` is too large, too deep, or expands past ``max_nodes``.

    Example:
        >>> check_yaml("a: &x [1, 2]\\nb: [*x, *x]", max_nodes=15)
        >>> check_yaml("a: &x [1, 2]\\nb: [*x, *x, *x, *x]", max_nodes=15)
        Traceback (most recent call last):
        ...
        secure_train.core.errors.InputError: <yaml>: more than 15 nodes after alias expansion (a YAML bomb?)
    """
    loader, _ = _compose(text, source=source, loader_cls=loader_cls, max_nodes=max_nodes, max_depth=max_depth)
    loader.dispose()


def load_yaml(
    text: str,
    *,
    source: str = "<yaml>",
    max_nodes: int = MAX_YAML_NODES,
    max_depth: int = MAX_YAML_DEPTH,
) -> Any:
    """``yaml.safe_load`` with the limits of :func:`check_yaml`; errors are :class:`InputError`."""
    import yaml

    loader, node = _compose(text, source=source, loader_cls=None, max_nodes=max_nodes, max_depth=max_depth)
    try:
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as err:
        raise InputError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    finally:
        loader.dispose()


def load_yaml_file(path: PathLike, *, what: str = "YAML file", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse a YAML file within the limits of :func:`read_text` and :func:`load_yaml`."""
    text = read_text(path, what=what, max_bytes=max_bytes)
    return load_yaml(text, source=f"{what} {path}")


def load_json_file(path: PathLike, *, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read and parse a JSON file, size-checked and UTF-8; errors are :class:`InputError`.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        ...     _ = fh.write('{"a": 1}')
        >>> load_json_file(fh.name)
        {'a': 1}
    """
    text = read_text(path, what=what, max_bytes=max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{what} {path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise InputError(f"{what} {path}: JSON nested too deeply") from None


def iter_raw_lines(
    path: PathLike,
    *,
    what: str = "",
    max_line_bytes: int = MAX_LINE_BYTES,
    error: type[SecureTrainError] = InputError,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, raw bytes with the newline)``, streaming in constant memory; a line
    longer than ``max_line_bytes`` (a sparse or binary file has none shorter) raises ``error``.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("wb", delete=False) as fh:
        ...     _ = fh.write(b"one\\r\\ntwo")
        >>> list(iter_raw_lines(fh.name))
        [(1, b'one\\r\\n'), (2, b'two')]
    """
    prefix = f"{what} " if what else ""
    if not os.path.exists(path):
        raise error(f"{prefix}{path}: no such file")
    check_file(path, what=what or "file")
    try:
        fh = open(path, "rb", buffering=CHUNK_SIZE)  # noqa: SIM115 - closed below
    except OSError as err:
        raise error(f"{prefix}{path}: cannot read ({err.strerror})") from None
    with fh:
        lineno = 0
        while raw := fh.readline(max_line_bytes + 1):
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise error(f"{prefix}{path}:{lineno}: line longer than {max_line_bytes} bytes (not a text file?)")
            yield lineno, raw


def iter_lines(
    path: PathLike,
    *,
    what: str = "",
    max_line_bytes: int = MAX_LINE_BYTES,
    allow_nul: bool = False,
    error: type[SecureTrainError] = InputError,
) -> Generator[tuple[int, str], None, None]:
    """Yield ``(line number, text without the newline)``, streaming in constant memory.

    A line longer than ``max_line_bytes`` (a sparse or binary file has none shorter), invalid
    UTF-8, or a NUL byte (unless ``allow_nul``) raises ``error`` naming ``PATH:LINE``.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", delete=False) as fh:
        ...     _ = fh.write("one\\ntwo\\n")
        >>> list(iter_lines(fh.name))
        [(1, 'one'), (2, 'two')]
    """
    prefix = f"{what} " if what else ""
    for lineno, raw in iter_raw_lines(path, what=what, max_line_bytes=max_line_bytes, error=error):
        if not allow_nul and b"\x00" in raw:
            raise error(f"{prefix}{path}:{lineno}: NUL bytes, not a text file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise error(f"{prefix}{path}:{lineno}: invalid UTF-8 at byte {err.start}") from None
        yield lineno, text[:-1] if text.endswith("\n") else text


@contextmanager
def open_lines(
    path: PathLike,
    *,
    what: str = "",
    max_line_bytes: int = MAX_LINE_BYTES,
    error: type[SecureTrainError] = InputError,
) -> Iterator[Iterator[str]]:
    """Drop-in for ``with open(path) as fh: for line in fh`` (and ``csv.reader(fh)``) with the
    limits of :func:`iter_lines`; lines come without their newline.

    Example:
        >>> import csv, tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        ...     _ = fh.write("pred,confidence\\n1,0.9\\n")
        >>> with open_lines(fh.name) as lines:
        ...     [row["pred"] for row in csv.DictReader(lines)]
        ['1']
    """
    lines = iter_lines(path, what=what, max_line_bytes=max_line_bytes, error=error)
    try:
        yield (line for _, line in lines)
    finally:
        lines.close()


def install_jsonargparse_limits() -> None:
    """Make jsonargparse's YAML loader (LightningCLI's ``--config``, every ``--key value``, nested
    ``class_path`` / ``init_args``) refuse alias bombs and over-deep documents (:func:`check_yaml`).

    Idempotent; called by :class:`~secure_train.commands.lightning_cli.SecureTrainCLI`.
    """
    import yaml
    from jsonargparse import get_loader, set_loader
    from jsonargparse._loaders_dumpers import get_yaml_default_loader  # the loader class jsonargparse uses

    current = get_loader("yaml")
    if getattr(current, "__secure_train_bounded__", False):
        return

    def bounded_yaml_load(value: str) -> Any:
        check_yaml(value, source="YAML value (command line or config)", loader_cls=get_yaml_default_loader())
        return current(value)

    bounded_yaml_load.__secure_train_bounded__ = True  # type: ignore[attr-defined]
    set_loader("yaml", bounded_yaml_load, (yaml.YAMLError,))


def sha256_file(path: PathLike, *, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 of a file, streamed in ``chunk_size`` pieces (constant memory).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as fh:
        ...     _ = fh.write(b"abc")
        >>> sha256_file(fh.name)[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    with Path(path).open("rb", buffering=0) as fh:
        while n := fh.readinto(view):  # type: ignore[attr-defined]
            h.update(view[:n])
    return h.hexdigest()
