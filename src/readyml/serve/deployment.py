"""The model table: name → deployment (a predictor and its batcher), swapped atomically.

A request looks its deployment up once and keeps the object it got, so replacing a name's
deployment (a new version, a rollback) never disturbs requests already in flight: they
finish on the old predictor while new requests go to the new one; the old batcher is then
drained. A dict assignment is atomic on the event loop, which is the only writer.

Each name has a *current* deployment, which every route without a version answers with,
and may have *pinned* ones: other versions served alongside, each with its own batcher,
answered only at ``/v2/models/{name}/versions/{version}/...`` (A/B tests by URL, clients
that must stay on one version for a while).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator

from readyml.config import BatchingSpec
from readyml.errors import NotFound, ServeError
from readyml.predict import Part, Prediction, Predictor
from readyml.predict.inputs import shorten
from readyml.serve.batching import AdaptiveBatcher, BatchStats, Queued

# Called with a version's predictor, a batch's prediction, its requests and when it finished.
OnResult = Callable[[Predictor, Prediction, list[Queued[Part, Prediction]], float], None]


class Deployment:
    """One served model version: its predictor and the batcher in front of it.

    Args:
        predictor: The loaded version.
        batcher: Queues request parts for ``predictor.serve_parts``.
    """

    def __init__(self, *, predictor: Predictor, batcher: AdaptiveBatcher[Part, Prediction]):
        self.predictor = predictor
        self.batcher = batcher
        self.name = predictor.name
        self.version = predictor.version
        self.version_label = str(predictor.version)

    @classmethod
    def create(
        cls,
        predictor: Predictor,
        *,
        executor: concurrent.futures.Executor,
        batching: BatchingSpec,
        on_batch: Callable[[str, BatchStats], None] | None = None,
        on_result: OnResult | None = None,
    ) -> Deployment:
        """A deployment whose batcher follows ``batching`` and runs on ``executor``.

        ``on_batch`` gets every batch's statistics, ``on_result`` every answered batch.
        """
        name = predictor.name

        def report(stats: BatchStats) -> None:
            if on_batch is not None:
                on_batch(name, stats)

        def answered(
            prediction: Prediction, items: list[Queued[Part, Prediction]], finished_s: float
        ) -> None:
            if on_result is not None:
                on_result(predictor, prediction, items, finished_s)

        batcher: AdaptiveBatcher[Part, Prediction] = AdaptiveBatcher(
            run_batch=predictor.serve_parts,
            executor=executor,
            max_batch_rows=batching.max_batch_size if batching.enabled else 1,
            max_wait_s=batching.max_wait_ms / 1000 if batching.enabled else 0.0,
            latency_target_s=batching.latency_target_ms / 1000,
            max_queue_rows=batching.max_queue_rows,
            max_queue_delay_s=batching.max_queue_delay_ms / 1000,
            on_batch=report,
            on_result=answered if on_result is not None else None,
        )
        return cls(predictor=predictor, batcher=batcher)


class VersionConflict(ServeError):
    """A version cannot be pinned or unpinned as asked (it is the current one)."""

    status_code = 409


class ModelTable:
    """Deployments by model name; the first one put is the default for ``/predict``.

    The default stays that model's name: unloaded and loaded again, it is the default again;
    while it is unloaded, a request without ``?model=`` is refused rather than answered by
    another model, which may take the same features and predict something else.

    >>> table = ModelTable()
    >>> table.names()
    []
    """

    def __init__(self) -> None:
        self._deployments: dict[str, Deployment] = {}
        self._pinned: dict[str, dict[str, Deployment]] = {}
        self._default_name: str | None = None
        self.generation = 0

    def get(self, name: str, version: str | None = None) -> Deployment:
        """The deployment serving ``name`` (and ``version``, when given).

        Raises:
            NotFound: The model is not loaded, or serves another version.
        """
        deployment = self._deployments.get(name)
        if deployment is None:
            loaded = ", ".join(sorted(self._deployments)) or "none"
            raise NotFound(
                f"model: expected a loaded model (loaded: {loaded}), found {shorten(name)!r}"
            )
        if version is None or version == deployment.version_label:
            return deployment
        pinned = self._pinned.get(name, {}).get(version)
        if pinned is not None:
            return pinned
        served = self.versions(name)
        expected = (
            f"{served[0]} (the version it serves)"
            if len(served) == 1
            else f"one of the versions it serves ({', '.join(served)})"
        )
        raise NotFound(f"model {name!r} version: expected {expected}, found {shorten(version)!r}")

    def versions(self, name: str) -> list[str]:
        """The versions ``name`` serves: the current one first, then the pinned ones."""
        current = self._deployments.get(name)
        if current is None:
            return []
        pinned = sorted(self._pinned.get(name, {}), key=int)
        return [current.version_label, *pinned]

    def default(self) -> Deployment:
        """The first model put in the table (the project's champion by default).

        Raises:
            NotFound: No model is loaded, or the default one is unloaded.
        """
        deployment = self.default_or_none()
        if deployment is not None:
            return deployment
        if self._default_name is None or not self._deployments:
            raise NotFound(
                "model: expected a loaded model, found none; load one with "
                "POST /v2/repository/models/{name}/load"
            )
        loaded = ", ".join(self._deployments)
        raise NotFound(
            f"model: expected ?model=NAME while the default model {self._default_name!r} is "
            f"unloaded (loaded: {loaded}), found none"
        )

    def default_or_none(self) -> Deployment | None:
        """The default model's deployment, or ``None`` while it is not loaded."""
        if self._default_name is None:
            return None
        return self._deployments.get(self._default_name)

    def put(self, deployment: Deployment) -> list[Deployment]:
        """Make ``deployment`` its name's current one; return those it replaced (to drain).

        A pinned deployment of the same version is replaced too: the version is current now.
        """
        name = deployment.name
        replaced = []
        old = self._deployments.get(name)
        if old is not None and old is not deployment:
            replaced.append(old)
        pinned = self._pinned.get(name, {}).pop(deployment.version_label, None)
        if pinned is not None:
            replaced.append(pinned)
        self._deployments[name] = deployment
        if self._default_name is None:
            self._default_name = name
        self.generation += 1
        return replaced

    def pin(self, deployment: Deployment) -> Deployment | None:
        """Serve ``deployment`` alongside its name's current version; return the pinned one
        of the same version it replaced, if any.

        Raises:
            NotFound: The name serves no current version.
            VersionConflict: ``deployment`` is of the current version.
        """
        current = self.get(deployment.name)
        if current.version_label == deployment.version_label:
            raise VersionConflict(
                f"version: expected another version than {deployment.name!r}'s current one, "
                f"found {deployment.version_label} (load it without `pin` to reload it)"
            )
        pinned = self._pinned.setdefault(deployment.name, {})
        old = pinned.get(deployment.version_label)
        pinned[deployment.version_label] = deployment
        self.generation += 1
        return old

    def unpin(self, name: str, version: str) -> Deployment:
        """Stop serving the pinned ``version`` of ``name``; return its deployment (to drain).

        Raises:
            NotFound: ``name`` does not serve ``version``.
            VersionConflict: ``version`` is the current one.
        """
        deployment = self.get(name, version)
        if deployment is self._deployments[name]:
            raise VersionConflict(
                f"version: expected a pinned version of {name!r} "
                f"({', '.join(self.versions(name)[1:]) or 'none'}), found {version}, the current "
                "one; unload without a version to stop serving every version"
            )
        del self._pinned[name][version]
        self.generation += 1
        return deployment

    def remove(self, name: str) -> list[Deployment]:
        """Stop serving ``name``, every version; return their deployments (to drain)."""
        deployment = self.get(name)
        del self._deployments[name]
        removed = [deployment, *self._pinned.pop(name, {}).values()]
        self.generation += 1
        return removed

    def pinned(self, name: str) -> list[Deployment]:
        """The pinned deployments of ``name``, by version."""
        pinned = self._pinned.get(name, {})
        return [pinned[label] for label in sorted(pinned, key=int)]

    def names(self) -> list[str]:
        """Names of the loaded models, in load order."""
        return list(self._deployments)

    def __iter__(self) -> Iterator[Deployment]:
        """Every deployment, current and pinned."""
        deployments = list(self._deployments.values())
        for pinned in self._pinned.values():
            deployments += pinned.values()
        return iter(deployments)

    def __contains__(self, name: object) -> bool:
        return name in self._deployments

    def __len__(self) -> int:
        return len(self._deployments)
