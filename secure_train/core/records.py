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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from secure_train.core.errors import ConfigError, DataError

__all__ = ["LABELS", "TextRecord", "detect_format", "iter_lines", "iter_rows", "parse_label", "read_records"]

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


LABELS = ("required", "optional")


def parse_label(value: Any, where: str, num_labels: int | None) -> int:
    """An integer label in ``[0, num_labels)`` from an ``int`` or a string of digits.

    >>> parse_label(" 1 ", "train.tsv:2", 2)
    1
    >>> parse_label("pos", "train.tsv:3", 2)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.DataError: train.tsv:3: label 'pos' is not an integer

    Raises:
        DataError: naming ``where``, when the value is not an integer or is out of range.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        label = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        label = int(value.strip())
    else:
        raise DataError(f"{where}: label {value!r} is not an integer")
    if label < 0 or (num_labels is not None and label >= num_labels):
        raise DataError(f"{where}: label {label} is out of range [0, {num_labels})")
    return label


def _label_or_none(value: Any, where: str, num_labels: int | None, required: bool) -> int | None:
    """:func:`parse_label`; without ``required`` (a scan reading any file) a bad label is ``None``."""
    try:
        return parse_label(value, where, num_labels)
    except DataError:
        if required:
            raise
        return None


def iter_rows(
    path: str | os.PathLike[str],
    *,
    text_column: str = "sentence",
    label_column: str | None = "label",
    completion_column: str | None = None,
    num_labels: int | None = None,
    fmt: str | None = None,
    header: bool = True,
    id_offset: int = 0,
    labels: str = "required",
    on_header: Callable[[list[str]], None] | None = None,
    on_line: Callable[[str], object] | None = None,
) -> Iterator[tuple[TextRecord, Any]]:
    """Stream ``(record, row)`` pairs: the :class:`TextRecord` and the parsed row it came from
    (the line for plain text, the JSON object, the list of CSV / TSV fields), so a writer can
    reproduce the other columns. Arguments as :func:`read_records`, and:

    Args:
        labels: ``"required"`` (a DataModule's data: a missing, non-integer or out-of-range label
            raises :class:`DataError`) or ``"optional"`` (a scan of any file: such a label, a
            missing label column, and any plain-text file give ``label=None``).
        on_header: called with the CSV / TSV header fields before the first row.
        on_line: called with each raw line read (progress bars).

    Raises:
        DataError: missing file or text column, bad label (``required``), wrong field count,
            invalid UTF-8 or JSON, a text that is not a string.
    """
    if labels not in LABELS:
        raise ConfigError(f"labels must be one of {LABELS}, got {labels!r}")
    kind = detect_format(path, fmt)
    return _rows(
        Path(path), kind, text_column, label_column, completion_column, num_labels, header, id_offset,
        labels == "required", on_header, on_line,
    )  # fmt: skip


def _rows(
    path: Path,
    kind: str,
    text_column: str,
    label_column: str | None,
    completion_column: str | None,
    num_labels: int | None,
    header: bool,
    id_offset: int,
    required: bool,
    on_header: Callable[[list[str]], None] | None,
    on_line: Callable[[str], object] | None,
) -> Iterator[tuple[TextRecord, Any]]:
    name = path.name
    n = 0
    if kind == "text" and label_column is not None and required:
        raise DataError(f"{path}: plain-text files carry no labels; set label_column to None")

    def make(text: Any, label: Any, completion: Any, lineno: int, has_label: bool) -> TextRecord:
        where = f"{path}:{lineno}"
        if not isinstance(text, str):
            raise DataError(f"{where}: text {text!r} is not a string")
        parsed = _label_or_none(label, where, num_labels, required) if label_column is not None and has_label else None
        if completion is not None and not isinstance(completion, str):
            raise DataError(f"{where}: completion {completion!r} is not a string")
        return TextRecord(text, parsed, id_offset + n, f"{name}:{lineno}", completion)

    delimiter = "\t" if kind == "tsv" else ","
    quoting: Literal[0, 3] = csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL
    columns: list[str] | None = None
    for lineno, line in iter_lines(path):
        if on_line is not None:
            on_line(line)
        if not line.strip():
            continue
        row: Any
        if kind == "text":
            rec, row = make(line, None, None, lineno, False), line
        elif kind == "jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for col in (text_column, label_column if required else None, completion_column):
                if col is not None and col not in obj:
                    raise DataError(f"{path}:{lineno}: missing key {col!r} (keys: {sorted(obj)})")
            completion = obj.get(completion_column) if completion_column else None
            has_label = label_column is not None and label_column in obj
            rec = make(obj[text_column], obj.get(label_column) if has_label else None, completion, lineno, has_label)
            row = obj
        else:
            if kind == "tsv" and "\r" not in line and len(line) <= csv.field_size_limit():
                fields = line.split("\t")  # what csv reads from one unquoted line, without a reader per line
            else:
                fields = next(csv.reader(io.StringIO(line), delimiter=delimiter, quoting=quoting))
            if columns is None:
                if header:
                    columns = fields
                    for col in (text_column, label_column if required else None, completion_column):
                        if col is not None and col not in columns:
                            raise DataError(f"{path}:{lineno}: missing column {col!r} (header: {columns})")
                    if on_header is not None:
                        on_header(fields)
                    continue
                columns = [str(i) for i in range(len(fields))]
            if len(fields) != len(columns):
                raise DataError(f"{path}:{lineno}: expected {len(columns)} fields, found {len(fields)}")
            values = dict(zip(columns, fields, strict=True))
            has_label = label_column is not None and label_column in values
            rec = make(
                values[text_column],
                values[label_column] if has_label else None,  # type: ignore[index]
                values[completion_column] if completion_column else None,
                lineno,
                has_label,
            )
            row = fields
        yield rec, row
        n += 1


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
    records: list[TextRecord] = []
    rows = iter_rows(
        path,
        text_column=text_column,
        label_column=label_column,
        completion_column=completion_column,
        num_labels=num_labels,
        fmt=fmt,
        header=header,
        id_offset=id_offset,
    )
    for rec, _ in rows:
        records.append(rec)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataError(f"{Path(path)}: no data rows")
    return records
