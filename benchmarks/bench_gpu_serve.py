"""GPU serving: ResNet-18 (random weights) with batching vs batch-1 serving vs the ceiling.

Needs a CUDA device (``main`` returns a one-line section without one). ResNet-18 is defined
here (torchvision is not needed). The server is this file run as ``--serve MODE PORT
WORKERS`` in a separate process: readyml's app over the model as readyml's PyTorch flavor
loads and places it (:func:`flavor_model`), batching on or max batch 1, set up as
``readyml serve`` sets it up (GIL switch interval, uvloop and httptools when installed,
``WORKERS`` processes sharing the card). The load generator is
``LOAD_PROCESSES`` processes of blocking keep-alive sockets, one thread per connection,
sending V2 binary-tensor requests of one 3×224×224 image at concurrency 64. The ceilings are
the in-process forward passes on the same card. Target: batching ≥ 10× batch-1 serving, with
the same number of server processes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGE_SHAPE = (3, 224, 224)
# "cuda" for the benchmark; "cpu" only to smoke-test the mechanics on a machine without a GPU.
DEVICE = os.environ.get("READYML_BENCH_DEVICE", "cuda")
CONCURRENCY = 64
LOAD_PROCESSES = 8  # client processes sharing the concurrency
DURATION_S = float(os.environ.get("READYML_BENCH_SECONDS", "10"))
WARMUP_S = 2.0
CONNECT_STAGGER_S = 0.01
START_TIMEOUT_S = 180.0
MAX_BATCH = 64
MAX_WAIT_MS = 2.0
WORKER_COUNTS = tuple(int(n) for n in os.environ.get("READYML_BENCH_WORKERS", "1,4").split(","))
SERVE_ENV = "READYML_BENCH_GPU_MODE"
MODEL_ENV = "READYML_BENCH_GPU_MODEL"  # "resnet18" (default), or "pool" (no compute to speak of)
HTTP_ENV = "READYML_BENCH_HTTP"  # "readyml" (default): readyml's protocol; "uvicorn": uvicorn's


def resnet18(num_classes: int = 1000) -> Any:
    """ResNet-18 (He et al. 2015) with random weights, as torchvision builds it."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inputs: int, outputs: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(outputs)
            self.relu = nn.ReLU(inplace=True)
            self.down = (
                nn.Sequential(
                    nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
                )
                if stride != 1 or inputs != outputs
                else nn.Identity()
            )

        def forward(self, x: Any) -> Any:
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.down(x))

    layers: list[Any] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = 64
    for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(channels, outputs, stride), Block(outputs, outputs, 1)]
        channels = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def resnet18_factory(n_inputs: int, n_outputs: int) -> Any:
    """ResNet-18 as a factory of readyml's PyTorch flavor (``factory(n_inputs, n_outputs)``)."""
    return resnet18(n_outputs)


def pool_factory(n_inputs: int, n_outputs: int) -> Any:
    """An image model with almost no compute (mean per channel, then a linear layer): serving
    it measures what readyml spends to take in and answer 602 KB requests."""
    from torch import nn

    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, n_outputs))


def flavor_model(device: str) -> Any:
    """ResNet-18 loaded by readyml's PyTorch flavor (random weights), placed on ``device``.

    The same path as a registered torch version served with ``serving.device``: the flavor
    rebuilds the module from its factory, loads the weights and ``to_device`` moves it (a
    batch then goes through page-locked memory, the thread sleeps on a blocking CUDA event,
    torch's CPU pool gets one thread).
    """
    import torch

    from readyml.flavors.torch import WEIGHTS_FILE, TorchModel

    factory = os.environ.get(MODEL_ENV, "resnet18")
    content = {
        "factory": f"bench_gpu_serve:{factory}_factory",
        "task": "classification",
        "n_inputs": int(np.prod(IMAGE_SHAPE)),
        "n_outputs": 1000,
        "features": [{"name": "input", "dtype": "float32", "shape": [None, *IMAGE_SHAPE]}],
        "classes": list(range(1000)),
    }
    with tempfile.TemporaryDirectory() as folder:
        module = pool_factory(0, 1000) if factory == "pool" else resnet18()
        torch.save(module.state_dict(), Path(folder) / WEIGHTS_FILE)
        model = TorchModel.load(Path(folder), content)
    model.to_device(device)
    return model


