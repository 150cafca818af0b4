"""Small shared types that every layer may import."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

Frame = pd.DataFrame
"""A table of features (and sometimes the label); pandas with Arrow-friendly dtypes."""

JSON = dict[str, Any]

VersionStatus = Literal["candidate", "blessed", "vetoed", "archived"]

# A rubric test id: data-1 … data-7, model-1 … model-7, infra-1 … infra-7, monitor-1 … monitor-7.
_TEST_ID = re.compile(r"(data|model|infra|monitor)-[1-7]")
# How an error message states what a model name may hold (``_REF``'s name group).
NAME_RULE = "a name starts with a letter or digit, then letters, digits, '_', '.', '-'"
_REF = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:(?::(?P<version>[0-9]+))|(?:@(?P<alias>[A-Za-z0-9_.-]{1,64})))?"
)


@dataclass(frozen=True)
class ModelRef:
    """A reference to a model version: ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``.

    ``NAME`` alone means the newest version.

    >>> ModelRef.parse("weather@champion")
    ModelRef(name='weather', version=None, alias='champion')
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse a reference; raise ``ValueError`` naming the accepted forms."""
        match = _REF.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"model reference {text!r}: expected NAME, NAME:VERSION or NAME@ALIAS ({NAME_RULE})"
            )
        version = match.group("version")
        return cls(
            name=match.group("name"),
            version=int(version) if version is not None else None,
            alias=match.group("alias"),
        )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def is_test_id(text: str) -> bool:
    """Whether ``text`` is an ML Test Score rubric id such as ``infra-1``."""
    return _TEST_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence for an ML Test Score rubric test.

    Every component records these; the score is computed from them, never declared.
    """

    test_id: str
    passed: bool
    automated: bool
    project: str
    details: JSON = field(default_factory=dict)
    run_id: str | None = None
    model_name: str | None = None
    version: int | None = None
    artifact: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if not is_test_id(self.test_id):
            raise ValueError(
                f"evidence test id {self.test_id!r}: expected one of data-N, model-N, "
                "infra-N, monitor-N with N in 1..7"
            )
