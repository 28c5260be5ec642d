"""`Started`: the context-manager half of anything the dev tools start and stop.

`aiguillage.devtools.controlplane.ControlPlane` and `aiguillage.devtools.node.Node` are used
as ``with X() as x:`` or through ``start()``/``stop()``; this base gives them the former from
the latter.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Started"]


class Started:
    """``with obj:`` calls ``obj.start()``, then ``obj.stop()`` however the block ends."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
