"""The model table: the default model for /predict stays the same model by name."""

from __future__ import annotations

from typing import cast

import pytest

from readyml.errors import NotFound
from readyml.serve._http import error_content
from readyml.serve.deployment import Deployment, ModelTable


class _Named:
    """Just what the table reads of a deployment."""

    def __init__(self, name: str) -> None:
        self.name = name


def _deployment(name: str) -> Deployment:
    return cast(Deployment, _Named(name))


def test_the_default_model_is_the_first_put_even_after_an_unload_and_a_reload() -> None:
    table = ModelTable()
    iris, mixed = _deployment("iris"), _deployment("mixed")
    table.put(iris)
    table.put(mixed)
    assert table.default() is iris
    table.remove("iris")
    # Not mixed: it may take the same features and predict something else.
    with pytest.raises(NotFound) as caught:
        table.default()
    content = error_content(caught.value)
    assert content["field"] == "model"
    assert content["expected"].startswith("?model=NAME while the default model 'iris' is unloaded")
    assert "loaded: mixed" in content["expected"]
    assert table.default_or_none() is None
    again = _deployment("iris")
    table.put(again)
    assert table.default() is again and table.names() == ["mixed", "iris"]
