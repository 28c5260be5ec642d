"""The evaluation command: its tables, written between the markers of a document."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.privacy_eval.__main__ import BEGIN, END, main


def test_the_command_writes_its_tables_between_the_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Title\n\n{BEGIN}\nold table\n{END}\n\nAfter.\n")
    assert main(["--seed", "3", "--texts", "60", "--clean", "40", "--write", str(doc)]) == 0
    text = doc.read_text()
    assert "old table" not in text
    assert text.startswith("# Title\n\n" + BEGIN)
    assert text.endswith(END + "\n\nAfter.\n")
    assert "`python -m aiguillage.devtools.privacy_eval --seed 3 --texts 60 --clean 40`" in text
    assert "| national_id |" in text
    assert "Clean texts with any finding: **" in text
    assert capsys.readouterr().out.strip() in text
