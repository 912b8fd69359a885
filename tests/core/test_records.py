import json
import re

import pytest

from secure_train.core.arrow_records import read_arrow
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.records import iter_rows, parse_label, read_records


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_tsv_sst2_layout(tmp_path):
    path = write(tmp_path, "t.tsv", 'sentence\tlabel\nit \'s "fine"\t1\nbad\t0\n')
    recs = read_records(path, num_labels=2)
    assert [(r.text, r.label, r.sample_id, r.source) for r in recs] == [
        ('it \'s "fine"', 1, 0, "t.tsv:2"),
        ("bad", 0, 1, "t.tsv:3"),
    ]


def test_csv_and_jsonl(tmp_path):
    csv_path = write(tmp_path, "d.csv", 'text,y\n"a, b",1\nc,0\n')
    assert [r.text for r in read_records(csv_path, text_column="text", label_column="y")] == ["a, b", "c"]
    jl = write(tmp_path, "d.jsonl", json.dumps({"text": "x", "label": 1}) + "\n")
    assert read_records(jl, text_column="text")[0].label == 1


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("missing.tsv", None, "no such file"),
        ("col.tsv", "text\tlabel\na\t1\n", "missing column 'sentence'"),
        ("lab.tsv", "sentence\tlabel\na\tpos\n", r"lab.tsv:2: label 'pos' is not an integer"),
        ("range.tsv", "sentence\tlabel\na\t1\nb\t5\n", r"range.tsv:3: label 5 is out of range"),
        ("empty.tsv", "", "no data rows"),
        ("header.tsv", "sentence\tlabel\n", "no data rows"),
        ("fields.tsv", "sentence\tlabel\na\t1\nb\t0\textra\n", r"fields.tsv:3: expected 2 fields, found 3"),
        ("utf.tsv", b"sentence\tlabel\nok\t1\n\xff\xfe\t0\n", r"utf.tsv:3: invalid UTF-8"),
        ("bad.jsonl", '{"sentence": "a", "label": 1}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
        ("key.jsonl", '{"sentence": "a"}\n', r"key.jsonl:1: missing key 'label'"),
        ("x.parquet", "a", "cannot tell the format"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, name, content, match):
    path = tmp_path / name if content is None else write(tmp_path, name, content)
    with pytest.raises(DataError, match=match):
        read_records(path, num_labels=2)


def test_optional_labels_stream_rows_for_scans(tmp_path):
    """A scan reads any file: odd or missing labels are no label, rows come back for rewriting."""
    path = write(tmp_path, "s.tsv", "sentence\tlabel\na\t1\nb\tpos\nc\t-1\nd\t\n")
    assert [r.label for r, _ in iter_rows(path, labels="optional")] == [1, None, None, None]
    with pytest.raises(DataError, match="s.tsv:3: label 'pos'"):
        list(iter_rows(path))
    headers = []
    nolabel = write(tmp_path, "n.tsv", "sentence\tother\na\tx\n")
    pairs = iter_rows(nolabel, labels="optional", on_header=headers.append)
    rows = [(r.text, r.label, r.source, row) for r, row in pairs]
    assert rows == [("a", None, "n.tsv:2", ["a", "x"])] and headers == [["sentence", "other"]]
    text = write(tmp_path, "t.txt", "one\n\ntwo\n")
    pairs = iter_rows(text, labels="optional", id_offset=5)
    assert [(r.text, r.sample_id) for r, _ in pairs] == [("one", 5), ("two", 6)]
    jl = write(tmp_path, "j.jsonl", '{"sentence": "a"}\n{"sentence": "b", "label": 0, "k": 1}\n')
    assert [(r.label, row) for r, row in iter_rows(jl, labels="optional")] == [
        (None, {"sentence": "a"}),
        (0, {"sentence": "b", "label": 0, "k": 1}),
    ]
    with pytest.raises(DataError, match="k.jsonl:1: missing key 'sentence'"):
        list(iter_rows(write(tmp_path, "k.jsonl", '{"text": "a"}\n'), labels="optional"))
    with pytest.raises(ConfigError, match="labels must be one of"):
        iter_rows(path, labels="lenient")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (" 0 ", 0), ("1", 1), (True, "label True is not an integer"), ("1.0", "label '1.0' is not an integer"),
     (1.0, "label 1.0 is not an integer"), (None, "label None is not an integer"), ("-1", "label -1 is out of range"),
     (2, "label 2 is out of range [0, 2)")],
)
def test_parse_label(value, expected):
    if isinstance(expected, int):
        assert parse_label(value, "f.tsv:2", 2) == expected
    else:
        with pytest.raises(DataError, match="^" + re.escape(f"f.tsv:2: {expected}")):
            parse_label(value, "f.tsv:2", 2)


@pytest.mark.parametrize("label", ["pos", "-1", "7", "1.5", "", " 1 "])
def test_memory_and_arrow_readers_parse_labels_alike(tmp_path, label):
    """Both readers share one label parser: the same label, or the same message for the same row."""
    path = write(tmp_path, "l.tsv", f"sentence\tlabel\na\t0\nb\t{label}\n")
    outcomes = []
    for read in (read_records, lambda p, **kw: list(read_arrow(p, cache_dir=str(tmp_path / "c"), **kw))):
        try:
            outcomes.append([r.label for r in read(path, num_labels=2)])
        except DataError as err:
            assert "l.tsv:3: label " in str(err)
            outcomes.append(str(err).split("l.tsv:3: ", 1)[1])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == [0, 1] if label == " 1 " else isinstance(outcomes[0], str)
