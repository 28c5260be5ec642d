"""A page as a real browser renders it: headless Chromium (the Debian package, installed by
``make system-deps``), for the tests of generated HTML and the pictures in the docs.

Each call runs one Chromium process with a fresh profile in a temporary directory, no
network services, no sandbox (tests may run as root) and no GPU, and waits for it to exit.
What the page logs to its console (script errors, Content-Security-Policy violations, failed
loads) is read from Chromium's log on stderr.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? ?(.*)$")


class NoBrowser(RuntimeError):
    """Chromium is not installed."""


@dataclass(frozen=True)
class Rendered:
    dom: str  # the DOM after loading (--dump-dom)
    console: list[str]  # what the page logged to its console


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise NoBrowser("chromium is not installed: run `make system-deps` (Debian package)")
    return found


def _run(args: list[str], timeout: float) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="aiguillage-chromium-") as profile:
        result = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout, result.stderr


def _console(stderr: str) -> list[str]:
    return [m.group(1) for line in stderr.splitlines() if (m := _CONSOLE.search(line))]


def render(page: Path, timeout: float = 120) -> Rendered:
    """Load ``page`` and return its DOM and console messages."""
    out, err = _run(["--dump-dom", page.resolve().as_uri()], timeout)
    return Rendered(out, _console(err))


def screenshot(
    page: Path, png: Path, width: int = 1200, height: int = 2000, timeout: float = 120
) -> list[str]:
    """Save a ``width`` × ``height`` picture of ``page``; returns its console messages."""
    _, err = _run(
        [
            f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        ],
        timeout,
    )
    return _console(err)


def main(argv: list[str] | None = None) -> int:
    """``python -m aiguillage.devtools.browser PAGE --screenshot PNG``: a picture of a page."""
    import argparse

    p = argparse.ArgumentParser(description="Screenshot a page in headless Chromium.")
    p.add_argument("page", type=Path)
    p.add_argument("--screenshot", type=Path, required=True)
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=2000)
    args = p.parse_args(argv)
    console = screenshot(args.page, args.screenshot, args.width, args.height)
    for message in console:
        print(f"console: {message}")
    print(f"wrote {args.screenshot} ({args.width}x{args.height})")
    return 1 if console else 0


if __name__ == "__main__":
    raise SystemExit(main())
