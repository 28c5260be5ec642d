"""Starting and stopping the sidecar (``main.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.sidecar.main import Sidecar, parse_listen


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:4000", ("127.0.0.1", 4000)),
        (":4000", ("127.0.0.1", 4000)),  # loopback unless told otherwise
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("[::1]:4000", ("::1", 4000)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


def test_start_binds_loopback_and_stop_releases_the_port(lt: LoopThread, tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path / "config", tmp_path / "credentials", str(tmp_path / "a.jsonl"))
    url = lt.run(sidecar.start("127.0.0.1:0"))
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    lt.run(sidecar.stop())

    again = Sidecar(tmp_path / "config", tmp_path / "credentials", str(tmp_path / "b.jsonl"))
    assert lt.run(again.start(f"127.0.0.1:{port}")) == url
    lt.run(again.stop())
