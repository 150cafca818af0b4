"""The request log alone: rows taken from batches, sampling, partitions, a full buffer."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.data.schema import infer_schema
from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Prediction, Predictor
from readyml.serve import request_log
from readyml.serve.batching import Queued
from readyml.serve.request_log import RequestLog

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


def _requests(*requests: tuple[str | None, int], arrived_s: float = 0.0) -> list[Queued[Any, Any]]:
    """A batch's requests, in order: (id, or None or "" for one not logged; rows)."""
    return [
        Queued(part=None, rows=rows, future=cast(Any, None), arrived_s=arrived_s, tag=tag)
        for tag, rows in requests
    ]


def _record(
    log: RequestLog, predictor: Predictor, batch: Prediction, *requests: tuple[str | None, int]
) -> None:
    """Record one answered batch, its requests arrived 1.5 ms before it finished."""
    log.record_batch(predictor, batch, _requests(*requests, arrived_s=10.0), 10.0015)


def _logged(
    root: Path,
    predictor: Predictor,
    batches: list[tuple[Prediction, list[tuple[str | None, int]]]],
) -> pa.Table:
    """The table written for batches and their requests."""
    log = RequestLog(root=root)
    for batch, requests in batches:
        _record(log, predictor, batch, *requests)
    logged = sum(rows for _, requests in batches for tag, rows in requests if tag)
    assert log.flush() == logged
    [written] = root.rglob("part-*.parquet")
    table = pq.read_table(written)
    written.unlink()
    return table


def test_rows_are_taken_from_their_batches_in_the_order_recorded(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    first = np.array([[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]])
    second = np.array([[5.0, 5.0], [3.0, 3.0], [4.0, 4.0], [1.5, 1.0]])
    batches = [predictor.predict_input(first), predictor.predict_input(second)]
    # The second batch is recorded first, one request has two rows, and the first
    # batch's middle request is not logged.
    table = _logged(
        tmp_path,
        predictor,
        [
            (batches[1], [("d", 1), ("e", 2), ("f", 1)]),
            (batches[0], [("a", 1), (None, 1), ("c", 1)]),
        ],
    ).to_pydict()
    assert table["request_id"] == ["d", "e", "e", "f", "a", "c"]
    assert table["size"] == [5.0, 3.0, 4.0, 1.5, 1.0, 6.0]
    assert table["count"] == [5, 3, 4, 1, 1, 6]
    expected = [*batches[1].labels_list, batches[0].labels_list[0], batches[0].labels_list[2]]
    assert table["prediction"] == expected
    assert batches[1].proba is not None
    assert table["proba_y"][0] == batches[1].proba[0, 1]
    assert table["model"] == ["num"] * 6 and table["version"] == [3] * 6
    assert table["status"] == [200] * 6 and len(set(table["rss_mb"])) == 1
    assert table["rss_mb"][0] > 1.0  # the process's resident memory, in MB
    assert table["latency_ms"] == pytest.approx([1.5] * 6)  # arrival to prediction
    stamps = [stamp.timestamp() for stamp in table["ts"]]
    assert max(stamps) - min(stamps) < 1e-3 and abs(stamps[0] - time.time()) < 60


def test_a_request_with_an_empty_id_is_not_logged(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [2.0, 2.0]]))
    table = _logged(tmp_path, predictor, [(batch, [("", 1), ("b", 1)])]).to_pydict()
    assert table["request_id"] == ["b"] and table["size"] == [2.0]


