"""Reading labeled and unlabeled text records from CSV / TSV / JSONL / plain text.

Every record keeps where it came from (file and line) and a stable integer ``sample_id``
(its position in the file's data rows, plus an offset), so that a monitor, a scanner or a
privacy audit can name it.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "train.tsv")
    >>> _ = open(path, "w").write("sentence\\tlabel\\na fine film\\t1\\ndull\\t0\\n")
    >>> [(r.text, r.label, r.sample_id, r.source) for r in read_records(path)]
    [('a fine film', 1, 0, 'train.tsv:2'), ('dull', 0, 1, 'train.tsv:3')]
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from secure_train.core.errors import DataError

__all__ = ["TextRecord", "detect_format", "iter_lines", "read_records"]

_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "text"}


@dataclass
class TextRecord:
    """One example: text, optional label and completion, its id and its origin.

    ``meta`` holds what later stages add (``poisoned``, ``attack_family``, ...).
    """

    text: str
    label: int | None
    sample_id: int
    source: str
    completion: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``tsv``, ``csv``, ``jsonl`` or ``text``, from ``fmt`` or the file's extension."""
    if fmt is not None:
        if fmt not in set(_FORMATS.values()):
            raise DataError(f"unknown data format {fmt!r}; expected one of {sorted(set(_FORMATS.values()))}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(f"{path}: cannot tell the format from the extension {suffix!r}; pass format=")
    return _FORMATS[suffix]


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line, decoding UTF-8 line by line so errors name the line."""
    from secure_train.core.safe_io import iter_lines as bounded_lines  # streamed, bounded line length

    for lineno, line in bounded_lines(path, allow_nul=True, error=DataError):
        yield lineno, line.rstrip("\r")


def _parse_label(value: Any, where: str, num_labels: int | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        label = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        label = int(value.strip())
    else:
        raise DataError(f"{where}: label {value!r} is not an integer")
    if label < 0 or (num_labels is not None and label >= num_labels):
        raise DataError(f"{where}: label {label} is out of range [0, {num_labels})")
    return label


def read_records(
    path: str | os.PathLike[str],
    *,
    text_column: str = "sentence",
    label_column: str | None = "label",
    completion_column: str | None = None,
    num_labels: int | None = None,
    fmt: str | None = None,
    header: bool = True,
    id_offset: int = 0,
    limit: int | None = None,
) -> list[TextRecord]:
    """Read a data file into :class:`TextRecord`s, failing with one line that names file and line.

    Args:
        path: CSV, TSV, JSONL or plain-text file (one example per line).
        text_column: column / key holding the text (ignored for plain text).
        label_column: column / key holding an integer label, or ``None`` for unlabeled data.
        completion_column: optional key of a target continuation (causal LMs).
        num_labels: labels must lie in ``[0, num_labels)`` when given.
        fmt: force a format instead of guessing it from the extension.
        header: CSV / TSV files start with a header row naming the columns.
        id_offset: added to the row index to form ``sample_id``.
        limit: read at most this many records.

    Raises:
        DataError: missing file or column, bad label, wrong field count, invalid UTF-8, no data.
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    name = path.name
    records: list[TextRecord] = []
    lines = iter_lines(path)

    def add(text: Any, label: Any, completion: Any, lineno: int) -> None:
        where = f"{path}:{lineno}"
        if not isinstance(text, str):
            raise DataError(f"{where}: text {text!r} is not a string")
        parsed = _parse_label(label, where, num_labels) if label_column is not None else None
        if completion is not None and not isinstance(completion, str):
            raise DataError(f"{where}: completion {completion!r} is not a string")
        records.append(TextRecord(text, parsed, id_offset + len(records), f"{name}:{lineno}", completion))

    if kind == "text":
        if label_column is not None:
            raise DataError(f"{path}: plain-text files carry no labels; set label_column to None")
        for lineno, line in lines:
            if line.strip():
                add(line, None, None, lineno)
            if limit is not None and len(records) >= limit:
                break
    elif kind == "jsonl":
        for lineno, line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for col in (text_column, label_column, completion_column):
                if col is not None and col not in obj:
                    raise DataError(f"{path}:{lineno}: missing key {col!r} (keys: {sorted(obj)})")
            add(
                obj[text_column],
                obj[label_column] if label_column else None,
                obj[completion_column] if completion_column else None,
                lineno,
            )
            if limit is not None and len(records) >= limit:
                break
    else:
        delimiter = "\t" if kind == "tsv" else ","
        quoting: Literal[0, 3] = csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL
        columns: list[str] | None = None
        for lineno, line in lines:
            if not line.strip():
                continue
            fields = next(csv.reader(io.StringIO(line), delimiter=delimiter, quoting=quoting))
            if columns is None:
                if header:
                    columns = fields
                    for col in (text_column, label_column, completion_column):
                        if col is not None and col not in columns:
                            raise DataError(f"{path}:{lineno}: missing column {col!r} (header: {columns})")
                    continue
                columns = [str(i) for i in range(len(fields))]
            if len(fields) != len(columns):
                raise DataError(f"{path}:{lineno}: expected {len(columns)} fields, found {len(fields)}")
            row = dict(zip(columns, fields, strict=True))
            add(
                row[text_column],
                row[label_column] if label_column else None,
                row[completion_column] if completion_column else None,
                lineno,
            )
            if limit is not None and len(records) >= limit:
                break
    if not records:
        raise DataError(f"{path}: no data rows")
    return records
