"""``make bench-ab BEFORE=REV [AFTER=REV]``: one hot-path change, measured before and after.

``python -m aiguillage.devtools.bench.ab --before REV [--after REV] [-c 16] [-n 4000]
[--rounds 6] [--stream [--chunk-interval 0]] [--profile native|python|off] [--top 15]``

The sidecar at REV (a temporary ``git worktree``) and the sidecar of the working tree (or
of ``--after REV``) run side by side on the same core, with the benchmark's config
(bench/manifests/, each side rendering it with its own code), the same simulated upstream
(the Go one of ``hack/upstream``, as in ``make bench``) and the same Go load generator,
pinned as in ``make bench``. Each round sends the same load to one side then the other,
alternating which goes first; the report gives, per side, the median and the spread of
requests/s, p50, p99 and the sidecar's own CPU time per request — the last is the least
disturbed by other work on a shared machine, quote it first — and the ratios after/before of
the medians.

Then each side is profiled under the same load with py-spy (from the benchmark's tools
venv) and the top functions by own time are printed for both. ``native`` (the default)
samples C frames too (the socket writes, the event loop, the garbage collector: where a
Python profile only shows ``Runner.run``); it pauses the process at each sample, so it is
taken in its own run, never during the measured rounds. The report is printed and written
to ``bench/out/ab/<before>-<after>.md``.

Both sides run in the working tree's venv: a revision that needs other dependencies is
measured with these.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench import fmt
from aiguillage.devtools.bench.procs import Procs
from aiguillage.devtools.bench.proxy import Load, profile_sidecar, run_loadgen
from aiguillage.devtools.bench.systems import (
    MANIFESTS,
    PLACEHOLDER_ENDPOINT,
    System,
    run_sidecar,
    sidecar_env,
    start_upstream,
)
from aiguillage.devtools.bench.tools import (
    ROOT,
    TOOLS_REQUIREMENTS,
    LoadGenerator,
    build_loadgen,
    build_upstream,
    ensure_venv,
    say,
)

OUT_DIR = ROOT / "bench" / "out" / "ab"


@dataclass
class Side:
    name: str  # "before" / "after"
    revision: str  # what the user named: a revision or "working tree"
    commit: str
    tree: Path  # where its code is
    system: System | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def pythonpath(self) -> str:
        """Empty for the working tree (the venv's editable install); else the revision's
        source roots, first on the path, so that its ``aiguillage`` modules win."""
        if self.tree == ROOT:
            return ""
        return os.pathsep.join(str(self.tree / d) for d in ("sidecar", "operator", "devtools"))


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def checked_out(revision: str, work: Path, name: str) -> Iterator[Path]:
    """A detached worktree of ``revision``, removed afterwards."""
    tree = work / name
    _git("worktree", "add", "-q", "--detach", str(tree), revision)
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            capture_output=True, check=False,
        )  # fmt: skip


def render(side: Side, upstream_url: str, out: Path) -> Path:
    """bench/manifests/ (this tree's) rendered by the side's own ``aiguillage render``."""
    sources = out / "manifests"
    sources.mkdir(parents=True)
    for path in sorted(MANIFESTS.glob("*.yaml")):
        (sources / path.name).write_text(
            path.read_text().replace(PLACEHOLDER_ENDPOINT, upstream_url)
        )
    env = {**os.environ, "PYTHONPATH": side.pythonpath}
    files = [str(p) for p in sorted(sources.glob("*.yaml"))]
    result = subprocess.run(
        [sys.executable, "-c", "from aiguillage.cli import main; main()", "render",
         *(a for f in files for a in ("-f", f)), "--namespace", "bench", "--out", str(out)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"aiguillage render failed for {side.revision}:\n{result.stderr}")
    return out / "config"


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of each measure over a side's rounds."""
    out: dict[str, dict[str, float]] = {}
    for key in ("rps", "p50_ms", "p99_ms", "cpu_us"):
        values = [float(r[key]) for r in runs]
        out[key] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    return out


def report(
    before: Side,
    after: Side,
    args: argparse.Namespace,
    loadavg: tuple[str, str],
    upstream: str = "the simulated upstream",
) -> str:
    a, b = summarize(before.runs), summarize(after.runs)
    mode = (
        f"streaming (64 chunks {args.chunk_interval * 1000:g} ms apart)"
        if args.stream
        else "non-streaming"
    )
    lines = [
        f"# A/B: `{before.revision}` ({before.commit[:12]}) → `{after.revision}` "
        f"({after.commit[:12]})",
        "",
        f"{args.rounds} interleaved rounds of {args.requests} {mode} requests at c="
        f"{args.concurrency} (+{args.warmup} warm-up) to each side; load average "
        f"{loadavg[0]} at start, {loadavg[1]} at the end; upstream: {upstream}. "
        "Medians (min–max).",
        "",
    ]
    rows = []
    names = {"cpu_us": "CPU per request (µs)", "rps": "req/s", "p50_ms": "p50 (ms)",
             "p99_ms": "p99 (ms)"}  # fmt: skip
    for key in ("cpu_us", "rps", "p50_ms", "p99_ms"):
        x, y = a[key], b[key]
        change = y["median"] / x["median"] if x["median"] else None
        rows.append([
            names[key],
            f"{x['median']:,.2f} ({x['min']:,.2f}–{x['max']:,.2f})",
            f"{y['median']:,.2f} ({y['min']:,.2f}–{y['max']:,.2f})",
            fmt.x(change),
        ])  # fmt: skip
    lines += fmt.table(["", "before", "after", "after / before"], rows)
    lines.append("")
    for side in (before, after):
        prof = side.profile
        title = f"Profile of {side.name} (`{side.revision}`)"
        if not prof.get("top"):
            lines += [f"{title}: {prof.get('error', 'not taken')}", ""]
            continue
        lines += [
            f"{title}: py-spy {prof['mode']}, {prof['samples']} samples at work under the "
            f"same load ({fmt.rps(prof['load'].get('rps'))} req/s while profiled; another "
            f"{prof.get('idle_pct', 0):.0f} % of samples found it waiting for events); top "
            "functions by own time, in percent of the samples at work:",
            "",
        ]
        lines += fmt.table(
            ["#", "Function", "Own", "Total"],
            [[str(i), f"`{r['function']}`", f"{r['own_pct']:.1f}%", f"{r['total_pct']:.1f}%"]
             for i, r in enumerate(prof["top"], 1)],
        )  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench.ab", description=__doc__)
    p.add_argument("--before", required=True, help="git revision to compare against")
    p.add_argument("--after", default=None, help="git revision (default: the working tree)")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-n", "--requests", type=int, default=4000, help="per side per round")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--stream", action="store_true", help="streamed answers (SSE)")
    p.add_argument(
        "--chunk-interval", type=float, default=0.005,
        help="seconds between the upstream's stream chunks (0: the stream capacity's burst)",
    )  # fmt: skip
    p.add_argument("--profile", choices=("native", "python", "off"), default="native")
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument("--top", type=int, default=15, help="functions per profile")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--out", type=Path, default=None, help="where to write the Markdown report")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    proxy_cpus, other_cpus = ("0", "1") if pinned else (None, None)
    work = Path(tempfile.mkdtemp(prefix="aiguillage-ab-"))
    started_load = _loadavg()
    try:
        with contextlib.ExitStack() as stack:
            before_tree = stack.enter_context(checked_out(args.before, work, "before"))
            after_tree = (
                stack.enter_context(checked_out(args.after, work, "after"))
                if args.after else ROOT
            )  # fmt: skip
            before = Side("before", args.before, _git("rev-parse", args.before), before_tree)
            after_commit = _git("rev-parse", args.after or "HEAD")
            after = Side("after", args.after or "working tree", after_commit, after_tree)
            procs = stack.enter_context(Procs(work / "logs"))
            upstream = _run(args, before, after, procs, work, proxy_cpus, other_cpus)
    except KeyboardInterrupt:
        say("interrupted: every process started was stopped")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(before, after, args, (started_load, _loadavg()), upstream)
    out = args.out or OUT_DIR / f"{before.commit[:12]}-{after.commit[:12]}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    say(f"written to {out}")
    return 0


def _run(
    args: argparse.Namespace,
    before: Side,
    after: Side,
    procs: Procs,
    work: Path,
    proxy_cpus: str | None,
    other_cpus: str | None,
) -> str:
    """The rounds and profiles of both sides; returns which upstream served them."""
    gen = build_loadgen()
    program = build_upstream()
    upstream, upstream_url = start_upstream(
        procs, cpus=other_cpus, chunks=64, interval=args.chunk_interval, program=program
    )
    sides = (before, after)
    for side in sides:
        config = render(side, upstream_url, work / f"config-{side.name}")
        env = {**sidecar_env(work / f"audit-{side.name}.jsonl"), "PYTHONPATH": side.pythonpath}
        side.system = run_sidecar(procs, config, f"sidecar-{side.name}", env, cpus=proxy_cpus)
        say(f"{side.name}: {side.revision} ({side.commit[:12]}) ready")
    load = Load(args.requests, args.warmup)
    for number in range(args.rounds):
        order = sides if number % 2 == 0 else sides[::-1]
        for side in order:
            side.runs.append(_one_round(side, gen, load, args, work, other_cpus))
            last = side.runs[-1]
            say(
                f"round {number + 1} {side.name:<6} {last['rps']:8.1f} req/s  p50 "
                f"{last['p50_ms']:6.2f} ms  p99 {last['p99_ms']:7.2f} ms  CPU "
                f"{last['cpu_us']:6.0f} us/request"
            )
    if args.profile != "off":
        try:
            spy = ensure_venv("bench-venv", TOOLS_REQUIREMENTS).bin("py-spy")
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            for side in sides:
                side.profile = {"error": f"py-spy unavailable: {exc}"}
            return program.note
        for side in sides:
            assert side.system is not None
            say(f"profiling {side.name} with py-spy ({args.profile}) ...")
            side.profile = profile_sidecar(
                side.system, gen, spy, procs, seconds=args.profile_seconds,
                load_cpus=other_cpus, workdir=work, native=args.profile == "native",
                stream=args.stream, c=args.concurrency, name=side.name, top=args.top,
            )  # fmt: skip
    procs.stop(upstream)
    return program.note


def _one_round(
    side: Side,
    gen: LoadGenerator,
    load: Load,
    args: argparse.Namespace,
    work: Path,
    cpus: str | None,
) -> dict[str, Any]:
    assert side.system is not None
    assert side.system.proc is not None
    cell = run_loadgen(
        gen, side.system, stream=args.stream, c=args.concurrency, load=load,
        max_seconds=600, cpus=cpus, workdir=work,
    )  # fmt: skip
    if cell["errors"]:
        say(f"  {side.name}: {cell['errors']} errors, e.g. {cell['error_samples'][:2]}")
    return {
        "rps": cell["rps"],
        "p50_ms": cell["latency_ms"]["p50"],
        "p99_ms": cell["latency_ms"]["p99"],
        "cpu_us": cell["cpu_us_per_request"],
        "errors": cell["errors"],
    }


if __name__ == "__main__":
    sys.exit(main())
