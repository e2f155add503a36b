"""A minimal XML tree that remembers where each element starts (file, line, column).

ElementTree drops source positions; import errors must name the line and column of the bad
value, so elements are built from :mod:`xml.parsers.expat` events directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from tme_sim.errors import TMEError


class ImportFormatError(TMEError):
    """An imported file is malformed or unusable (the message names file, line and column)."""


@dataclass
class Node:
    """One XML element: ``tag``, ``attrs``, stripped ``text``, ``children`` and its start position."""

    tag: str
    attrs: dict[str, str]
    line: int
    col: int
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def child(self, tag: str) -> Node | None:
        """The first child called ``tag`` (None if there is none)."""
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list[Node]:
        """Every child called ``tag``."""
        return [c for c in self.children if c.tag == tag]

    def find(self, path: str) -> Node | None:
        """The element at a slash-separated path of first children (``"phenotype/cycle"``)."""
        node: Node | None = self
        for part in path.split("/"):
            node = node.child(part) if node is not None else None
        return node


def parse_xml(path: Path) -> Node:
    """Parse ``path``; a syntax error is an :class:`ImportFormatError` naming file, line and column."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    parser = expat.ParserCreate()
    stack: list[Node] = []
    root: list[Node] = []
    texts: list[list[str]] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = Node(tag, dict(attrs), parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)
        texts.append([])

    def end(tag: str) -> None:
        node = stack.pop()
        node.text = "".join(texts.pop()).strip()

    def chars(data: str) -> None:
        if texts:
            texts[-1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        raise ImportFormatError(f"{path}:{exc.lineno}:{exc.offset + 1}: XML syntax error: {reason}") from None
    if not root:
        raise ImportFormatError(f"{path}:1:1: no XML element found")
    return root[0]
