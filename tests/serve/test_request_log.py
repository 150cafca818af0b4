"""The request log alone: rows gathered from batches, sampling, partitions, a full buffer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Prediction, Predictor
from readyml.serve.request_log import LogEntry, RequestLog, to_table

HOUR_S = 3600.0


def _numeric_predictor() -> Predictor:
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "count": [1, 2, 3, 4, 5, 6]})
    model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["x", "x", "x", "y", "y", "y"])
    return Predictor(model=model, name="num", version=3, signature=model.signature())


def _mixed_predictor() -> Predictor:
    frame = pd.DataFrame(
        {"size": [1.0, 2.0, 3.0, 4.0], "city": ["a", "b", "a", "b"], "count": [1, 2, 3, 4]}
    )
    model = SklearnModel(estimator=LogisticRegression()).fit(frame, ["x", "x", "y", "y"])
    return Predictor(model=model, name="mixed", version=1, signature=model.signature())


def _entries(
    predictor: Predictor, batches: list[Prediction], requests: list[tuple[int, int, int]]
) -> list[LogEntry]:
    """Entries for (batch, offset, rows) triples, with ids naming them."""
    now = time.time()
    return [
        LogEntry(predictor, batches[b], offset, rows, f"b{b}-o{offset}", now, 1.5, 200)
        for b, offset, rows in requests
    ]


def test_rows_are_gathered_from_their_batches_in_request_order() -> None:
    predictor = _numeric_predictor()
    first = np.array([[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]])
    second = np.array([[5.0, 5.0], [3.0, 3.0], [4.0, 4.0], [1.5, 1.0]])
    batches = [predictor.predict_input(first), predictor.predict_input(second)]
    # The second batch's requests come first, one request has two rows, and the first
    # batch's middle request was not sampled.
    requests = [(1, 0, 1), (1, 1, 2), (0, 0, 1), (0, 2, 1), (1, 3, 1)]
    table = to_table(_entries(predictor, batches, requests), rss_mb=12.0).to_pydict()
    assert table["request_id"] == ["b1-o0", "b1-o1", "b1-o1", "b0-o0", "b0-o2", "b1-o3"]
    assert table["size"] == [5.0, 3.0, 4.0, 1.0, 6.0, 1.5]
    assert table["count"] == [5, 3, 4, 1, 6, 1]
    expected = [batches[b].labels_list[o + i] for b, o, n in requests for i in range(n)]
    assert table["prediction"] == expected
    assert batches[1].proba is not None
    assert table["proba_y"][0] == batches[1].proba[0, 1]
    assert table["model"] == ["num"] * 6 and table["version"] == [3] * 6
    assert table["status"] == [200] * 6 and table["rss_mb"] == [12.0] * 6


def test_missing_integers_are_nulls_not_zeros() -> None:
    predictor = _numeric_predictor()
    inputs = np.array([[1.0, np.nan], [2.0, 7.0]])
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batch = Prediction(labels, proba, labels.tolist(), 2, inputs)
    table = to_table(_entries(predictor, [batch], [(0, 0, 2)])).to_pydict()
    assert table["count"] == [None, 7]


def test_mixed_features_keep_their_types() -> None:
    predictor = _mixed_predictor()
    parts = [
        predictor.from_records([{"size": 1.0, "city": "a", "count": 1}])[0],
        predictor.from_records([{"size": 4.0, "city": "b", "count": 4}])[0],
    ]
    batch = predictor.predict_parts(parts)
    table = to_table(_entries(predictor, [batch], [(0, 1, 1), (0, 0, 1)])).to_pydict()
    assert table["city"] == ["b", "a"]
    assert table["size"] == [4.0, 1.0] and table["count"] == [4, 1]


def test_flush_writes_hour_partitions_readable_as_parquet(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    hour = float(int(time.time() // HOUR_S) * HOUR_S)
    for index, ts_s in enumerate([hour + 1.0, hour + HOUR_S + 1.0]):
        log.record(LogEntry(predictor, batch, index, 1, f"r{index}", ts_s, 1.0, 200))
    assert log.flush() == 2
    files = sorted((tmp_path / "model=num" / "version=3").glob("hour=*/part-*.parquet"))
    assert len(files) == 2 and len({f.parent.name for f in files}) == 2
    assert [pq.read_table(f).column("request_id").to_pylist() for f in files] == [["r0"], ["r1"]]
    assert not list(tmp_path.rglob("*.tmp"))


def test_each_model_version_gets_its_own_partition(tmp_path: Path) -> None:
    numeric, mixed = _numeric_predictor(), _mixed_predictor()
    numeric_batch = numeric.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    frame = pd.DataFrame({"size": [2.0], "city": ["b"], "count": [7]})
    mixed_batch = mixed.predict_input(frame)
    log = RequestLog(root=tmp_path)
    now = time.time()
    log.record(LogEntry(numeric, numeric_batch, 0, 1, "n0", now, 1.0, 200))
    log.record(LogEntry(mixed, mixed_batch, 0, 1, "m0", now, 1.0, 200))
    log.record(LogEntry(numeric, numeric_batch, 1, 1, "n1", now, 1.0, 200))
    assert log.flush() == 3
    [numeric_file] = (tmp_path / "model=num").rglob("part-*.parquet")
    [mixed_file] = (tmp_path / "model=mixed").rglob("part-*.parquet")
    numeric_rows = pq.read_table(numeric_file).to_pydict()
    mixed_rows = pq.read_table(mixed_file).to_pydict()
    assert numeric_rows["request_id"] == ["n0", "n1"] and numeric_rows["size"] == [1.0, 6.0]
    assert mixed_rows["request_id"] == ["m0"] and mixed_rows["city"] == ["b"]


def test_files_use_the_chosen_codec(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    for codec, expected in [("snappy", "SNAPPY"), ("none", "UNCOMPRESSED"), ("zstd", "ZSTD")]:
        log = RequestLog(root=tmp_path / codec, compression=codec)
        log.record(LogEntry(predictor, batch, 0, 2, "r", time.time(), 1.0, 200))
        assert log.flush() == 2
        [written] = (tmp_path / codec).rglob("part-*.parquet")
        metadata = pq.ParquetFile(written).metadata
        assert metadata.row_group(0).column(0).compression == expected


def test_a_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=tmp_path, buffer_rows=3, on_outcome=lambda *args: outcomes.append(args))
    for index in range(3):
        log.record(LogEntry(predictor, batch, 0, 2, f"r{index}", time.time(), 1.0, 200))
    assert log.dropped_rows == 4 and ("num", "dropped", 2) in outcomes
    assert log.flush() == 2 and log.written_rows == 2


def test_sampling_keeps_about_the_given_share(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0]]))
    log = RequestLog(root=tmp_path, sample_rate=0.25)
    for index in range(2000):
        log.record(LogEntry(predictor, batch, 0, 1, f"r{index}", time.time(), 1.0, 200))
    assert 350 < log.flush() < 650


def test_every_row_in_order_is_taken_without_a_gather() -> None:
    predictor = _numeric_predictor()
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batches = [
        Prediction(labels, proba, labels.tolist(), 2, np.array([[1.0, 1.0], [2.0, np.nan]])),
        predictor.predict_input(np.array([[6.0, 6.0]])),
    ]
    table = to_table(_entries(predictor, batches, [(0, 0, 1), (0, 1, 1), (1, 0, 1)]))
    assert table.column("size").to_pylist() == [1.0, 2.0, 6.0]
    assert table.column("count").to_pylist() == [1, None, 6]
    assert table.column("request_id").to_pylist() == ["b0-o0", "b0-o1", "b1-o0"]


def test_compacted_rows_are_written_with_the_rest(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    log.record(LogEntry(predictor, batch, 0, 1, "early", time.time(), 1.0, 200))
    log.compact(min_rows=2)
    assert log.compact_cpu_s == 0.0  # one row waits: left to the next check or the flush
    log.compact()
    log.record(LogEntry(predictor, batch, 1, 1, "late", time.time(), 1.0, 200))
    assert log.compact_cpu_s > 0.0
    assert log.flush() == 2
    files = list(tmp_path.rglob("part-*.parquet"))
    assert len(files) == 1  # one partition: the compacted table and the rest in one file
    table = pq.read_table(files[0])
    assert table.column("request_id").to_pylist() == ["early", "late"]
    assert table.column("size").to_pylist() == [1.0, 6.0]


def test_a_row_that_cannot_be_converted_is_counted_not_raised(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    broken = Prediction(np.array(["x"]), None, ["x"], 1, np.array([["not", "numeric"]]))
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=tmp_path, on_outcome=lambda *args: outcomes.append(args))
    log.record(LogEntry(predictor, broken, 0, 1, "bad", time.time(), 1.0, 200))
    log.compact()
    assert log.failed_rows == 1 and outcomes == [("num", "failed", 1)]
    assert log.flush() == 0 and not list(tmp_path.rglob("*.parquet"))
