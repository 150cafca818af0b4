"""Edit a YAML file a person wrote without losing their comments or layout.

A ruamel.yaml round trip: the document is loaded as comment-carrying nodes, changed in place
and written back; lines not changed stay as written. New values are written as PyYAML writes
them, so that PyYAML (YAML 1.1, which readyml reads with) reads back the same value: ruamel's
own YAML 1.2 output would leave ``yes`` unquoted and write ``1e-05`` for ``1.0e-05``.
Callers parse the result again and compare before writing anything.
"""

from __future__ import annotations

import io
from typing import Any

import yaml


def _represent_null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


class EditableYaml:
    """A YAML document loaded for editing; :attr:`document` is the root node."""

    def __init__(self, text: str) -> None:
        """Load ``text``.

        Raises:
            ValueError: the text is not YAML ruamel can round-trip (e.g. a key given twice);
                the message is the parser's one-line problem.
        """
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError
        from ruamel.yaml.representer import RoundTripRepresenter
        from ruamel.yaml.util import load_yaml_guess_indent

        class Representer(RoundTripRepresenter):
            """Writes null as PyYAML does (ruamel leaves it blank)."""

        Representer.add_representer(type(None), _represent_null)  # on this class alone
        self._yaml = YAML(typ="rt")
        self._yaml.Representer = Representer
        self._yaml.preserve_quotes = True
        self._yaml.width = 1 << 16  # a long line a person wrote stays one line (ruamel folds at 80)
        try:
            _, indent, offset = load_yaml_guess_indent(text)  # keep the file's indentation
            if indent is not None and offset is not None and indent > offset:
                self._yaml.indent(mapping=indent - offset, sequence=indent, offset=offset)
            self.document: Any = self._yaml.load(text)
        except YAMLError as exc:
            problem = str(getattr(exc, "problem", "") or exc).splitlines()[0]
            raise ValueError(problem) from exc

    def node(self, value: Any, dumper: type[yaml.SafeDumper] = yaml.SafeDumper) -> Any:
        """``value`` as a node to put into the document, written as ``dumper`` writes it."""
        text = yaml.dump({"v": value}, Dumper=dumper, sort_keys=False, allow_unicode=True)
        return self._yaml.load(text)["v"]

    def append(self, mapping: Any, key: str, value: Any) -> None:
        """Add ``key`` (``value`` as :meth:`node` makes it) at the end of ``mapping``.

        ruamel keeps the blank and comment lines that follow a mapping on its last entry;
        they move to the new last entry, so that they still come after the mapping.
        """
        from ruamel.yaml.error import CommentMark
        from ruamel.yaml.tokens import CommentToken

        last = next(reversed(mapping), None) if len(mapping) else None
        entry = mapping.ca.items.get(last) if last is not None else None
        mapping[key] = self.node(value)
        token = entry[2] if entry is not None and len(entry) > 2 else None
        if token is None:
            return
        inline, newline, following = token.value.partition("\n")
        if not following:
            return
        if inline:
            token.value = inline + newline
        else:
            mapping.ca.items.pop(last)
        mapping.ca.items[key] = [None, None, CommentToken("\n" + following, CommentMark(0)), None]

    def dump(self) -> str:
        """The document's text, edits included."""
        buffer = io.StringIO()
        self._yaml.dump(self.document, buffer)
        return buffer.getvalue()
