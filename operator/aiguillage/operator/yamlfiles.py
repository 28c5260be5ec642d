"""Read YAML manifest files that may be hostile: bounded in size, depth and alias expansion.

``aiguillage render`` reads whatever a pull request contains, so reading a file must fail
fast and clearly, never exhaust memory or the stack:

- a file larger than :data:`MAX_FILE_BYTES` is refused before it is parsed;
- a file must be UTF-8 text (a BOM is allowed);
- nesting deeper than :data:`MAX_DEPTH` is refused while composing (PyYAML's composer is
  recursive: 20,000 levels would end in RecursionError);
- anchors and aliases are allowed (some GitOps repositories share blocks with them), but the
  nodes reachable through aliases are counted as they are resolved, and a file whose aliases
  expand to more than :data:`MAX_ALIASED_NODES` nodes is refused (a "billion laughs" document
  of 600 bytes expands to 10⁹ nodes once anything walks it).

Problems are raised as :class:`UnreadableFile` with a one-line reason, with the line when
there is one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100
MAX_ALIASED_NODES = 10_000


class UnreadableFile(Exception):
    """A file that cannot be read as manifests; the message is the one-line reason."""


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML this reader will not expand (too deep, too many aliased nodes)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth and alias expansion while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            node = self.anchors.get(event.anchor)
            if node is not None:
                self._aliased += self._size(node)
                if self._aliased > MAX_ALIASED_NODES:
                    raise _Refused(
                        problem=f"aliases expand to more than {MAX_ALIASED_NODES} nodes "
                        "(an alias bomb?)",
                        problem_mark=event.start_mark,
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"nested deeper than {MAX_DEPTH} levels",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _size(self, node: yaml.Node) -> int:
        """Nodes in ``node``'s subtree, aliases expanded (memoised: anchors are shared)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = size
        return size


def read_text(path: Path) -> str:
    """A file's text: bounded in size, UTF-8 (BOM allowed)."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device never end
        raise UnreadableFile("not a regular file")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML stream, as plain Python data."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # checks the characters: may raise already
        docs = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
        return docs
    except _Refused as exc:
        raise UnreadableFile(_with_line(exc, f"refused: {exc.problem}")) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc)
        first_line = reason.splitlines()[0] if reason.strip() else type(exc).__name__
        raise UnreadableFile(_with_line(exc, f"invalid YAML: {first_line}")) from None
    except (ValueError, RecursionError) as exc:
        # e.g. an integer of more digits than Python converts, an impossible date.
        raise UnreadableFile(f"invalid YAML value: {type(exc).__name__}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _with_line(exc: yaml.YAMLError, reason: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}: {reason}" if mark is not None else reason
