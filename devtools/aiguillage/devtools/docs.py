"""Generated sections of the Markdown documents: a command writes its tables between two
markers (``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``) and leaves the prose around them
as it is."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_between_markers(path: Path, name: str, content: str) -> None:
    """Replace what is between the markers ``name`` of ``path`` with ``content``
    (ValueError naming the missing marker when the file lacks one)."""
    begin, end = markers(name)
    text = path.read_text()
    for marker in (begin, end):
        if marker not in text:
            raise ValueError(f"{path}: no {marker} marker to write between")
    start, stop = text.index(begin) + len(begin), text.index(end)
    path.write_text(text[:start] + "\n" + content + text[stop:])


def publish(table: str, path: Path | None, name: str) -> None:
    """Print a command's ``table``, and write it between the markers ``name`` of ``path``
    when the command was asked to (its ``--write PATH``)."""
    print(table)
    if path is not None:
        write_between_markers(path, name, table)


def carry_over(old: str, new: str, name: str) -> str:
    """``new`` with the content between the markers ``name`` taken from ``old``: a document
    regenerated whole keeps a section another command writes (when both have the markers)."""
    begin, end = markers(name)
    if not all(m in old and m in new for m in (begin, end)):
        return new
    kept = old[old.index(begin) + len(begin) : old.index(end)]
    return new[: new.index(begin) + len(begin)] + kept + new[new.index(end) :]
