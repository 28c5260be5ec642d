"""``python -m aiguillage.devtools.bench.ab --before REV``: the sidecar at REV against the
working tree, same upstream, interleaved rounds.

For measuring one hot-path change: both sidecars run side by side (REV from a temporary
``git worktree``), each round sends the same load to one then the other, and the report
gives medians of requests/s, p50 and the sidecar's own CPU time per request — the last is
the least disturbed by other work on a shared machine. Quote the spread, not just the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiguillage.devtools.bench.tools import ROOT, build_loadgen

MANIFESTS = ROOT / "examples"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", required=True, help="git revision to compare against")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-n", "--requests", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiguillage-ab-"))
    tree = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), args.before],
        check=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The examples' EU provider is served by a simulator on its declared port.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from aiguillage.cli import main; main()",
                "render",
                "-f",
                str(MANIFESTS),
                "--out",
                str(work / "rendered"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aiguillage.devtools.simulators",
                    "--kind",
                    "openai",
                    "--name",
                    "mistral-eu",
                    "--port",
                    "18101",
                    "--api-key",
                    "sk-demo-mistral",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        ports = {"before": 4601, "after": 4602}
        sidecars = {}
        for name, port in ports.items():
            path = f"{tree}/sidecar:{tree}/operator" if name == "before" else ""
            env = {
                **os.environ,
                "PYTHONPATH": path,
                "AIGUILLAGE_AUDIT_LOG": str(work / f"audit-{name}.jsonl"),
            }
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from aiguillage.cli import main; main()",
                    "sidecar",
                    "--config-dir",
                    str(work / "rendered" / "config"),
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            sidecars[name] = proc
        deadline = time.monotonic() + 30
        while not all(_ready(port) for port in ports.values()):
            if time.monotonic() > deadline:
                raise SystemExit("the sidecars did not become ready")
            time.sleep(0.1)
        loadgen = build_loadgen()
        body: dict[str, object] = {
            "model": "summarizer",
            "messages": [{"role": "user", "content": "hello"}],
        }
        if args.stream:
            body["stream"] = True
        rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                before = _cpu_seconds(sidecars[name].pid)
                out = subprocess.run(
                    [
                        *loadgen.argv,
                        "-url",
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        "-body",
                        json.dumps(body),
                        "-n",
                        str(args.requests),
                        "-c",
                        str(args.concurrency),
                        *(["-stream"] if args.stream else []),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                result = json.loads(out)
                cpu_us = (_cpu_seconds(sidecars[name].pid) - before) * 1e6 / args.requests
                rows[name].append((result["rps"], result["latency_ms"]["p50"], cpu_us))
        for name, values in rows.items():
            rps = [v[0] for v in values]
            cpu = [v[2] for v in values]
            print(
                f"{name:6s} req/s median {statistics.median(rps):7.1f} "
                f"(min {min(rps):.0f}, max {max(rps):.0f})  "
                f"p50 {statistics.median(v[1] for v in values):5.2f} ms  "
                f"CPU/request median {statistics.median(cpu):5.0f} us "
                f"(min {min(cpu):.0f}, max {max(cpu):.0f})"
            )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
