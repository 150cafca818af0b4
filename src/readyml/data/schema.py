"""The feature schema: inferred from training data, kept as reviewed YAML in the project.

Inference proposes; people decide. :func:`write_schema` therefore keeps every feature that
is already in the file exactly as written (descriptions, tightened ranges, edited categories,
``required`` flags, ``meta``) and only adds features for new columns, unless ``overwrite``.
To re-infer one feature, delete it from the file; to re-infer the statistics of all while
keeping what people wrote, :func:`refresh_schema`. Either way the file is edited in place:
its comments, quoting and layout stay, and only the values that change are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, cast

import pandas as pd
import pyarrow as pa
import yaml

from readyml._yaml_edit import EditableYaml
from readyml.data._types import FEATURE_TYPES, FeatureType
from readyml.data.profile import ColumnProfile, Profile, profile_frame
from readyml.errors import SchemaError

SCHEMA_VERSION: Final = 1
_FEATURE_KEYS: Final = frozenset(
    {"name", "type", "nullable", "min", "max", "categories", "required", "description", "meta"}
)


@dataclass
class FeatureSchema:
    """What one feature must look like.

    ``min``/``max`` bound numeric values (``None``: unbounded); ``categories`` lists the
    allowed values of a ``category`` feature (``None``: any); ``meta`` holds free-form keys
    for later rules (owner, deprecation, ...).
    """

    name: str
    type: FeatureType
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    required: bool = True
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in YAML key order; unset bounds and categories are left out."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.categories is not None:
            out["categories"] = list(self.categories)
        out["required"] = self.required
        out["description"] = self.description
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


@dataclass
class Schema:
    """An ordered list of feature schemas, and which feature is the label.

    >>> import pandas as pd
    >>> schema = infer_schema(pd.DataFrame({"age": [31, 45], "city": ["Oslo", "Rome"]}))
    >>> [(f.name, f.type, f.min, f.max) for f in schema.features]
    [('age', 'int', 31, 45), ('city', 'category', None, None)]
    >>> Schema.from_yaml(schema.to_yaml()) == schema
    True
    """

    features: list[FeatureSchema]
    label: str | None = None

    @property
    def names(self) -> list[str]:
        """Feature names in order."""
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSchema | None:
        """The feature called ``name``, or ``None``."""
        return next((f for f in self.features if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with ``format_version``."""
        return {
            "format_version": SCHEMA_VERSION,
            "label": self.label,
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: object, *, source: str = "schema") -> Schema:
        """Validate and build a schema; errors name the offending key.

        Raises:
            SchemaError: a key is missing, unknown or has a value of the wrong kind.
        """
        if not isinstance(data, Mapping):
            raise SchemaError(f"{source}: expected a mapping, found {type(data).__name__}")
        version = data.get("format_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SchemaError(f"{source}: format_version: expected 1, found {version!r}")
        unknown = sorted(set(data) - {"format_version", "label", "features"})
        if unknown:
            raise SchemaError(f"{source}: {unknown[0]}: unknown key")
        raw = data.get("features")
        if not isinstance(raw, list):
            raise SchemaError(f"{source}: features: expected a list, found {_kind(raw)}")
        features = [_feature(item, f"{source}: features[{i}]") for i, item in enumerate(raw)]
        names = [f.name for f in features]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SchemaError(f"{source}: features[{i}].name: {name!r} appears twice")
        label = data.get("label")
        if label is not None and not isinstance(label, str):
            raise SchemaError(f"{source}: label: expected a string, found {_kind(label)}")
        return cls(features=features, label=label)

    def to_yaml(self) -> str:
        """YAML text, features in order, for checking into the project."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "schema") -> Schema:
        """Parse YAML text (see :meth:`from_dict`).

        Raises:
            SchemaError: the text is not YAML or not a schema.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise SchemaError(f"{source}: expected YAML, found invalid text{where}") from exc
        except ValueError as exc:  # a date-like scalar that is no date, such as 2026-13-01
            raise SchemaError(f"{source}: expected YAML, found an invalid date ({exc})") from exc
        return cls.from_dict(data, source=source)


_LINE_BREAKS: Final = ("\x85", "\u2028", "\u2029")  # YAML reads these back as breaks


class _Dumper(yaml.SafeDumper):
    """Safe YAML whose strings read back as written: ones with Unicode breaks are quoted."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = '"' if any(mark in text for mark in _LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def infer_schema(
    df: pd.DataFrame | pa.Table | Profile, *, label: str | None = None, max_categories: int = 50
) -> Schema:
    """Infer a schema from training data, or from its profile.

    Strings with at most ``max_categories`` distinct values become ``category`` features
    listing them; numeric features get the observed range; columns with nulls are nullable.
    A profile gives the same schema as its data (e.g. from
    :func:`~readyml.data.profile_file`, for files larger than memory).

    Raises:
        DataError: ``df`` is not a frame, table or profile, or ``label`` is not one of its
            columns; ``max_categories`` is negative.
    """
    profile = df if isinstance(df, Profile) else profile_frame(df)
    if max_categories < 0:
        raise SchemaError(f"schema: max_categories must be 0 or more, found {max_categories}")
    if label is not None and label not in profile.columns:
        raise SchemaError(f"schema: label column {label!r} not found in the data")
    return Schema(
        features=[_infer(c, max_categories) for c in profile.columns.values()], label=label
    )


# Share of a text feature's values that parse as numbers above which the rest look like
# stray markers ('n/a', '?') that turned a numeric column into text.
MOSTLY_NUMERIC = 0.9


def mostly_numeric_text(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Notes on ``string`` and ``category`` features whose values are mostly numbers.

    A few stray strings in a numeric column make pandas read the column as text, and an
    inferred schema then types it ``string`` without a word; each note names the column,
    how many values are numbers, and up to three of those that are not.
    """
    notes = []
    for feature in schema.features:
        if feature.type not in ("string", "category") or feature.name not in frame.columns:
            continue
        values = frame[feature.name].dropna()
        if values.empty:
            continue
        text = values.astype(str)
        numbers = pd.to_numeric(text, errors="coerce")
        parsed = int(numbers.notna().sum())
        if MOSTLY_NUMERIC * len(text) <= parsed < len(text):
            stray = ", ".join(repr(v) for v in text[numbers.isna()].unique()[:3])
            notes.append(
                f"column '{feature.name}' is typed {feature.type} though {parsed} of "
                f"{len(text)} values are numbers (not numbers: {stray})"
            )
    return notes


def refresh_schema(old: Schema, inferred: Schema) -> Schema:
    """``inferred``, keeping what people wrote in ``old``: re-inferring a reviewed schema.

    A feature still in the data takes the inferred ``type``, ``nullable``, ``min``, ``max``
    and ``categories`` and keeps its ``required`` flag, ``description`` and ``meta`` (and,
    through :func:`write_schema`, its comments). Features no longer in the data are left
    out; the others keep ``old``'s order, new ones follow. The label is ``inferred``'s, else
    ``old``'s.
    """
    features = []
    for feature in old.features:
        fresh = inferred.feature(feature.name)
        if fresh is not None:
            features.append(
                replace(
                    fresh,
                    required=feature.required,
                    description=feature.description,
                    meta=dict(feature.meta),
                )
            )
    known = set(old.names)
    features += [f for f in inferred.features if f.name not in known]
    label = inferred.label if inferred.label is not None else old.label
    return Schema(features=features, label=label)


def write_schema(schema: Schema, path: str | Path, *, overwrite: bool = False) -> Schema:
    """Write ``schema`` as YAML, keeping the features already in the file unless ``overwrite``.

    An existing file is edited in place, so its comments, quoting and layout survive: values
    that stay the same are left as written, others are replaced, features that go are
    removed with their comments and new ones are added.

    Returns:
        The schema as written: existing features unchanged and in their order, then the new
        ones; the existing label wins when set. With ``overwrite``, ``schema`` itself.

    Raises:
        SchemaError: the existing file is malformed, or cannot be edited in place without
            changing what it says (fix it, or pass ``overwrite=True`` to replace it whole).
    """
    target = Path(path)
    merged, text = schema, None
    try:
        old = load_schema(target) if target.exists() else None
    except SchemaError:
        if not overwrite:
            raise
        old = None  # not a schema: replaced as a whole
    if old is not None:
        if not overwrite:
            added = [f for f in schema.features if old.feature(f.name) is None]
            merged = Schema(features=[*old.features, *added], label=old.label or schema.label)
        if merged == old:
            return merged  # nothing to change: the file is left alone
        try:
            text = _edited(target, old, merged)
        except SchemaError:
            if not overwrite:
                raise
    # A new file, or one replaced as a whole (overwrite, and it cannot be edited in place).
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(merged.to_yaml() if text is None else text, encoding="utf-8")
    temporary.replace(target)
    return merged


# Canonical key orders, for a key added to a document that lacks it.
_TOP_KEYS: Final = ("format_version", "label", "features")
_FEATURE_ORDER: Final = (
    "name", "type", "nullable", "min", "max", "categories", "required", "description", "meta"
)  # fmt: skip


def _edited(target: Path, old: Schema, new: Schema) -> str:
    """The text of ``target`` (which reads as ``old``) edited to read as ``new``.

    Raises:
        SchemaError: the file cannot be edited in place without changing what it says.
    """
    # ruamel.yaml round trip, not a refusal or a second file: reviewers' comments stay put.
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    source = f"schema file '{target}'"
    try:
        editable = EditableYaml(target.read_text(encoding="utf-8"))
    except ValueError as exc:  # read by PyYAML, not here: e.g. a key given twice
        raise SchemaError(f"{source}: cannot edit it in place ({exc})") from exc
    document = editable.document
    items = document.get("features") if isinstance(document, CommentedMap) else None
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items or []]
    if not isinstance(items, CommentedSeq) or names != old.names:
        raise SchemaError(f"{source}: cannot edit it in place (its features read differently)")

    def node(value: Any) -> Any:
        return editable.node(value, _Dumper)

    _set(document, _TOP_KEYS, "label", old.label, new.label, node)
    wanted = set(new.names)
    kept = {name: item for name, item in zip(names, items, strict=True) if name in wanted}
    for index in reversed(range(len(items))):
        if names[index] not in wanted:
            del items[index]
    order = [name for name in new.names if name in kept]
    if order != [name for name in names if name in wanted]:  # reordered: rebuilt in order
        del items[:]
        items.extend(kept[name] for name in order)
    if not items:
        items.fa.set_block_style()
    for index, feature in enumerate(new.features):
        before = old.feature(feature.name)
        if before is None:
            items.insert(index, node(feature.to_dict()))
            continue
        item, was, now = kept[feature.name], before.to_dict(), feature.to_dict()
        for key in _FEATURE_ORDER:
            _set(item, _FEATURE_ORDER, key, was.get(key), now.get(key), node)
    text = editable.dump()
    try:
        unchanged = Schema.from_yaml(text, source=source) == new
    except SchemaError:
        unchanged = False
    if not unchanged:
        raise SchemaError(
            f"{source}: cannot edit it in place without changing what it says; move it "
            "aside to write a new one"
        )
    return text


