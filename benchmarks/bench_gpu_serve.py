"""GPU serving: ResNet-18 (random weights) with batching vs batch-1 serving vs the ceiling.

Needs a CUDA device (``main`` returns a one-line section without one). ResNet-18 is defined
here (torchvision is not needed). The server is this file run as ``--serve MODE PORT`` in a
separate process: readyml's app over an in-memory predictor (batching on, or max batch 1);
the load generator (this process) sends V2 binary-tensor requests of one 3×224×224 image at
concurrency 64. The ceiling is the in-process forward pass on batches of 64 on the same card.
Target: batching ≥ 10× batch-1 serving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import numpy as np

IMAGE_SHAPE = (3, 224, 224)
# "cuda" for the benchmark; "cpu" only to smoke-test the mechanics on a machine without a GPU.
DEVICE = os.environ.get("READYML_BENCH_DEVICE", "cuda")
CONCURRENCY = 64
LOAD_PROCESSES = 8  # client processes sharing the concurrency: one Python client caps early
DURATION_S = float(os.environ.get("READYML_BENCH_SECONDS", "15"))
START_TIMEOUT_S = 120.0


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


class TorchImageModel:
    """A minimal flavor adapter around a module on a device (for the Predictor)."""

    flavor = "torch"
    task = "classification"

    def __init__(self, device: str) -> None:
        import torch

        self.device = device
        self.module = resnet18().to(device).eval()
        self.classes = np.arange(1000)
        self.torch = torch

    def predict_proba(self, X: Any) -> Any:
        with self.torch.inference_mode():
            batch = self.torch.from_numpy(np.ascontiguousarray(X, np.float32)).to(self.device)
            return self.torch.softmax(self.module(batch), dim=1).float().cpu().numpy()

    def predict(self, X: Any) -> Any:
        return self.classes[self.predict_proba(X).argmax(axis=1)]

    def signature(self) -> dict[str, Any]:
        return {
            "inputs": [{"name": "input", "dtype": "float32", "shape": [None, *IMAGE_SHAPE]}],
            "output": {"task": "classification", "classes": self.classes.tolist(), "proba": True},
        }


def serve(mode: str, port: int) -> None:
    """Run the server process (``--serve batching|batch1 PORT``)."""
    import uvicorn

    from readyml.config import BatchingSpec, RequestLogSpec, ServingSpec
    from readyml.predict import Predictor
    from readyml.serve import Deployment, ModelTable, ServerMetrics, ServingApp

    model = TorchImageModel(DEVICE)
    predictor = Predictor(model=model, name="resnet18", version=1, signature=model.signature())  # type: ignore[arg-type]
    batching = BatchingSpec(enabled=mode == "batching", max_batch_size=64, max_wait_ms=2.0)
    spec = ServingSpec(
        batching=batching, request_log=RequestLogSpec(enabled=False), access_log=False
    )
    executor = concurrent.futures.ThreadPoolExecutor(1)
    table = ModelTable()
    metrics = ServerMetrics()
    app = ServingApp(table=table, spec=spec, metrics=metrics, executor=executor)
    table.put(Deployment.create(predictor, executor=executor, batching=batching))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _load(port: int, concurrency: int = CONCURRENCY) -> float:
    """Images per second answered 200 by ``concurrency`` keep-alive connections.

    A raw HTTP/1.1 client over asyncio streams: the request bytes are built once, and each
    answer is read by its Content-Length, so the client costs a few microseconds a request
    (httpx cost more than the server at these rates).
    """
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
    request = head + header + raw
    done = 0
    deadline = time.monotonic() + DURATION_S

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if status.split(b" ", 2)[1:2] == [b"200"]:
                    done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


def _served(mode: str) -> float:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port)])
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready"):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"GPU server ({mode}) did not start") from None
                time.sleep(0.5)
        share = CONCURRENCY // LOAD_PROCESSES
        clients = [
            subprocess.Popen(
                [sys.executable, __file__, "--load", str(port), str(share)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(LOAD_PROCESSES)
        ]
        return sum(float(c.communicate()[0].strip() or 0.0) for c in clients)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _device_name(torch: Any) -> str:
    return str(torch.cuda.get_device_name(0)) if DEVICE == "cuda" else DEVICE


def main() -> str:
    """Run the benchmark (on a CUDA machine) and return its markdown section."""
    try:
        import torch
    except ImportError:
        return "### GPU serving (issue 5)\n\nSkipped: torch is not installed."
    if DEVICE == "cuda" and not torch.cuda.is_available():
        return "### GPU serving (issue 5)\n\nSkipped: no CUDA device on this machine."
    model = TorchImageModel(DEVICE)
    batch = np.random.default_rng(0).normal(size=(64, *IMAGE_SHAPE)).astype(np.float32)
    for _ in range(3):
        model.predict_proba(batch)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(20):
        model.predict_proba(batch)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    ceiling = 20 * 64 / (time.perf_counter() - started)
    batched = _served("batching")
    single = _served("batch1")
    return "\n".join(
        [
            "### GPU serving (issue 5)",
            "",
            f"ResNet-18 (random weights), {_device_name(torch)}, one 3×224×224 image "
            f"per request as a V2 binary tensor, concurrency {CONCURRENCY} "
            f"from {LOAD_PROCESSES} client processes, {DURATION_S:.0f} s.",
            "",
            "| | images/s |",
            "|---|---:|",
            f"| readyml with batching (max 64, max wait 2 ms) | {batched:,.0f} |",
            f"| readyml batch-1 serving | {single:,.0f} |",
            f"| in-process ceiling (batches of 64) | {ceiling:,.0f} |",
            "",
            f"Batching / batch-1: {batched / single:.1f}× (target ≥ 10×).",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--load":
        print(asyncio.run(_load(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(main())
