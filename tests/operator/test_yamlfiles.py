"""Reading hostile YAML files: bounded in size, depth and alias expansion (``yamlfiles.py``)."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from aiguillage.operator.yamlfiles import (
    MAX_FILE_BYTES,
    UnreadableFile,
    load_documents,
    read_text,
)

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, in 342 bytes.
LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_an_alias_bomb_is_refused_fast_in_bounded_memory() -> None:
    assert len(LAUGHS) < 600
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(UnreadableFile) as caught:
            load_documents(LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (
        "line 5: refused: aliases expand to more than 10000 nodes (an alias bomb?)"
    )
    assert peak < 10 * 1024 * 1024
    assert time.process_time() - started < 5  # CPU time, not wall clock: contention-proof


def test_ordinary_anchors_and_merge_keys_are_read() -> None:
    text = """\
pricing: &price {inputPerMillion: "0.1", outputPerMillion: "0.3"}
models:
- {name: a, pricing: *price}
- {name: b, pricing: {<<: *price, outputPerMillion: "0.4"}}
"""
    [doc] = load_documents(text)
    assert doc["models"][1]["pricing"] == {"inputPerMillion": "0.1", "outputPerMillion": "0.4"}


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(UnreadableFile, match=r"^line 1: refused: nested deeper than 100 levels$"):
        load_documents("[" * 20_000 + "]" * 20_000)
    with pytest.raises(UnreadableFile, match="nested deeper"):
        load_documents("".join(f"{' ' * i}k{i}:\n" for i in range(5_000)))


def test_values_python_cannot_build_are_problems() -> None:
    with pytest.raises(UnreadableFile, match="invalid YAML value: ValueError"):
        load_documents("n: " + "9" * 10_000)
    with pytest.raises(UnreadableFile, match="invalid YAML value"):
        load_documents("when: 2026-13-45")


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(UnreadableFile, match=r"^line 3: invalid YAML: expected the node content"):
        load_documents("a: 1\nb: [\n")


def test_files_must_be_utf8_text(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("kind: Secret\nname: café\n".encode("latin-1"))
    with pytest.raises(UnreadableFile, match=r"^not UTF-8 text \(invalid byte at offset 22\)$"):
        read_text(latin)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfkind: Secret\n")
    assert read_text(bom) == "kind: Secret\n"


def test_huge_files_are_refused_before_parsing(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is really written
    with pytest.raises(UnreadableFile, match=r"^larger than 8 MiB$"):
        read_text(huge)


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it to read would block forever
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_text(fifo)
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_text(Path("/dev/zero"))
