"""Reading audit trails as collected: which lines are chained audit lines, and their bytes.

A trail reaches an auditor through a log pipeline, so a file may hold lines of many sidecars
interleaved, the sidecar's own log lines, other containers' lines, and lines wrapped by the
container runtime. Each physical line is one of:

- a chained line (``{"chain":...,"seq":...,"prev":...}``): a request record or a checkpoint;
  the chain hashes exact bytes, not parsed JSON, so each line's SHA-256 is taken as read;
- a request record without chain fields (written by a sidecar older than the chain): counted
  as unchained, and reported on;
- anything else: skipped, and counted.

Trails are large (a month of a busy namespace is millions of lines), so :func:`read` keeps
only what verification needs of each record line (where, chain, seq, the two hashes, the
namespace it claims), whole lines only for checkpoints; the report reads the files a second
time with :func:`records`, one record at a time.

Wrapped lines are unwrapped first: the Kubernetes CRI format that kubelets write under
``/var/log/pods`` (``<time> stdout F <line>``, with ``P`` partial lines joined), and Docker's
json-file format (``{"log": "<line>\\n", "stream": ..., "time": ...}``).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_CRI = re.compile(rb"^(\S+) (stdout|stderr) ([FP])(?: (.*))?$", re.DOTALL)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_LINE = 16 * 1024 * 1024  # a line longer than this is not an audit line (and not read whole)


class BadTrail(Exception):
    """A file that cannot be read at all (missing, a directory, unreadable)."""


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int
    # The container stream a wrapped line came from (stdout, stderr), when the wrapper says:
    # a runtime keeps each stream's order, not the order between them.
    stream: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class ChainedLine:
    """One line of a sidecar's chain: a request record or a checkpoint."""

    where: Where
    chain: str
    seq: int
    prev: bytes  # the SHA-256 (32 bytes) of the line before, as this line states it
    digest: bytes  # this line's SHA-256
    namespace: str | None  # the namespace a record claims (None for checkpoints)
    # Checkpoints only: the exact bytes (their signature covers them) and the parsed line.
    raw: bytes | None = None
    obj: dict[str, Any] | None = None

    @property
    def checkpoint(self) -> bool:
        return self.obj is not None


@dataclass
class Trail:
    """Everything read from the input files."""

    files: list[str] = field(default_factory=list)
    chained: list[ChainedLine] = field(default_factory=list)
    unchained: int = 0  # request records without chain fields
    skipped: int = 0  # lines that are not audit lines (other logs, garbage)
    skipped_examples: list[Where] = field(default_factory=list)
    # Lines that start like a chained line but are not one (cut, or edited into bad JSON).
    damaged: list[Where] = field(default_factory=list)

    def chains(self) -> dict[str, list[ChainedLine]]:
        """Chained lines by chain, each in input order (files in the order given)."""
        out: dict[str, list[ChainedLine]] = {}
        for line in self.chained:
            out.setdefault(line.chain, []).append(line)
        return out


def read(paths: Iterable[Path]) -> Trail:
    """Read every file; raises :class:`BadTrail` for a file that cannot be read."""
    trail = Trail()
    for path in paths:
        name = str(path)  # one string shared by every line's Where
        trail.files.append(name)
        try:
            with path.open("rb") as handle:
                for number, stream, raw in _unwrapped(handle):
                    _classify(trail, Where(name, number, stream), raw)
        except IsADirectoryError:
            raise BadTrail(f"{path}: is a directory; give the log files in it") from None
        except OSError as exc:
            raise BadTrail(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return trail


def _unwrapped(handle: Any) -> Iterator[tuple[int, str, bytes]]:
    """(line number, stream, content) with CRI and Docker wrappers taken off (stream: ""
    for a plain line); CRI partial lines (``P``) are joined to the next full line of the same
    stream, numbered by their first."""
    partial: dict[bytes, tuple[int, bytes]] = {}
    for number, physical in enumerate(_bounded_lines(handle), start=1):
        line = physical[:-1] if physical.endswith(b"\n") else physical
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] == b"{":
            yield number, *_docker_content(line)
            continue
        cri = _CRI.match(line)
        if cri is None:
            yield number, "", line
            continue
        stream, tag, content = cri.group(2), cri.group(3), cri.group(4) or b""
        first, before = partial.pop(stream, (number, b""))
        if tag == b"P":
            partial[stream] = (first, before + content)
        else:
            yield first, stream.decode(), before + content
    for stream, (first, content) in partial.items():  # a file ending inside a partial line
        yield first, stream.decode(), content


