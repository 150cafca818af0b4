"""One Prometheus exposition from several replicas' (Ray Serve replicas share no folder).

Each replica renders its own metrics; :func:`sum_expositions` turns their texts into the
one a scrape answers, with the rules a ``--workers`` scrape follows
(:class:`~readyml.serve.metrics.WorkerMetrics`):

* counters and histograms are summed (same name and labels), over the live replicas and the
  ended ones, so that a replica Ray stops does not take its counts out of the sums (which
  Prometheus would read as a counter reset);
* gauges are summed over the live replicas only (``readyml_queue_rows``: the rows waiting
  in every replica), but for :data:`MAX_GAUGES`, whose value is the largest;
* ``_created`` timestamps keep the earliest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# Gauges that are not added up: the versions served, each with its slowest load.
MAX_GAUGES = frozenset({"readyml_model_load_seconds"})

_Key = tuple[str, tuple[tuple[str, str], ...]]


def sum_expositions(live: Sequence[str], ended: Sequence[str] = ()) -> bytes:
    """The replicas' expositions (Prometheus text format) as one, by the module's rules.

    >>> one = (
    ...     "# HELP hits_total Hits.\\n# TYPE hits_total counter\\nhits_total 2.0\\n"
    ...     "# HELP queue Rows.\\n# TYPE queue gauge\\nqueue 3.0\\n"
    ... )
    >>> print(sum_expositions([one, one], ended=[one]).decode().strip())
    # HELP hits_total Hits.
    # TYPE hits_total counter
    hits_total 6.0
    # HELP queue Rows.
    # TYPE queue gauge
    queue 6.0
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[_Key, float]] = {}
    texts = [(text, True) for text in live] + [(text, False) for text in ended]
    for text, alive in texts:
        for family in text_string_to_metric_families(text):
            created = family.name.endswith("_created")
            if family.type == "gauge" and not created and not alive:
                continue  # an ended replica holds nothing now
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            summed = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                before = summed.get(key)
                if before is None:
                    summed[key] = sample.value
                elif created or sample.name.endswith("_created"):
                    summed[key] = min(before, sample.value)
                elif family.name in MAX_GAUGES:
                    summed[key] = max(before, sample.value)
                else:
                    summed[key] = before + sample.value
    for name, family in families.items():
        family.samples = [
            Sample(sample_name, dict(labels), value, None, None)
            for (sample_name, labels), value in values[name].items()
        ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families
