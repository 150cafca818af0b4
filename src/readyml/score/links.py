"""Evidence links a person can follow: artifact keys turned into paths or URLs.

Evidence names its artifact by artifact-store key (``runs/ID/report.json``), by a file of
the project (``schema.yaml``) or by URL (an attestation's link); a pipeline run's or a
check's evidence names none and links to its run's report (:func:`run_report_key`) once
that exists. A key becomes a path relative to the project when the store is the project's
own folder, else the store's URL (``s3://bucket/prefix/runs/ID/report.json``).
"""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from readyml.errors import ReadymlError, RegistryError
from readyml.registry import Registry
from readyml.registry.artifacts import check_key
from readyml.registry.reports import run_report_key
from readyml.registry.store import redact_url
from readyml.score.scoring import EvidenceItem, ScoreReport

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class EvidenceLinks:
    """Resolves evidence links against one project and its registry (each key looked up once)."""

    def __init__(self, root: Path, registry: Registry) -> None:
        self.root = root
        self.registry = registry
        self._stored: dict[str, bool] = {}
        self._unreadable = False

    def stored(self, key: str) -> bool:
        """Whether the artifact store holds ``key`` (``False`` for a non-key or an unreadable
        store: the score is still shown, with the link as recorded; a store that failed once
        is not asked again)."""
        if self._unreadable:
            return False
        if key not in self._stored:
            try:
                check_key(key)
            except RegistryError:  # free text (an attestation's note), not a key
                self._stored[key] = False
                return False
            try:
                self._stored[key] = self.registry.artifacts.exists(key)
            except ReadymlError:  # unreachable, refused, or no s3fs to open it with
                self._stored[key], self._unreadable = False, True
        return self._stored[key]

    def prefetch(self, keys: list[str]) -> None:
        """Look up many keys at once: the first alone (an unreachable store is asked once),
        the rest on a few threads, since a remote store answers each in a round trip."""
        todo = list(
            dict.fromkeys(
                k
                for k in keys
                if k not in self._stored and not _URL.match(k) and not self.in_project(k)
            )
        )
        if not todo:
            return
        self.stored(todo[0])
        if self._unreadable:
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self.stored, todo[1:]))

    def where(self, key: str) -> str:
        """Where a stored key can be opened: a path relative to the project, or a URL (with
        any credentials in it left out)."""
        url = self.registry.artifacts.url_for(key)
        if _URL.match(url):
            return redact_url(url)
        path = Path(url)
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def in_project(self, link: str) -> bool:
        """Whether ``link`` names a file or folder of the project (never raises: a link is
        free text, too long or unreadable as a path is simply not one)."""
        try:
            return (self.root / link).exists()
        except (OSError, ValueError):
            return False

    def link(self, item: EvidenceItem) -> str | None:
        """The followable link of one evidence item, or ``None`` when it has none."""
        if item.link is None:
            if item.run_id is not None and self.stored(run_report_key(item.run_id)):
                return self.where(run_report_key(item.run_id))
            return None
        if _URL.match(item.link) or self.in_project(item.link):
            return item.link
        return self.where(item.link) if self.stored(item.link) else item.link


def with_links(report: ScoreReport, root: Path, registry: Registry) -> ScoreReport:
    """``report`` with every shown evidence item's link made followable (see module doc)."""
    links = EvidenceLinks(root.resolve(), registry)
    items = [i for score in report.tests for i in score.evidence]
    links.prefetch([i.link for i in items if i.link is not None])
    links.prefetch([run_report_key(i.run_id) for i in items if i.link is None and i.run_id])
    tests = [
        dataclasses.replace(
            score,
            evidence=[dataclasses.replace(i, link=links.link(i)) for i in score.evidence],
        )
        for score in report.tests
    ]
    return dataclasses.replace(report, tests=tests)
