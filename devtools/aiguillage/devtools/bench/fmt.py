"""How numbers are written in the benchmark report: "—" for anything not measured."""

from __future__ import annotations

from collections.abc import Iterable


def ms(v: float | None) -> str:
    """A signed duration in ms (an overhead): +0.52 ms, -3.1 ms, +1.20 s."""
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v / 1000:+.2f} s"
    return f"{v:+.2f} ms" if abs(v) < 10 else f"{v:+.1f} ms"


def abs_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×" if v < 10 else f"{v:.0f}×"


def mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} MB"


def mb1(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} MB"


def signed_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f} MB"


def pct(v: float | None) -> str:
    """A fraction as a signed percentage: 0.034 -> +3.4 %."""
    return "—" if v is None else f"{v * 100:+.1f} %"


def s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def rps(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def us(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} µs"


def signed_us(v: float | None) -> str:
    return "—" if v is None else f"{v:+,.0f} µs"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else "**met**" if ok else "**missed**"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
