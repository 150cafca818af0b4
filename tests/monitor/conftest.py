"""Fixtures of the monitoring tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

from .helpers import workspace

__all__ = ["workspace"]