def make_app() -> Any:
    """The serving app of one server process, for the mode in ``READYML_BENCH_GPU_MODE``."""
    from readyml.config import BatchingSpec, RequestLogSpec, ServingSpec
    from readyml.predict import Predictor
    from readyml.serve.app import ServingApp
    from readyml.serve.deployment import Deployment, ModelTable
    from readyml.serve.metrics import ServerMetrics
    from readyml.serve.server import GIL_SWITCH_INTERVAL_S

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as ``readyml serve`` does
    model = flavor_model(DEVICE)
    predictor = Predictor(model=model, name="resnet18", version=1, signature=model.signature())
    batching = BatchingSpec(
        enabled=os.environ[SERVE_ENV] == "batching",
        max_batch_size=MAX_BATCH,
        max_wait_ms=MAX_WAIT_MS,
        max_queue_rows=4 * CONCURRENCY,
        max_queue_delay_ms=60_000.0,  # measure capacity: shed nothing at this concurrency
    )
    spec = ServingSpec(
        batching=batching, request_log=RequestLogSpec(enabled=False), access_log=False
    )
    executor = concurrent.futures.ThreadPoolExecutor(1)
    table = ModelTable()
    app = ServingApp(table=table, spec=spec, metrics=ServerMetrics(), executor=executor)
    table.put(
        Deployment.create(predictor, executor=executor, batching=batching, on_batch=app.on_batch)
    )
    return app


def serve(mode: str, port: int, workers: int) -> None:
    """Run the server (``--serve batching|batch1 PORT WORKERS``)."""
    import uvicorn

    from readyml.serve.server import http_protocol

    protocol = http_protocol() if os.environ.get(HTTP_ENV, "readyml") == "readyml" else "httptools"
    os.environ[SERVE_ENV] = mode
    uvicorn.run(
        "bench_gpu_serve:make_app",
        factory=True,
        app_dir=str(HERE),
        workers=workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http=protocol,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request() -> bytes:
    raw = np.random.default_rng(0).normal(size=(1, *IMAGE_SHAPE)).astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, *IMAGE_SHAPE],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict"}],
        }
    ).encode()
    head = (
        "POST /v2/models/resnet18/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Inference-Header-Content-Length: {len(header)}\r\n"
        f"Content-Length: {len(header) + len(raw)}\r\n\r\n"
    ).encode()
    return head + header + raw


def _answer(sock: socket.socket, pending: bytes) -> tuple[bytes, bytes]:
    """Read one HTTP/1.1 answer (status line, headers, Content-Length body)."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    length = 0
    for line in pending[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(pending) < end + length:
        pending += sock.recv(65536)
    return pending[9:12], pending[end + length :]


def _load(port: int, connections: int, client: int) -> str:
    """Answers (200 and others) in the timed window from ``connections`` keep-alive sockets.

    One thread per connection with blocking ``sendall``/``recv``: the kernel moves each
    600 KB request in one call, so a client process costs little next to the server (an
    asyncio client spent ~3 ms of CPU a request on partial writes).
    """
    request = _request()
    print("ready", flush=True)  # the parent starts its clocks from here (see ``loaded``)
    start = time.monotonic() + WARMUP_S
    stop = start + DURATION_S
    ok = [0] * connections
    other = [0] * connections

    def connection(index: int) -> None:
        # Connections open one by one, so that server processes sharing the listening socket
        # each accept some (opened at once, the first process to wake takes them all).
        time.sleep(CONNECT_STAGGER_S * (index * LOAD_PROCESSES + client))
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending = b""
            while (now := time.monotonic()) < stop:
                sock.sendall(request)
                status, pending = _answer(sock, pending)
                if now >= start:
                    if status == b"200":
                        ok[index] += 1
                    else:
                        other[index] += 1

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return json.dumps({"ok": sum(ok), "other": sum(other)})


def loaded(clients: list[subprocess.Popen[str]]) -> None:
    """Wait until every load process has started, then for its warm-up: its timed window."""
    for client in clients:
        assert client.stdout is not None
        client.stdout.readline()
    time.sleep(WARMUP_S)


def counted(client: subprocess.Popen[str]) -> dict[str, int]:
    """A load process's answer counts (its last line of output)."""
    counts: dict[str, int] = json.loads(client.communicate()[0].strip().splitlines()[-1])
    return counts


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the uvicorn workers)."""
    from _machine import stat_cpu_seconds

    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(entry.name) == pid or int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            total += stat_cpu_seconds(stat)
    return total


def _loop_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread: the event loop (with one server process)."""
    from _machine import stat_cpu_seconds

    return stat_cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat").read_text())