def test_missing_integers_are_nulls_not_zeros(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    inputs = np.array([[1.0, np.nan], [2.0, 7.0]])
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batch = Prediction(labels, proba, labels.tolist(), 2, inputs)
    table = _logged(tmp_path, predictor, [(batch, [("r", 2)])]).to_pydict()
    assert table["count"] == [None, 7]


def test_columns_are_required_but_the_nullable_features(tmp_path: Path) -> None:
    frame = pd.DataFrame({"size": [1.0, 2.0, np.nan, 4.0], "count": [1, 2, 3, 4]})
    model = SklearnModel(estimator=LogisticRegression()).fit(frame.fillna(0), ["x", "x", "y", "y"])
    predictor = Predictor(
        model=model, name="num", version=1, signature=model.signature(), schema=infer_schema(frame)
    )
    batch = predictor.predict_input(np.array([[1.0, 1.0], [2.0, 2.0]]))
    schema = _logged(tmp_path, predictor, [(batch, [("a", 1), ("b", 1)])]).schema
    # "size" may be null in any file of this version, even one without a null.
    assert [field.name for field in schema if field.nullable] == ["size"]


def test_mixed_features_keep_their_types(tmp_path: Path) -> None:
    predictor = _mixed_predictor()
    parts = [
        predictor.from_records([{"size": 1.0, "city": "a", "count": 1}])[0],
        predictor.from_records([{"size": 4.0, "city": "b", "count": 4}])[0],
    ]
    batch = predictor.predict_parts(parts)
    table = _logged(tmp_path, predictor, [(batch, [(None, 1), ("b", 1)])]).to_pydict()
    assert table["city"] == ["b"]
    assert table["size"] == [4.0] and table["count"] == [4]
    table = _logged(tmp_path, predictor, [(batch, [("a", 1), ("b", 1)])]).to_pydict()
    assert table["city"] == ["a", "b"] and table["count"] == [1, 4]


def test_flush_writes_hour_partitions_readable_as_parquet(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    hour = float(int(time.time() // HOUR_S) * HOUR_S)
    for index, ts_s in enumerate([hour + 1.0, hour + HOUR_S + 1.0]):
        # Arrival and finish on a monotonic clock that reads the wall clock's seconds.
        requests = _requests((None, 1), ("r0", 1)) if index == 0 else _requests(("r1", 1))
        for request in requests:
            request.arrived_s = ts_s
        log.record_batch(predictor, batch, requests, time.time())
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
    log.record_batch(numeric, numeric_batch, _requests(("n0", 1), ("n1", 1)), 0.0)
    log.record_batch(mixed, mixed_batch, _requests(("m0", 1)), 0.0)
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
        _record(log, predictor, batch, ("r", 2))
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
        _record(log, predictor, batch, (f"r{index}", 2))
    assert log.dropped_rows == 4 and ("num", "dropped", 2) in outcomes
    assert log.flush() == 2 and log.written_rows == 2


def test_sampling_keeps_about_the_given_share(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path, sample_rate=0.25)
    for index in range(1000):
        _record(log, predictor, batch, (f"r{index}", 1), (f"s{index}", 1))
    assert 350 < log.flush() < 650
    # Only the sampled requests' rows were copied, not their whole batches.
    [written] = tmp_path.rglob("part-*.parquet")
    table = pq.read_table(written).to_pydict()
    assert [size for size in table["size"]] == [
        1.0 if tag.startswith("r") else 6.0 for tag in table["request_id"]
    ]


def test_every_row_in_order_is_taken_without_a_gather(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batches = [
        Prediction(labels, proba, labels.tolist(), 2, np.array([[1.0, 1.0], [2.0, np.nan]])),
        predictor.predict_input(np.array([[6.0, 6.0]])),
    ]
    table = _logged(
        tmp_path,
        predictor,
        [(batches[0], [("b0-o0", 1), ("b0-o1", 1)]), (batches[1], [("b1-o0", 1)])],
    )
    assert table.column("size").to_pylist() == [1.0, 2.0, 6.0]
    assert table.column("count").to_pylist() == [1, None, 6]
    assert table.column("request_id").to_pylist() == ["b0-o0", "b0-o1", "b1-o0"]


def test_sealed_and_unsealed_rows_are_written_together(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    _record(log, predictor, batch, ("early", 1), (None, 1))
    log.seal()
    _record(log, predictor, batch, (None, 1), ("late", 1))
    assert log.flush() == 2
    files = list(tmp_path.rglob("part-*.parquet"))
    assert len(files) == 1  # one partition: both handovers joined in one file
    table = pq.read_table(files[0])
    assert table.column("request_id").to_pylist() == ["early", "late"]
    assert table.column("size").to_pylist() == [1.0, 6.0]
    assert log.cpu_s > 0.0


def test_the_writer_thread_writes_every_sealed_row_once(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path, flush_interval_s=0.001)
    log.start()
    for index in range(0, 5000, 2):
        _record(log, predictor, batch, (f"r{index}", 1), (f"r{index + 1}", 1))
        if index % 50 == 0:
            log.seal()
    log.stop()
    files = tmp_path.rglob("part-*.parquet")
    ids = [i for f in files for i in pq.read_table(f).column("request_id").to_pylist()]
    assert sorted(ids) == sorted(f"r{index}" for index in range(5000))
    assert log.written_rows == 5000 and log.dropped_rows == 0


def test_written_rows_make_room_in_the_buffer(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path, buffer_rows=2)
    for round_ in range(3):
        _record(log, predictor, batch, (f"r{round_}", 2))
        assert log.flush() == 2
    assert log.dropped_rows == 0 and log.written_rows == 6


def test_a_row_that_cannot_be_converted_is_counted_not_raised(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    broken = Prediction(np.array(["x"]), None, ["x"], 1, np.array([["not", "numeric"]]))
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=tmp_path, on_outcome=lambda *args: outcomes.append(args))
    _record(log, predictor, broken, ("bad", 1))
    assert log.flush() == 0 and not list(tmp_path.rglob("*.parquet"))
    assert log.failed_rows == 1 and outcomes == [("num", "failed", 1)]


def test_long_runs_are_converted_in_pieces_and_written_as_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_log, "CONVERT_REQUESTS", 3)
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    for index in range(0, 10, 2):
        _record(log, predictor, batch, (f"r{index}", 1), (f"r{index + 1}", 1))
        log.seal()
    assert log.flush() == 10
    [written] = tmp_path.rglob("part-*.parquet")
    table = pq.read_table(written)
    assert table.column("request_id").to_pylist() == [f"r{index}" for index in range(10)]
    assert table.column("size").to_pylist() == [1.0, 6.0] * 5


def test_tables_of_one_write_do_not_share_a_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each run of a write is transposed into a kept buffer; writes reuse them.
    monkeypatch.setattr(request_log, "CONVERT_REQUESTS", 2)
    predictor = _numeric_predictor()
    log = RequestLog(root=tmp_path)
    for write in range(3):
        for index in range(3):
            value = float(10 * write + index)
            batch = predictor.predict_input(np.array([[value, value]]))
            _record(log, predictor, batch, (f"w{write}-{index}", 1))
            log.seal()
        assert log.flush() == 3
    files = sorted(tmp_path.rglob("part-*.parquet"))
    sizes = [size for file in files for size in pq.read_table(file).column("size").to_pylist()]
    assert len(files) == 3 and sorted(sizes) == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 20.0, 21.0, 22.0]


def test_the_writer_keeps_its_buffers_within_a_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    _record(log, predictor, batch, ("a", 1), ("b", 1))
    assert log.flush() == 2
    # Features and probabilities: two columns and 1,024 rows each, kept for the next write.
    assert sorted(buffer.nbytes for buffer in log._scratch.free) == [16384, 16384]
    monkeypatch.setattr(request_log, "SCRATCH_BYTES", 20_000)
    _record(log, predictor, batch, ("c", 1), ("d", 1))
    assert log.flush() == 2
    assert [buffer.nbytes for buffer in log._scratch.free] == [16384]


def test_a_failed_write_is_counted_and_leaves_no_file(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0]]))
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log folder should be")
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=blocker, on_outcome=lambda *args: outcomes.append(args))
    _record(log, predictor, batch, ("r", 1))
    assert log.flush() == 0
    assert log.failed_rows == 1 and outcomes == [("num", "failed", 1)]
    assert [path.name for path in tmp_path.iterdir()] == ["logs"]


