"""The image cache rebuilds exactly when an input changes, and knows what it last built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiguillage.devtools import images


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    return tmp_path


def digest(root: Path, *extra: str) -> str:
    return images.inputs_digest(["Containerfile", "src"], *extra, root=root)


def test_digest_changes_with_content_names_and_base(tree: Path) -> None:
    first = digest(tree)
    assert digest(tree) == first
    (tree / "src" / "pkg" / "mod.py").write_text("x = 2\n")
    second = digest(tree)
    assert second != first
    (tree / "src" / "pkg" / "mod.py").rename(tree / "src" / "pkg" / "other.py")
    assert digest(tree) != second
    assert digest(tree, "base-a") != digest(tree, "base-b")


def test_bytecode_caches_do_not_trigger_a_rebuild(tree: Path) -> None:
    first = digest(tree)
    (tree / "src" / "pkg" / "__pycache__").mkdir()
    (tree / "src" / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert digest(tree) == first


def test_built_reads_the_last_record_only_while_its_archive_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGUILLAGE_CACHE", str(tmp_path))
    cache = images.cache_dir()
    assert cache == tmp_path / "images"
    assert images.built("aiguillage") is None
    cache.mkdir()
    archive = cache / "aiguillage-0123.tar"
    record = {"name": "localhost/aiguillage:0123", "archive": str(archive), "digest": "0123ff"}
    (cache / "aiguillage.json").write_text(json.dumps(record))
    assert images.built("aiguillage") is None  # the archive is gone
    archive.write_bytes(b"")
    image = images.built("aiguillage")
    assert image is not None
    assert (image.repository, image.tag) == ("localhost/aiguillage", "0123")
    (cache / "aiguillage.json").write_text("{not json")
    assert images.built("aiguillage") is None


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown image kind 'nope'"):
        images.ensure("nope", say=False)