def _share(fraction: float) -> str:
    return "–" if fraction != fraction else f"{fraction:.0%}"  # NaN: not measured


def _mean_batch(port: int) -> float:
    """Mean batch size from one server process's ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
        text = answer.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("readyml_batch_size_rows_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("readyml_batch_size_rows_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total / count if count else float("nan")


def wait_ready(process: subprocess.Popen[Any], port: int, what: str) -> None:
    """Wait until the server on ``port`` is ready; raise if ``process`` exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready"):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.5)


def _served(mode: str, workers: int) -> dict[str, float]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port), str(workers)])
    try:
        wait_ready(process, port, f"GPU server ({mode})")
        share = CONCURRENCY // LOAD_PROCESSES
        clients = [
            subprocess.Popen(
                [sys.executable, __file__, "--load", str(port), str(share), str(client)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for client in range(LOAD_PROCESSES)
        ]
        loaded(clients)
        cpu_before = _cpu_seconds(process.pid)
        loop_before = _loop_cpu_seconds(process.pid) if workers == 1 else 0.0
        counts = [counted(client) for client in clients]
        cpu = _cpu_seconds(process.pid) - cpu_before
        loop = _loop_cpu_seconds(process.pid) - loop_before if workers == 1 else float("nan")
        ok = sum(count["ok"] for count in counts)
        return {
            "rate": ok / DURATION_S,
            "other": sum(count["other"] for count in counts),
            "cpu_ms": 1000.0 * cpu / max(ok, 1),
            "loop": loop / DURATION_S,
            "batch": _mean_batch(port),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ceiling(model: Any, rows: int, calls: int) -> float:
    """In-process images per second at a fixed batch size (host to device and back)."""
    import torch

    batch = np.random.default_rng(0).normal(size=(rows, *IMAGE_SHAPE)).astype(np.float32)
    for _ in range(3):
        model.predict_proba(batch)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(calls):
        model.predict_proba(batch)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return calls * rows / (time.perf_counter() - started)


def main() -> str:
    """Run the benchmark (on a CUDA machine) and return its markdown section."""
    try:
        import torch
    except ImportError:
        return "### GPU serving (issue 5)\n\nSkipped: torch is not installed."
    if DEVICE == "cuda" and not torch.cuda.is_available():
        return "### GPU serving (issue 5)\n\nSkipped: no CUDA device on this machine."
    model = flavor_model(DEVICE)
    ceilings = {rows: _ceiling(model, rows, calls) for rows, calls in ((1, 200), (64, 30))}
    device = str(torch.cuda.get_device_name(0)) if DEVICE == "cuda" else DEVICE
    del model
    lines = [
        "### GPU serving (issue 5)",
        "",
        f"ResNet-18 (random weights), {device}, torch {torch.__version__}, one 3×224×224 "
        f"image per request as a V2 binary tensor (602 KB), concurrency {CONCURRENCY} from "
        f"{LOAD_PROCESSES} client processes of blocking sockets, {DURATION_S:.0f} s after "
        f"{WARMUP_S:.0f} s of warm-up. Batching: max {MAX_BATCH} rows, max wait "
        f"{MAX_WAIT_MS:g} ms. Server CPU is user + system time of the server processes per "
        "answered request; event loop busy is the CPU share of the server's main thread (one "
        "process only); mean batch from one server process's `/metrics`.",
        "",
        "| server processes | readyml | images/s | vs batch-1 | server CPU ms/request "
        "| event loop busy | mean batch | non-200 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for workers in WORKER_COUNTS:
        single = _served("batch1", workers)
        batched = _served("batching", workers)
        ratios.append((workers, batched["rate"] / single["rate"]))
        for name, result in (("batch-1 serving", single), ("with batching", batched)):
            lines.append(
                f"| {workers} | {name} | {result['rate']:,.0f} | "
                f"{result['rate'] / single['rate']:.1f}× | {result['cpu_ms']:.2f} | "
                f"{_share(result['loop'])} | {result['batch']:.1f} | {result['other']:.0f} |"
            )
    lines += [
        "",
        f"In-process ceiling: {ceilings[1]:,.0f} images/s at batch 1, "
        f"{ceilings[64]:,.0f} at batch 64.",
        "",
        "Batching / batch-1 serving (target ≥ 10×): "
        + ", ".join(f"{ratio:.1f}× with {workers} server process(es)" for workers, ratio in ratios)
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--load":
        print(_load(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    else:
        print(main())