def _bounded_lines(handle: Any) -> Iterator[bytes]:
    """Physical lines, each cut at :data:`MAX_LINE` bytes (the rest of a longer line is read
    and dropped, so one huge line never sits in memory whole)."""
    while True:
        line = handle.readline(MAX_LINE)
        if not line:
            return
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            while (more := handle.readline(MAX_LINE)) and not more.endswith(b"\n"):
                pass
            yield b"\0 an over-long line"  # counted as skipped, never parsed
            continue
        yield line


def _docker_content(line: bytes) -> tuple[str, bytes]:
    """(stream, content) of a Docker json-file line; ("", line) for any other JSON line."""
    if not line.startswith(b'{"log":'):
        return "", line
    try:
        outer = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "", line
    inner = outer.get("log") if isinstance(outer, dict) else None
    if isinstance(inner, str) and isinstance(outer.get("stream"), str):
        return outer["stream"], inner.rstrip("\n").encode()
    return "", line


def _chained(obj: dict[str, Any]) -> tuple[str, int, bytes] | None:
    """(chain, seq, prev) of a well-formed chained line."""
    chain, seq, prev = obj.get("chain"), obj.get("seq"), obj.get("prev")
    if (
        isinstance(chain, str)
        and chain
        and type(seq) is int
        and seq > 0
        and isinstance(prev, str)
        and _HEX64.match(prev)
    ):
        return chain, seq, bytes.fromhex(prev)
    return None


def _is_record(obj: dict[str, Any]) -> bool:
    return "requestId" in obj and "attempts" in obj


def _classify(trail: Trail, where: Where, raw: bytes) -> None:
    obj = _json_object(raw)
    if obj is None:
        if raw.startswith(b'{"chain":'):
            trail.damaged.append(where)
        _skip(trail, where)
        return
    link = _chained(obj)
    if link is not None:
        chain, seq, prev = link
        digest = hashlib.sha256(raw).digest()
        if obj.get("kind") == "checkpoint":
            trail.chained.append(ChainedLine(where, chain, seq, prev, digest, None, raw, obj))
        else:
            ns = obj.get("namespace")
            ns = sys.intern(ns) if isinstance(ns, str) else ""
            trail.chained.append(ChainedLine(where, sys.intern(chain), seq, prev, digest, ns))
    elif "chain" in obj:
        trail.damaged.append(where)
        _skip(trail, where)
    elif _is_record(obj):
        trail.unchained += 1
    else:
        _skip(trail, where)


def records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every request record of the files, chained or not, each once (lines delivered twice
    byte for byte are counted once), one at a time; the files were read by :func:`read`."""
    seen: set[bytes] = set()
    for path in paths:
        try:
            with path.open("rb") as handle:
                for _, _, raw in _unwrapped(handle):
                    obj = _json_object(raw)
                    if obj is None or not _is_record(obj) or obj.get("kind") == "checkpoint":
                        continue
                    if "chain" in obj:
                        if _chained(obj) is None:
                            continue
                        digest = hashlib.sha256(raw).digest()
                        if digest in seen:
                            continue
                        seen.add(digest)
                    yield obj
        except OSError as exc:
            raise BadTrail(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    if not raw.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _skip(trail: Trail, where: Where) -> None:
    trail.skipped += 1
    if len(trail.skipped_examples) < 3:
        trail.skipped_examples.append(where)
