"""Request headers as the sidecar reads them: case-insensitive names, several values each.

Built once per request from what the parser delivered; lookups by name are a dict access
(the first value of each name, lower-cased names), :meth:`Headers.getall` scans the few
headers a request has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar, overload

_D = TypeVar("_D")


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive, multi-valued headers (first value wins for ``[]``)."""

    __slots__ = ("_first", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items  # (lower-cased name, value), in the order received
        first: dict[str, str] = {}
        for name, value in items:
            if name not in first:
                first[name] = value
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _D) -> str | _D: ...
    def get(self, name: str, default: object = None) -> object:
        return self._first.get(name.lower(), default)

    def getall(self, name: str, default: list[str] | None = None) -> list[str]:
        """Every value of ``name``, in order; ``default`` (or a KeyError) when there is none."""
        key = name.lower()
        values = [value for item, value in self._items if item == key]
        if values:
            return values
        if default is None:
            raise KeyError(name)
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def items_all(self) -> list[tuple[str, str]]:
        """Every (lower-cased name, value) pair, repeated names included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"<Headers {sorted(self._first)}>"  # names only: values may be credentials
