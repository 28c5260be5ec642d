"""``python -m aiguillage.devtools.bench.imports``: where the sidecar's idle memory goes.

Starts the real sidecar on the benchmark's config under `importhook` (and ``-X
importtime``), waits until it is ready, reads its idle RSS, stops it, and prints:

* the RSS of the bare interpreter, after all the imports, and idle once ready — what is left
  after the imports is config, app, event loop and heap;
* the RSS each package's imports added (own: without what it imported from other packages),
  with their import time;
* the modules that added the most, own and cumulative (with what they imported).

RSS deltas are page-granular and include what the allocator kept for later: read them as
"about this much", to find where to look. Also run by ``make bench`` (section "Idle memory,
import by import").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench.procs import Procs, group_memory
from aiguillage.devtools.bench.systems import (
    free_port,
    http_request,
    render_sidecar_config,
    settled_memory,
    sidecar_env,
    wait_ready,
)

HOOK = Path(__file__).with_name("importhook.py")
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def parse_importtime(text: str) -> dict[str, dict[str, int]]:
    """``-X importtime`` lines -> {module: {"self_us", "cumulative_us"}} (first import wins)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        match = _IMPORTTIME.match(line)
        if match and match.group(4) not in out:
            out[match.group(4)] = {
                "self_us": int(match.group(1)),
                "cumulative_us": int(match.group(2)),
            }
    return out


def package_of(module: str) -> str:
    """The row a module is counted in: ``aiguillage.<part>.<area>`` for the project's own
    modules (aiguillage.sidecar.privacy), else the top-level package (aiohttp, pydantic)."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[0] == "aiguillage" else parts[0]


def summarize(
    records: list[dict[str, Any]],
    times: dict[str, dict[str, int]],
    *,
    start_rss_kb: int,
    idle_rss_mb: float | None,
    top: int = 15,
) -> dict[str, Any]:
    """Own and cumulative RSS and time per module and per package from the hook's records."""
    done = [r for r in records if "rss_after_kb" in r]
    cumulative = {i: r["rss_after_kb"] - r["rss_before_kb"] for i, r in enumerate(records)
                  if "rss_after_kb" in r}  # fmt: skip
    children: dict[int, int] = defaultdict(int)
    for i, r in enumerate(records):
        if r.get("parent") is not None and i in cumulative:
            children[r["parent"]] += cumulative[i]
    modules = []
    for i, r in enumerate(records):
        if i not in cumulative:
            continue
        t = times.get(r["name"], {})
        modules.append({
            "module": r["name"],
            "own_kb": cumulative[i] - children[i],
            "cumulative_kb": cumulative[i],
            "own_us": t.get("self_us"),
            "cumulative_us": t.get("cumulative_us"),
        })  # fmt: skip
    packages: dict[str, dict[str, Any]] = {}
    for m in modules:
        row = packages.setdefault(package_of(m["module"]), {"own_kb": 0, "own_us": 0, "modules": 0})
        row["own_kb"] += m["own_kb"]
        row["own_us"] += m["own_us"] or 0
        row["modules"] += 1
    after_imports_kb = max((r["rss_after_kb"] for r in done), default=start_rss_kb)
    return {
        "start_rss_mb": round(start_rss_kb / 1024, 1),
        "after_imports_rss_mb": round(after_imports_kb / 1024, 1),
        "imports_mb": round(sum(m["own_kb"] for m in modules) / 1024, 1),
        "idle_rss_mb": idle_rss_mb,
        "modules_imported": len(modules),
        "packages": sorted(
            ({"package": k, **v} for k, v in packages.items()),
            key=lambda row: -int(row["own_kb"]),
        ),
        "top_own": sorted(modules, key=lambda m: -int(m["own_kb"]))[:top],
        "top_cumulative": sorted(modules, key=lambda m: -int(m["cumulative_kb"]))[:top],
    }


def measure(config_dir: Path, procs: Procs, workdir: Path, *, cpus: str | None) -> dict[str, Any]:
    """Start the sidecar under the hook, wait for ready, read idle RSS, stop; summarize."""
    out = workdir / "imports.json"
    port = free_port()
    argv = [
        sys.executable, "-X", "importtime", str(HOOK), str(out),
        "sidecar", "--config-dir", str(config_dir), "--listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    proc = procs.spawn("sidecar-imports", argv, env=sidecar_env(workdir / "audit-imports.jsonl"))
    readyz = f"http://127.0.0.1:{port}/readyz"
    ready_s = wait_ready(proc, lambda: http_request(readyz)[0] == 200, 60, "the sidecar (imports)")
    idle = settled_memory(proc, cpus)
    after_ready = group_memory(proc.pid)
    procs.stop(proc)
    if not out.exists():
        raise RuntimeError(f"the import hook wrote nothing:\n{proc.tail()}")
    data = json.loads(out.read_text())
    summary = summarize(
        data["records"], parse_importtime(proc.output()),
        start_rss_kb=data["start_rss_kb"], idle_rss_mb=idle.rss_mb,
    )  # fmt: skip
    summary["start_to_ready_s"] = round(ready_s, 2)
    summary["idle_rss_after_ready_mb"] = after_ready.rss_mb
    return summary


def render_text(summary: dict[str, Any], top: int = 15) -> str:
    lines = [
        f"interpreter at start {summary['start_rss_mb']:.1f} MB; after the start-up imports "
        f"{summary['after_imports_rss_mb']:.1f} MB ({summary['modules_imported']} modules, "
        f"{summary['imports_mb']:.1f} MB added); idle once ready {summary['idle_rss_mb']} MB",
        "",
        f"{'package':<32} {'own RSS':>9} {'modules':>8} {'own import time':>16}",
    ]
    for row in summary["packages"][:top]:
        lines.append(
            f"{row['package']:<32} {row['own_kb'] / 1024:>6.2f} MB {row['modules']:>8} "
            f"{row['own_us'] / 1000:>13.1f} ms"
        )
    lines += ["", f"{'module (own)':<48} {'own':>9} {'cumulative':>11} {'import':>10}"]
    for m in summary["top_own"][:top]:
        us = m["cumulative_us"]
        lines.append(
            f"{m['module']:<48} {m['own_kb'] / 1024:>6.2f} MB {m['cumulative_kb'] / 1024:>8.2f} MB"
            f" {'' if us is None else f'{us / 1000:8.1f} ms':>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiguillage.devtools.bench.imports",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiguillage-imports-") as tmp:
        work = Path(tmp)
        # The sidecar only needs a valid config to be ready: nothing is sent upstream.
        render_sidecar_config("http://127.0.0.1:9", work / "sidecar")
        with Procs(work / "logs") as procs:
            summary = measure(work / "sidecar" / "config", procs, work, cpus=None)
    print(json.dumps(summary, indent=2) if args.json else render_text(summary, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