def test_recording_lets_the_batch_go_and_its_rows_wait_for_the_write(
    tmp_path: Path,
) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    held = weakref.ref(batch)
    log = RequestLog(root=tmp_path)
    _record(log, predictor, batch, ("early", 2))
    log.seal()
    del batch
    gc.collect()
    assert held() is None  # the log keeps copies of the rows, not the batch
    assert not list(tmp_path.rglob("*.parquet"))
    late = predictor.predict_input(np.array([[3.0, 3.0]]))
    _record(log, predictor, late, ("late", 1))
    assert log.flush() == 3
    [written] = tmp_path.rglob("part-*.parquet")
    assert pq.read_table(written).column("request_id").to_pylist() == ["early"] * 2 + ["late"]


def test_caller_ids_keep_their_text_and_multi_row_requests_repeat_theirs(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]]))
    table = _logged(tmp_path, predictor, [(batch, [("café-1 ✓", 2), ("x y", 1)])])
    assert table.column("request_id").to_pylist() == ["café-1 ✓", "café-1 ✓", "x y"]


def test_an_id_that_is_not_text_is_counted_not_raised(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [2.0, 2.0]]))
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=tmp_path, on_outcome=lambda *args: outcomes.append(args))
    requests = _requests(("fine", 1), ("other", 1))
    requests[1].tag = 7  # not text: the whole batch's copy fails, counted
    log.record_batch(predictor, batch, requests, 10.0)
    assert log.flush() == 0
    assert log.failed_rows == 2 and outcomes == [("num", "failed", 2)]


def test_an_id_with_a_newline_fails_its_table_not_the_server(tmp_path: Path) -> None:
    # The server's ids are printable; one given through the Python API with a newline
    # cannot be told apart from two, so its table is counted failed.
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0]]))
    log = RequestLog(root=tmp_path)
    _record(log, predictor, batch, ("two\nlines", 1))
    assert log.flush() == 0 and log.failed_rows == 1


def test_labels_of_batches_with_different_widths_are_joined(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    short = Prediction(np.array(["x"]), None, ["x"], 1, np.array([[1.0, 1.0]]))
    long = Prediction(np.array(["longer"]), None, ["longer"], 1, np.array([[2.0, 2.0]]))
    table = _logged(tmp_path, predictor, [(short, [("a", 1)]), (long, [("b", 1)])])
    assert table.column("prediction").to_pylist() == ["x", "longer"]
