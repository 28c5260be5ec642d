"""The compatibility suite: real agent frameworks against a real sidecar, on every provider format.

Runs in its own venv (``make test-compat`` builds ``.venv-compat`` from
``constraints-compat.txt``): the frameworks' dependencies conflict with each other's newest
versions and with the project's dev tools, so they are pinned together there.

Each test is one **cell** of the matrix in ``docs/compatibility.md``: a client (a framework
and how it is set up), a feature (text, tools, structured output...), a provider format (the
route it asks for, see :mod:`._stack`) and whether it streams. Tests declare their client
and feature with :func:`cell`; the hooks below record every cell's outcome and write them to
``$AIGUILLAGE_COMPAT_RESULTS`` (default ``.compat/results.json``) at the end of the session,
for ``python -m aiguillage.devtools.compatdoc`` to render. A cell that cannot work for a
reason outside the sidecar calls :func:`not_applicable` with that reason (the test still
checks what the client gets), which the matrix shows; any other skip is reported as one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.compat._stack import FORMATS, Stack, running_stack

# LiteLLM fetches its model price list from the internet at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

RESULTS = Path(os.environ.get("AIGUILLAGE_COMPAT_RESULTS", ".compat/results.json"))
NOT_APPLICABLE = "n/a: "
# The distributions whose versions the matrix names.
DISTRIBUTIONS = (
    "openai",
    "anthropic",
    "langchain-openai",
    "langchain-anthropic",
    "litellm",
    "llama-index-llms-openai-like",
    "pydantic-ai-slim",
    "openai-agents",
    "instructor",
    "llm-comply",
)

F = TypeVar("F", bound=Callable[..., Any])


def cell(client: str, features: list[str], *, streams: bool = True) -> Callable[[F], F]:
    """Make a test the cells of ``client`` × ``features`` × every format (× stream)."""

    def decorate(test: F) -> F:
        test = pytest.mark.parametrize("stream", [False, True] if streams else [False])(test)
        test = pytest.mark.parametrize("fmt", FORMATS)(test)
        test = pytest.mark.parametrize("feature", features)(test)
        return pytest.mark.compat_cell(client=client)(test)  # type: ignore[no-any-return]

    return decorate


def not_applicable(reason: str) -> None:
    """End the cell as not applicable, for ``reason`` (shown in the matrix)."""
    pytest.skip(NOT_APPLICABLE + reason)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


_cells: list[dict[str, Any]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("compat_cell")
    if marker is None or not hasattr(item, "callspec"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        params = item.callspec.params
        if report.skipped:
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
            reason = reason.removeprefix("Skipped: ")
            result = "n/a" if reason.startswith(NOT_APPLICABLE) else "skipped"
            reason = reason.removeprefix(NOT_APPLICABLE)
        else:
            result, reason = ("pass", "") if report.passed else ("fail", "")
        _cells.append(
            {
                "client": marker.kwargs["client"],
                "feature": params["feature"],
                "format": params["fmt"],
                "stream": params["stream"],
                "outcome": result,
                "reason": reason,
            }
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compat_cell(client): a cell of the compatibility matrix")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _cells:
        return
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    cells = sorted(_cells, key=lambda c: (c["client"], c["feature"], c["format"], c["stream"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"versions": versions, "cells": cells}, indent=1) + "\n")
