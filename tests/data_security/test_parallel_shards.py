"""A worker's shard reader: the same records, ids, sources and errors as the Arrow reader, batch by batch."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from secure_train.core import arrow_records
from secure_train.core.arrow_records import read_arrow
from secure_train.core.errors import DataError
from secure_train.data_security.parallel_shards import read_shard

ROWS = [{"sentence": f"row {i}", "label": i % 2} for i in range(7)]


def shard_rows(path, kind, offset=0, **columns):
    out = []
    for batch in read_shard({"path": str(path), "kind": kind, "offset": offset}, **columns):
        out += list(zip(batch["text"], batch["label"], batch["sample_id"], batch["source"], strict=True))
    return out


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(arrow_records, "_ROWS", 3)  # 7 rows: batches of 3, 3 and 1


@pytest.mark.usefixtures("small_batches")
def test_shard_rows_match_arrow_reader_across_batches(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    rows = shard_rows(path, "parquet", offset=10)
    arrow = read_arrow(path, id_offset=10, num_labels=2, cache_dir=str(tmp_path / "c"))
    assert rows == [(r.text, r.label, r.sample_id, r.source) for r in arrow]
    assert [r[3] for r in rows] == [f"part.parquet:{i}" for i in range(7)]  # parquet: row index
    assert [r[2] for r in rows] == list(range(10, 17))


def test_shard_sources_name_file_lines(tmp_path):
    path = tmp_path / "part.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in ROWS))
    rows = shard_rows(path, "tsv")
    assert [r[3] for r in rows] == [f"part.tsv:{i}" for i in range(2, 9)]  # after the header
    assert rows[3][:3] == ("row 3", 1, 3)


@pytest.mark.usefixtures("small_batches")
def test_shard_errors_name_the_row_of_a_later_batch(tmp_path):
    path = tmp_path / "bad.parquet"
    rows = [dict(r) for r in ROWS]
    rows[4]["label"] = "pos"
    rows = [{"sentence": r["sentence"], "label": str(r["label"])} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=r"^bad\.parquet:4: label 'pos' is not an integer$"):
        shard_rows(path, "parquet")
    with pytest.raises(DataError, match=r"missing column 'text'"):
        shard_rows(path, "parquet", text_column="text")
