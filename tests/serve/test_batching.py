"""The adaptive batcher alone (in-process) and under concurrent load on a real server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from pathlib import Path

import httpx

from readyml.serve.batching import AdaptiveBatcher, Queued, QueueFull

from .conftest import ROW, Server, serve_process


def _batcher(**kwargs: object) -> tuple[AdaptiveBatcher[list[int], list[int]], list[int]]:
    sizes: list[int] = []
    gate = threading.Event()

    def run(parts: list[list[int]]) -> list[int]:
        gate.wait(0.05)  # the first batch blocks a moment so that others queue behind it
        sizes.append(len(parts))
        flat = [value for part in parts for value in part]
        if -1 in flat:
            raise ValueError("bad input -1")
        return flat

    pool = concurrent.futures.ThreadPoolExecutor(1)
    return AdaptiveBatcher(run_batch=run, executor=pool, **kwargs), sizes  # type: ignore[arg-type]


def test_lone_request_is_dispatched_at_once_alone() -> None:
    batcher, sizes = _batcher(max_wait_s=0.0)

    async def main() -> list[int]:
        result, offset = await batcher.submit([7], rows=1)
        return result[offset : offset + 1]

    assert asyncio.run(main()) == [7]
    assert sizes == [1]


def test_a_burst_in_one_loop_pass_is_one_batch() -> None:
    batcher, sizes = _batcher()

    async def main() -> list[list[int]]:
        async def one(value: int) -> list[int]:
            result, offset = await batcher.submit([value], rows=1)
            return result[offset : offset + 1]

        return await asyncio.gather(*(one(v) for v in range(20)))

    answers = asyncio.run(main())
    assert answers == [[v] for v in range(20)]
    assert sizes == [20]


def test_requests_arriving_while_busy_form_one_batch() -> None:
    batcher, sizes = _batcher()

    async def main() -> list[list[int]]:
        async def one(value: int) -> list[int]:
            result, offset = await batcher.submit([value], rows=1)
            return result[offset : offset + 1]

        first = asyncio.ensure_future(one(0))
        while not batcher.busy:
            await asyncio.sleep(0)
        rest = await asyncio.gather(*(one(v) for v in range(1, 20)))
        return [await first, *rest]

    answers = asyncio.run(main())
    assert answers == [[v] for v in range(20)]
    assert sizes == [1, 19]


def test_a_client_waiting_for_each_answer_never_waits_for_a_batch() -> None:
    batcher, sizes = _batcher(max_wait_s=0.5, latency_target_s=5.0)

    async def main() -> list[int]:
        answers = []
        for value in range(10):
            result, offset = await batcher.submit([value], rows=1)
            answers.append(result[offset])
        return answers

    assert asyncio.run(main()) == list(range(10))
    assert sizes == [1] * 10 and batcher.waits == 0


def test_overlapping_requests_wait_for_a_fuller_batch() -> None:
    sizes: list[int] = []

    def run(parts: list[list[int]]) -> list[int]:
        time.sleep(0.005)
        sizes.append(len(parts))
        return [value for part in parts for value in part]

    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher: AdaptiveBatcher[list[int], list[int]] = AdaptiveBatcher(
        run_batch=run, executor=pool, max_wait_s=0.02, latency_target_s=5.0
    )

    async def main() -> None:
        async def one(value: int) -> None:
            await batcher.submit([value], rows=1)

        first = asyncio.ensure_future(one(0))
        while not batcher.busy:
            await asyncio.sleep(0)
        # Requests keep arriving while the first batch runs, and after it.
        others = []
        for value in range(1, 30):
            others.append(asyncio.ensure_future(one(value)))
            await asyncio.sleep(0.004)
        await asyncio.gather(first, *others)

    asyncio.run(main())
    assert batcher.waits > 0 and sum(sizes) == 30


def test_a_failing_request_fails_alone() -> None:
    batcher, _ = _batcher()

    async def main() -> list[object]:
        async def one(value: int) -> list[int]:
            result, offset = await batcher.submit([value], rows=1)
            return result[offset : offset + 1]

        return await asyncio.gather(*(one(v) for v in [1, 2, -1, 3, 4]), return_exceptions=True)

    answers = asyncio.run(main())
    assert isinstance(answers[2], ValueError)
    assert [a for i, a in enumerate(answers) if i != 2] == [[1], [2], [3], [4]]


def test_answered_batches_reach_the_hook_with_their_tags_in_order() -> None:
    answered: list[tuple[list[int], list[object], list[int], bool]] = []

    def on_result(result: list[int], items: list[Queued[list[int], list[int]]], at: float) -> None:
        timely = all(item.arrived_s <= at for item in items)
        answered.append(
            (result, [item.tag for item in items], [item.rows for item in items], timely)
        )

    batcher, _ = _batcher(on_result=on_result)

    async def main() -> None:
        async def one(value: int) -> None:
            await batcher.submit([value, value], rows=2, tag=f"id{value}")

        gone = asyncio.ensure_future(batcher.submit([9], rows=1, tag="gone"))
        await asyncio.sleep(0.01)  # its batch is running (the first one blocks 50 ms)
        gone.cancel()
        await asyncio.gather(one(1), one(2), one(-1), return_exceptions=True)

    asyncio.run(main())
    # The caller of [9] went away: its tag is cleared. The batch with -1 failed and never
    # reached the hook; its requests ran again alone, and the good ones did.
    assert answered[0] == ([9], [None], [1], True)
    assert ([1, 1], ["id1"], [2], True) in answered and ([2, 2], ["id2"], [2], True) in answered
    assert all(-1 not in result for result, *_ in answered)


def test_full_queue_sheds_with_retry_after() -> None:
    batcher, _ = _batcher(max_queue_rows=3)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit([v], rows=1) for v in range(10)), return_exceptions=True
        )

    answers = asyncio.run(main())
    shed = [a for a in answers if isinstance(a, QueueFull)]
    assert shed and all(a.retry_after_s >= 1 for a in shed)
    assert len(shed) < 10


def test_aimd_backs_off_when_batches_exceed_the_budget() -> None:
    batcher, _ = _batcher(max_batch_rows=64, latency_target_s=0.01)
    batcher._adapt(64, 0.5)
    assert batcher.batch_limit_rows < 64
    low = batcher.batch_limit_rows
    batcher._adapt(4, 0.0001)
    assert batcher.batch_limit_rows > low


def test_a_burst_of_large_requests_after_single_rows_is_not_shed_on_a_per_row_guess() -> None:
    """One-row batches teach the fixed cost, not the cost of a row (the audit's burst)."""
    batcher, _ = _batcher(max_batch_rows=256, max_queue_delay_s=1.0)
    for _ in range(30):
        batcher._adapt(1, 0.010)  # a model whose every call costs ~10 ms
    assert 0.009 < batcher.cost.overhead_s < 0.011
    batcher.queued_rows = 7 * 300  # seven 300-row requests queued; an eighth arrives
    assert batcher.predicted_delay_s(300) < 1.0  # the per-row EWMA predicted 24 s
    # Larger batches then show the real cost of a row, and the prediction follows it.
    for rows in (300, 40, 256, 120) * 10:
        batcher._adapt(rows, 0.010 + rows * 0.002)
    assert 0.0018 < batcher.cost.row_s < 0.0022
    assert batcher.predicted_delay_s(300) > 1.0  # now 2 ms a row: 2,400 rows take ~5 s


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_concurrent_load_on_a_real_server_makes_batches_larger_than_one(server: Server) -> None:
    async def load() -> list[int]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/predict", json=[ROW]) for _ in range(400))
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(load())
    assert set(statuses) == {200}
    metrics = httpx.get(f"{server.url}/metrics").text
    rows = sample(metrics, "readyml_batch_size_rows_sum", model="iris")
    batches = sample(metrics, "readyml_batch_size_rows_count", model="iris")
    above_one = batches - sample(metrics, "readyml_batch_size_rows_bucket", model="iris", le="1.0")
    assert above_one > 0 and rows / batches > 1


def test_workers_flag_serves_from_several_processes(iris_root: Path) -> None:
    with (
        serve_process(iris_root, "--workers", "2", "--no-request-log") as started,
        started.client() as client,
    ):
        assert {client.post("/predict", json=[ROW]).status_code for _ in range(10)} == {200}
