"""The model table: the default model for /predict stays the same model by name; pinned
versions are served beside the current one."""

from __future__ import annotations

from typing import cast

import pytest

from readyml.errors import NotFound
from readyml.serve._http import error_content
from readyml.serve.deployment import Deployment, ModelTable, VersionConflict


class _Version:
    """Just what the table reads of a deployment."""

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version_label = str(version)


def _version(name: str, version: int) -> Deployment:
    return cast(Deployment, _Version(name, version))


def _deployment(name: str) -> Deployment:
    return _version(name, 1)


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


def test_pinned_versions_are_served_beside_the_current_one_by_version_only() -> None:
    table = ModelTable()
    one, two, three = _version("iris", 1), _version("iris", 2), _version("iris", 3)
    table.put(one)
    assert table.pin(three) is None and table.pin(two) is None
    assert table.versions("iris") == ["1", "2", "3"]
    assert table.get("iris") is one  # routes without a version: the current one
    assert table.get("iris", "2") is two and table.get("iris", "3") is three
    assert table.pinned("iris") == [two, three]
    assert set(table) == {one, two, three} and len(table) == 1 and table.names() == ["iris"]
    with pytest.raises(NotFound) as caught:
        table.get("iris", "4")
    assert error_content(caught.value)["expected"] == "one of the versions it serves (1, 2, 3)"
    again = _version("iris", 2)
    assert table.pin(again) is two  # pinned anew: the old one is returned, to drain


def test_a_version_loaded_as_current_is_no_longer_pinned() -> None:
    table = ModelTable()
    one, two = _version("iris", 1), _version("iris", 2)
    table.put(one)
    table.pin(two)
    current = _version("iris", 2)
    assert table.put(current) == [one, two]  # both drained by the caller
    assert table.versions("iris") == ["2"] and table.get("iris", "2") is current


def test_the_current_version_is_neither_pinned_nor_unpinned() -> None:
    table = ModelTable()
    table.put(_version("iris", 1))
    with pytest.raises(VersionConflict, match="expected another version than 'iris'"):
        table.pin(_version("iris", 1))
    with pytest.raises(VersionConflict) as caught:
        table.unpin("iris", "1")
    assert caught.value.status_code == 409
    assert str(caught.value) == (
        "version: expected a pinned version of 'iris' (none), found 1, the current one; "
        "unload without a version to stop serving every version"
    )
    with pytest.raises(NotFound, match="not-loaded"):
        table.pin(_version("not-loaded", 2))


def test_unloading_a_model_stops_every_version_and_unpinning_one_only_it() -> None:
    table = ModelTable()
    one, two, three = _version("iris", 1), _version("iris", 2), _version("iris", 3)
    table.put(one)
    table.pin(two)
    table.pin(three)
    assert table.unpin("iris", "3") is three
    assert table.versions("iris") == ["1", "2"]
    assert table.remove("iris") == [one, two]
    assert table.versions("iris") == [] and list(table) == []
    table.put(_version("iris", 1))
    assert table.versions("iris") == ["1"]  # nothing pinned survives an unload
