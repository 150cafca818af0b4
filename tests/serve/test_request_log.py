"""The request log alone: rows gathered from batches, sampling, partitions, a full buffer."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from readyml.flavors.sklearn import SklearnModel
from readyml.predict import Prediction, Predictor
from readyml.serve import request_log
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


def _logged(
    root: Path,
    predictor: Predictor,
    batches: list[Prediction],
    requests: list[tuple[int, int, int]],
) -> pa.Table:
    """The table written for (batch, offset, rows) requests, with ids naming them."""
    log = RequestLog(root=root)
    now = time.time()
    for b, offset, rows in requests:
        log.record(predictor, batches[b], offset, rows, f"b{b}-o{offset}", now, 1.5, 200)
    assert log.flush() == sum(rows for _, _, rows in requests)
    [written] = root.rglob("part-*.parquet")
    table = pq.read_table(written)
    written.unlink()
    return table


def test_rows_are_gathered_from_their_batches_in_request_order(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    first = np.array([[1.0, 1.0], [2.0, 2.0], [6.0, 6.0]])
    second = np.array([[5.0, 5.0], [3.0, 3.0], [4.0, 4.0], [1.5, 1.0]])
    batches = [predictor.predict_input(first), predictor.predict_input(second)]
    # The second batch's requests come first, one request has two rows, and the first
    # batch's middle request was not sampled.
    requests = [(1, 0, 1), (1, 1, 2), (0, 0, 1), (0, 2, 1), (1, 3, 1)]
    table = _logged(tmp_path, predictor, batches, requests).to_pydict()
    assert table["request_id"] == ["b1-o0", "b1-o1", "b1-o1", "b0-o0", "b0-o2", "b1-o3"]
    assert table["size"] == [5.0, 3.0, 4.0, 1.0, 6.0, 1.5]
    assert table["count"] == [5, 3, 4, 1, 6, 1]
    expected = [batches[b].labels_list[o + i] for b, o, n in requests for i in range(n)]
    assert table["prediction"] == expected
    assert batches[1].proba is not None
    assert table["proba_y"][0] == batches[1].proba[0, 1]
    assert table["model"] == ["num"] * 6 and table["version"] == [3] * 6
    assert table["status"] == [200] * 6 and len(set(table["rss_mb"])) == 1
    assert table["rss_mb"][0] > 1.0  # the process's resident memory, in MB


def test_missing_integers_are_nulls_not_zeros(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    inputs = np.array([[1.0, np.nan], [2.0, 7.0]])
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batch = Prediction(labels, proba, labels.tolist(), 2, inputs)
    table = _logged(tmp_path, predictor, [batch], [(0, 0, 2)]).to_pydict()
    assert table["count"] == [None, 7]


def test_mixed_features_keep_their_types(tmp_path: Path) -> None:
    predictor = _mixed_predictor()
    parts = [
        predictor.from_records([{"size": 1.0, "city": "a", "count": 1}])[0],
        predictor.from_records([{"size": 4.0, "city": "b", "count": 4}])[0],
    ]
    batch = predictor.predict_parts(parts)
    table = _logged(tmp_path, predictor, [batch], [(0, 1, 1), (0, 0, 1)]).to_pydict()
    assert table["city"] == ["b", "a"]
    assert table["size"] == [4.0, 1.0] and table["count"] == [4, 1]


def test_flush_writes_hour_partitions_readable_as_parquet(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    hour = float(int(time.time() // HOUR_S) * HOUR_S)
    for index, ts_s in enumerate([hour + 1.0, hour + HOUR_S + 1.0]):
        log.record(predictor, batch, index, 1, f"r{index}", ts_s, 1.0, 200)
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
    log.record(numeric, numeric_batch, 0, 1, "n0", now, 1.0, 200)
    log.record(mixed, mixed_batch, 0, 1, "m0", now, 1.0, 200)
    log.record(numeric, numeric_batch, 1, 1, "n1", now, 1.0, 200)
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
        log.record(predictor, batch, 0, 2, "r", time.time(), 1.0, 200)
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
        log.record(predictor, batch, 0, 2, f"r{index}", time.time(), 1.0, 200)
    assert log.dropped_rows == 4 and ("num", "dropped", 2) in outcomes
    assert log.flush() == 2 and log.written_rows == 2


def test_sampling_keeps_about_the_given_share(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0]]))
    log = RequestLog(root=tmp_path, sample_rate=0.25)
    for index in range(2000):
        log.record(predictor, batch, 0, 1, f"r{index}", time.time(), 1.0, 200)
    assert 350 < log.flush() < 650


def test_every_row_in_order_is_taken_without_a_gather(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    labels = np.array(["x", "y"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    batches = [
        Prediction(labels, proba, labels.tolist(), 2, np.array([[1.0, 1.0], [2.0, np.nan]])),
        predictor.predict_input(np.array([[6.0, 6.0]])),
    ]
    table = _logged(tmp_path, predictor, batches, [(0, 0, 1), (0, 1, 1), (1, 0, 1)])
    assert table.column("size").to_pylist() == [1.0, 2.0, 6.0]
    assert table.column("count").to_pylist() == [1, None, 6]
    assert table.column("request_id").to_pylist() == ["b0-o0", "b0-o1", "b1-o0"]


def test_sealed_and_unsealed_rows_are_written_together(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    log.record(predictor, batch, 0, 1, "early", time.time(), 1.0, 200)
    log.seal()
    log.record(predictor, batch, 1, 1, "late", time.time(), 1.0, 200)
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
    for index in range(5000):
        log.record(predictor, batch, index % 2, 1, f"r{index}", time.time(), 1.0, 200)
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
        log.record(predictor, batch, 0, 2, f"r{round_}", time.time(), 1.0, 200)
        assert log.flush() == 2
    assert log.dropped_rows == 0 and log.written_rows == 6


def test_a_row_that_cannot_be_converted_is_counted_not_raised(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    broken = Prediction(np.array(["x"]), None, ["x"], 1, np.array([["not", "numeric"]]))
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=tmp_path, on_outcome=lambda *args: outcomes.append(args))
    log.record(predictor, broken, 0, 1, "bad", time.time(), 1.0, 200)
    assert log.flush() == 0 and not list(tmp_path.rglob("*.parquet"))
    assert log.failed_rows == 1 and outcomes == [("num", "failed", 1)]


def test_long_runs_are_converted_in_pieces_and_written_as_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request_log, "CONVERT_REQUESTS", 3)
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    log = RequestLog(root=tmp_path)
    for index in range(10):
        log.record(predictor, batch, index % 2, 1, f"r{index}", time.time(), 1.0, 200)
        if index % 2:
            log.seal()
    assert log.flush() == 10
    [written] = tmp_path.rglob("part-*.parquet")
    table = pq.read_table(written)
    assert table.column("request_id").to_pylist() == [f"r{index}" for index in range(10)]
    assert table.column("size").to_pylist() == [1.0, 6.0] * 5


def test_a_failed_write_is_counted_and_leaves_no_file(tmp_path: Path) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0]]))
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log folder should be")
    outcomes: list[tuple[str, str, int]] = []
    log = RequestLog(root=blocker, on_outcome=lambda *args: outcomes.append(args))
    log.record(predictor, batch, 0, 1, "r", time.time(), 1.0, 200)
    assert log.flush() == 0
    assert log.failed_rows == 1 and outcomes == [("num", "failed", 1)]
    assert [path.name for path in tmp_path.iterdir()] == ["logs"]


def test_a_conversion_lets_the_batches_go_and_its_rows_wait_for_the_write(
    tmp_path: Path,
) -> None:
    predictor = _numeric_predictor()
    batch = predictor.predict_input(np.array([[1.0, 1.0], [6.0, 6.0]]))
    held = weakref.ref(batch)
    log = RequestLog(root=tmp_path)
    log.record(predictor, batch, 0, 2, "early", time.time(), 1.0, 200)
    log.seal()
    log.convert_sealed()
    del batch
    gc.collect()
    assert held() is None  # the log keeps a table, not the batch
    assert not list(tmp_path.rglob("*.parquet"))
    late = predictor.predict_input(np.array([[3.0, 3.0]]))
    log.record(predictor, late, 0, 1, "late", time.time(), 1.0, 200)
    assert log.flush() == 3
    [written] = tmp_path.rglob("part-*.parquet")
    assert pq.read_table(written).column("request_id").to_pylist() == ["early"] * 2 + ["late"]
