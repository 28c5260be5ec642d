"""Run the ``aiguillage`` command while recording what each imported module costs in memory.

Run by `aiguillage.devtools.bench.imports` as a script (standard library only, so that it
adds nothing to what it measures)::

    python -X importtime importhook.py OUT.json sidecar --config-dir DIR --listen ADDR

A finder placed first on ``sys.meta_path`` wraps the loader of every module found, and
reads the process's resident set size (``/proc/self/statm``) before the module is created
(C extensions are loaded then) and after its code has run. When the process exits
(SIGTERM included: the sidecar stops cleanly), OUT.json receives the RSS when this script
started and one record per module: name, the index of the module whose import caused it,
RSS before and after in KiB. ``-X importtime`` prints the matching times on stderr.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
from types import ModuleType
from typing import Any

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_records: list[dict[str, Any]] = []
_open: list[int] = []  # indexes of the records being imported, innermost last


def rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE_KB


def _begin(name: str) -> None:
    _open.append(len(_records))
    parent = _open[-2] if len(_open) > 1 else None
    _records.append({"name": name, "parent": parent, "rss_before_kb": rss_kb(),
                     "t0_ns": time.perf_counter_ns()})  # fmt: skip


def _end(name: str) -> None:
    if _open and _records[_open[-1]]["name"] == name:
        record = _records[_open.pop()]
        record["rss_after_kb"] = rss_kb()
        record["ns"] = time.perf_counter_ns() - record.pop("t0_ns")


class _MeasuredLoader:
    """Delegates to the real loader; puts it back on the module before running its code."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        _begin(spec.name)
        create = getattr(self._real, "create_module", None)
        try:
            return create(spec) if create is not None else None
        except BaseException:
            _end(spec.name)
            raise

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        if not _open or _records[_open[-1]]["name"] != name:
            _begin(name)  # created elsewhere (importlib.util.module_from_spec)
        module.__loader__ = self._real
        if module.__spec__ is not None:
            module.__spec__.loader = self._real
        try:
            self._real.exec_module(module)
        finally:
            _end(name)


class _MeasuringFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = (
                find(fullname, path, target) if find is not None else None
            )
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _MeasuredLoader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    started = rss_kb()

    def dump() -> None:
        with open(out, "w") as fh:
            json.dump({"start_rss_kb": started, "records": _records}, fh)

    atexit.register(dump)
    sys.meta_path.insert(0, _MeasuringFinder())
    sys.argv = ["aiguillage", *args]
    from aiguillage.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