def _set(
    mapping: Any, order: tuple[str, ...], key: str, was: Any, now: Any, node: Callable[[Any], Any]
) -> None:
    """Make ``mapping[key]`` read as ``now``; left as written when it already reads so."""
    if was == now:
        return
    if now is None and key not in _TOP_KEYS:
        mapping.pop(key, None)
    elif key in mapping:
        mapping[key] = node(now)
    else:
        position = sum(1 for k in mapping if k in order and order.index(k) < order.index(key))
        mapping.insert(position, key, node(now))


def load_schema(path: str | Path) -> Schema:
    """Read a schema YAML file.

    Raises:
        SchemaError: the file is missing or malformed; the message names the YAML key.
    """
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SchemaError(f"schema file '{target}' not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"schema file '{target}': cannot read it ({exc})") from exc
    return Schema.from_yaml(text, source=f"schema file '{target}'")


def _infer(column: ColumnProfile, max_categories: int) -> FeatureSchema:
    kind = column.type
    feature = FeatureSchema(name=column.name, type="string", nullable=column.missing > 0)
    if kind in ("float", "int"):
        feature.type = cast(FeatureType, kind)
        if column.min is not None and column.max is not None:
            cast_ = int if kind == "int" else float
            feature.min, feature.max = cast_(column.min), cast_(column.max)
    elif kind in ("bool", "datetime"):
        feature.type = cast(FeatureType, kind)
    elif kind == "category" or (column.distinct <= max_categories and column.n_values > 0):
        top = column.top(max_categories + 1)
        feature.type = "category"
        if len(top) <= max_categories and sum(c for _, c in top) == column.n_values:
            feature.categories = sorted(v for v, _ in top)
        elif kind != "category":
            feature.type = "string"
    return feature


def _feature(item: object, where: str) -> FeatureSchema:
    if not isinstance(item, Mapping):
        raise SchemaError(f"{where}: expected a mapping, found {_kind(item)}")
    unknown = sorted(set(item) - _FEATURE_KEYS)
    if unknown:
        raise SchemaError(f"{where}.{unknown[0]}: unknown key")
    name = _typed(item, "name", str, where, required=True)
    kind = _typed(item, "type", str, where, required=True)
    if kind not in FEATURE_TYPES:
        raise SchemaError(
            f"{where}.type: expected one of {', '.join(FEATURE_TYPES)}, found {kind!r}"
        )
    low = _number(item, "min", where)
    high = _number(item, "max", where)
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{where}.min: expected at most max ({high}), found {low}")
    categories = item.get("categories")
    if categories is not None:
        if not isinstance(categories, list):
            raise SchemaError(f"{where}.categories: expected a list, found {_kind(categories)}")
        if kind not in ("category", "string"):
            # Checked only for text values: on a number it would flag every row.
            raise SchemaError(
                f"{where}.categories: expected only on a category or string feature, found "
                f"them on type {kind}"
            )
        categories = [str(c) for c in categories]
    meta = item.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise SchemaError(f"{where}.meta: expected a mapping, found {_kind(meta)}")
    return FeatureSchema(
        name=name,
        type=cast(FeatureType, kind),
        nullable=_typed(item, "nullable", bool, where, default=True),
        min=low,
        max=high,
        categories=categories,
        required=_typed(item, "required", bool, where, default=True),
        description=_typed(item, "description", str, where, default="") or "",
        meta=dict(meta),
    )


def _typed(
    item: Mapping[str, Any],
    key: str,
    kind: type[Any],
    where: str,
    *,
    required: bool = False,
    default: Any = None,
) -> Any:
    if key not in item or item[key] is None:
        if required:
            raise SchemaError(f"{where}.{key}: required key not found")
        return default
    value = item[key]
    if not isinstance(value, kind):
        raise SchemaError(f"{where}.{key}: expected {kind.__name__}, found {_kind(value)}")
    return value


def _number(item: Mapping[str, Any], key: str, where: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        # NaN compares false with everything: as a bound it would switch the check off.
        raise SchemaError(f"{where}.{key}: expected a number, found {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:60]
