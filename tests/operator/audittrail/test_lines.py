"""``lines.py``: chained lines are found with their exact bytes wherever a log pipeline put
them; everything else is skipped and counted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from aiguillage.operator.audittrail import lines as lines_module
from aiguillage.operator.audittrail.lines import BadTrail, read, records
from tests.operator.audittrail._trails import chain_lines, request, write


def sha(line: bytes) -> bytes:
    return hashlib.sha256(line).digest()


@pytest.fixture
def chain() -> list[bytes]:
    return chain_lines(None, [request("r1"), request("r2")], every=100)


def test_plain_lines_with_other_logs_in_between(tmp_path: Path, chain: list[bytes]) -> None:
    path = write(
        tmp_path / "a.log",
        [b"starting", chain[0], b"", b'{"level":"info"}', b"[1, 2]", chain[1], chain[2]],
    )
    trail = read([path])
    assert [(c.where.line, c.seq, c.digest) for c in trail.chained] == [
        (2, 1, sha(chain[0])),
        (6, 2, sha(chain[1])),
        (7, 3, sha(chain[2])),
    ]
    assert trail.skipped == 4
    assert [str(w) for w in trail.skipped_examples] == [f"{path}:1", f"{path}:3", f"{path}:4"]


def test_kubernetes_cri_lines_are_unwrapped_and_partial_lines_joined(
    tmp_path: Path, chain: list[bytes]
) -> None:
    """kubelet log files: ``<time> <stream> <F|P> <content>``; a long line is split into
    P parts ended by an F part (stdout and stderr parts may interleave)."""
    middle = len(chain[1]) // 2
    path = write(
        tmp_path / "0.log",
        [
            b"2026-01-01T00:00:00.000000001Z stdout F " + chain[0],
            b"2026-01-01T00:00:00.000000002Z stdout P " + chain[1][:middle],
            b"2026-01-01T00:00:00.000000003Z stderr F INFO something else",
            b"2026-01-01T00:00:00.000000004Z stdout F " + chain[1][middle:],
            b"2026-01-01T00:00:00.000000005Z stderr F " + chain[2],
        ],
    )
    trail = read([path])
    assert [c.digest for c in trail.chained] == [sha(line) for line in chain]
    assert [c.where.line for c in trail.chained] == [1, 2, 5]
    assert trail.skipped == 1


def test_docker_json_file_lines_are_unwrapped(tmp_path: Path, chain: list[bytes]) -> None:
    wrapped = [
        orjson.dumps({"log": line.decode() + "\n", "stream": "stdout", "time": "2026-01-01"})
        for line in chain
    ]
    trail = read([write(tmp_path / "c-json.log", wrapped)])
    assert [c.digest for c in trail.chained] == [sha(line) for line in chain]  # byte for byte


def test_crlf_line_ends_are_not_part_of_a_line(tmp_path: Path, chain: list[bytes]) -> None:
    path = tmp_path / "windows.log"
    path.write_bytes(b"".join(line + b"\r\n" for line in chain))
    assert [c.digest for c in read([path]).chained] == [sha(line) for line in chain]


def test_records_of_a_sidecar_without_chain_are_kept_apart(tmp_path: Path) -> None:
    old = request("old").to_json()
    trail = read([write(tmp_path / "old.log", [old])])
    assert trail.chained == []
    assert trail.unchained == 1
    assert [obj["requestId"] for obj in records([tmp_path / "old.log"])] == ["old"]


@pytest.mark.parametrize(
    "line",
    [
        b'{"chain":"c","seq":1,"prev":"00","requestId":"x"}',  # prev is not a sha256
        b'{"chain":"c","seq":"1","prev":"' + b"0" * 64 + b'"}',  # seq is a string
        b'{"chain":"c","seq":0,"prev":"' + b"0" * 64 + b'"}',  # seq starts at 1
        b'{"chain":"c","seq":true,"prev":"' + b"0" * 64 + b'"}',
        b'{"chain":"c","seq":1,"prev":"' + b"0" * 32,  # cut short
    ],
)
def test_lines_that_look_chained_but_are_not_are_damaged(tmp_path: Path, line: bytes) -> None:
    trail = read([write(tmp_path / "bad.log", [line])])
    assert trail.chained == []
    assert [w.line for w in trail.damaged] == [1]
    assert trail.skipped == 1


def test_an_over_long_line_is_skipped_without_being_held(
    tmp_path: Path, chain: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lines_module, "MAX_LINE", 4096)
    path = write(tmp_path / "long.log", [chain[0], b"{" + b"x" * 20000 + b"}", chain[1]])
    trail = read([path])
    assert [c.where.line for c in trail.chained] == [1, 3]
    assert trail.skipped == 1


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(BadTrail, match=r"missing\.log: cannot be read: No such file"):
        read([tmp_path / "missing.log"])
    with pytest.raises(BadTrail, match="is a directory"):
        read([tmp_path])


def test_records_are_read_again_one_at_a_time_each_once(tmp_path: Path, chain: list[bytes]) -> None:
    """The report's pass: request records only (no checkpoint, no other line), a line
    delivered twice counted once, an unchained record kept."""
    old = request("old").to_json()
    path = write(tmp_path / "a.log", [chain[0], b"noise", chain[1], chain[0], old, chain[2]])
    assert [obj["requestId"] for obj in records([path])] == ["r1", "r2", "old"]
