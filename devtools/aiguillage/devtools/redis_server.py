"""A real ``redis-server`` (Debian package, ``make system-deps``) on a free loopback port.

For tests of the shared store: started with no persistence (``--save ''``,
``--appendonly no``) in a temporary directory, dies with its owner (see
:mod:`aiguillage.devtools.spawning`), and can be stopped (or killed, or paused) and
started again on the same port to play an outage. With ``persist=True`` it keeps an
append-only file in its directory (``--appendonly yes``, as a production Redis holding
budgets should), so that what it counted survives a kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from aiguillage.devtools.spawning import free_ports, log_tail, spawn, terminate
from aiguillage.devtools.waiting import wait_for

HOST = "127.0.0.1"


class RedisServer:
    def __init__(self, password: str | None = None, *, persist: bool = False) -> None:
        self.password = password
        self.persist = persist
        self.port = free_ports(HOST, 1)[0]
        self.workdir = Path(tempfile.mkdtemp(prefix="aiguillage-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make system-deps`")
        appendonly = "yes" if self.persist else "no"
        argv = [binary, "--bind", HOST, "--port", str(self.port), "--save", "",
                "--appendonly", appendonly, "--dir", str(self.workdir)]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = spawn("redis", argv, self.workdir)
        wait_for(self._answers, timeout=30, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("redis-server exited:\n" + log_tail(self.workdir, "redis"))
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        terminate(self.proc, timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved on the way out."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
