"""Hot swap under load: versions replaced 20 times while clients keep asking; none fails."""

from __future__ import annotations

import threading
from pathlib import Path

from sklearn.linear_model import LogisticRegression

from .conftest import TOKEN, serve_process, train_iris
from .test_rollout import infer_body, register

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SWAPS = 20
CLIENTS = 4


def test_twenty_swaps_under_load_fail_no_request(tmp_path: Path) -> None:
    root = train_iris(tmp_path, serving={"request_log": {"enabled": False}, "access_log": False})
    second = register(root, lambda: LogisticRegression(max_iter=500, C=0.5))
    stop = threading.Event()
    answers: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
    loaded: set[str] = {"1"}

    with serve_process(root) as server:

        def ask(out: list[tuple[int, str]]) -> None:
            body = infer_body()
            with server.client() as client:
                while not stop.is_set():
                    answer = client.post("/v2/models/iris/infer", json=body)
                    version = answer.json().get("model_version", "")
                    out.append((answer.status_code, version))

        threads = [threading.Thread(target=ask, args=(out,)) for out in answers]
        for thread in threads:
            thread.start()
        try:
            with server.client() as admin:
                for swap in range(SWAPS):
                    version = second if swap % 2 == 0 else 1
                    answer = admin.post(
                        "/v2/repository/models/iris/load",
                        json={"parameters": {"version": version}},
                        headers=AUTH,
                    )
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["version"] == str(version)
                    loaded.add(str(version))
                    # Load time is reported for the version serving now, and only for it.
                    load_series = [
                        line
                        for line in admin.get("/metrics").text.splitlines()
                        if line.startswith("readyml_model_load_seconds{")
                    ]
                    assert len(load_series) == 1
                    assert f'version="{version}"' in load_series[0]
                    assert float(load_series[0].rsplit(" ", 1)[1]) > 0
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    everything = [answer for out in answers for answer in out]
    failed = [answer for answer in everything if answer[0] != 200]
    assert len(everything) > SWAPS and failed == []
    assert {version for _, version in everything} == loaded == {"1", str(second)}
