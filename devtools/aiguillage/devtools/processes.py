"""The operator and the sidecar as child processes, for e2e tests and ``make dev``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from aiguillage.devtools.spawning import die_with_parent_hook


class Child:
    """A child process in its own process group, output to a log file; it gets SIGKILL when
    this process dies, however it dies (a test run killed by a timeout leaves no operator)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Child:
        """Start (or start again, after stop or kill) with the same argv and log."""
        self.starts += 1
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def aiguillage(*args: str) -> list[str]:
    """argv running the ``aiguillage`` command of this interpreter's installation."""
    return [sys.executable, "-c", "from aiguillage.cli import main; main()", *args]


def operator(env: dict[str, str], operator_namespace: str, log: Path, *args: str) -> Child:
    env = {**env, "AIGUILLAGE_OPERATOR_NAMESPACE": operator_namespace}
    return Child("operator", aiguillage("operator", *args), env, log)
