"""Generated sections of Markdown documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.docs import write_between_markers


def test_only_the_section_between_the_markers_changes(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- t:begin -->\nold\n<!-- t:end -->\noutro\n")
    write_between_markers(doc, "t", "new\n")
    assert doc.read_text() == "intro\n<!-- t:begin -->\nnew\n<!-- t:end -->\noutro\n"
    with pytest.raises(ValueError, match="no <!-- u:begin --> marker"):
        write_between_markers(doc, "u", "x")
