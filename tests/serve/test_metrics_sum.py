"""Summing the replicas' Prometheus expositions into the one a scrape answers."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from readyml.serve.metrics import ServerMetrics
from readyml.serve.metrics_sum import sum_expositions


def _replica(requests: int, queue_rows: int, served: list[tuple[str, str, float]]) -> str:
    metrics = ServerMetrics()
    for _ in range(requests):
        metrics.count("iris", "1", "/predict", 200, 0.003)
    metrics.reject("iris", "invalid")
    metrics.batch("iris", rows=4, service_s=0.001, queue_rows=queue_rows)
    metrics.served = lambda: served
    return metrics.render().decode()


def _samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_counters_and_histograms_are_summed_and_gauges_over_the_live_replicas() -> None:
    a = _replica(3, queue_rows=2, served=[("iris", "1", 0.5)])
    b = _replica(5, queue_rows=7, served=[("iris", "1", 0.9), ("iris", "2", 0.2)])
    ended = _replica(11, queue_rows=100, served=[("iris", "3", 4.0)])
    samples = _samples(sum_expositions([a, b], ended=[ended]))
    request = {"model": "iris", "version": "1", "route": "/predict"}
    assert _value(samples, "readyml_requests_total", **request, status="200") == 19
    assert _value(samples, "readyml_request_latency_seconds_count", **request) == 19
    assert _value(samples, "readyml_request_latency_seconds_bucket", **request, le="0.005") == 19
    assert _value(samples, "readyml_request_latency_seconds_bucket", **request, le="0.002") == 0
    assert _value(samples, "readyml_rejected_requests_total", model="iris", reason="invalid") == 3
    assert _value(samples, "readyml_batch_size_rows_sum", model="iris") == 12
    # What is waiting now is in the live replicas only; an ended one serves nothing.
    assert _value(samples, "readyml_queue_rows", model="iris") == 9
    loads = {k[1]: v for k, v in samples.items() if k[0] == "readyml_model_load_seconds"}
    assert loads == {
        (("model", "iris"), ("version", "1")): 0.9,
        (("model", "iris"), ("version", "2")): 0.2,
    }


def test_created_timestamps_keep_the_earliest() -> None:
    first = _replica(1, queue_rows=0, served=[])
    later = _replica(1, queue_rows=0, served=[])
    samples = _samples(sum_expositions([later, first]))
    created = _samples(first.encode())
    key = ("readyml_rejected_requests_created", (("model", "iris"), ("reason", "invalid")))
    assert samples[key] == created[key]


def test_the_sum_is_valid_exposition_with_every_family_once() -> None:
    a = _replica(1, queue_rows=0, served=[("iris", "1", 0.1)])
    text = sum_expositions([a, a]).decode()
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert "# TYPE readyml_requests_total counter" in types
    assert "# TYPE readyml_request_latency_seconds histogram" in types
    assert text == sum_expositions([text]).decode()  # a sum of one is itself


def test_no_replica_yet_is_an_empty_exposition() -> None:
    assert sum_expositions([]) == b""
