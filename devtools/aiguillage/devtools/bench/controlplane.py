"""Control-plane numbers on a real etcd + kube-apiserver, and the sidecar's config reload.

* scale: N providers, R routes in M namespaces created with ``kubectl apply`` (multi-document
  YAML, in batches) *before* the operator starts; then the time from the operator's spawn to
  all M ConfigMaps present, and to its "primed:" log line; then one provider used by ~M/10
  namespaces is edited and we time until those namespaces' ConfigMaps change (and check that
  no other namespace was rewritten); the operator's RSS from /proc;
* apply -> ConfigMap: with that operator still running, a route in a probe namespace is changed
  with ``kubectl apply`` again and again; each time, from the start of ``kubectl apply`` to the
  ConfigMap's watch event;
* config file -> served: a sidecar's config.json is replaced (atomic rename, as the kubelet's
  symlink swap) by a config with a new hash and route, and we time until ``/readyz`` reports
  the new hash and the new route answers.

ConfigMap changes are seen through a watch on the API server (no polling of kubectl).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aiguillage.devtools import processes
from aiguillage.devtools.bench.procs import Proc, Procs, cpu_seconds, group_memory, wait_quiet
from aiguillage.devtools.bench.proxy import Plan, summarize_raw_profile
from aiguillage.devtools.bench.systems import (
    free_port,
    http_request,
    render_sidecar_config,
    request_body,
    sidecar_argv,
    sidecar_env,
)
from aiguillage.devtools.bench.tools import ROOT, say
from aiguillage.devtools.controlplane import ControlPlane

OPERATOR_NAMESPACE = "aiguillage-system"
CONFIG_MAP = "aiguillage-config"
SCALE_PREFIX = "scale-"
PROBE_NAMESPACE = "probe"
EU = ("FR", "DE", "NL", "IT", "ES", "BE", "AT", "IE", "PL", "SE")


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, int(-(-q * len(ordered) // 1)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p95": pct(values, 0.95),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


# -- manifests ---------------------------------------------------------------------------------


def provider_name(i: int) -> str:
    return f"scale-p{i:02d}"


def scale_documents(namespaces: int, routes: int, providers: int) -> list[dict[str, Any]]:
    """Providers (each with its key Secret), namespaces and routes for the scale test.

    Namespace i uses the provider pair of group ``i % 10`` (providers 2g and 2g+1, wrapping
    around ``providers``), so editing provider 0 touches the namespaces with ``i % 10 == 0``.
    """
    docs: list[dict[str, Any]] = []
    for p in range(providers):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{provider_name(p)}-key", "namespace": OPERATOR_NAMESPACE},
                "stringData": {"apiKey": f"sk-scale-{p:02d}"},
            }
        )
        country = EU[p % len(EU)]
        docs.append(
            {
                "apiVersion": "aiguillage.dev/v1alpha1",
                "kind": "AIProvider",
                "metadata": {"name": provider_name(p)},
                "spec": {
                    "api": "openai",
                    # never contacted: the operator only compiles it
                    "endpoint": f"http://127.0.0.1:9/p{p:02d}/v1",
                    "residency": {"location": country, "jurisdiction": country},
                    "auth": {
                        "apiKey": {
                            "secretRef": {"name": f"{provider_name(p)}-key", "key": "apiKey"}
                        }
                    },
                    "models": [
                        {
                            "name": "small",
                            "pricing": {"inputPerMillion": "0.10", "outputPerMillion": "0.30"},
                        },
                        {
                            "name": "large",
                            "pricing": {"inputPerMillion": "1.00", "outputPerMillion": "3.00"},
                        },
                    ],
                },
            }
        )
    for i in range(namespaces):
        ns = f"{SCALE_PREFIX}{i:03d}"
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        group = i % 10
        first, second = (2 * group) % providers, (2 * group + 1) % providers
        for r in range(routes):
            a, b = (first, second) if r % 2 == 0 else (second, first)
            spec: dict[str, Any] = {
                "model": f"model-{r:02d}",
                "strategy": "priority",
                "targets": [
                    {"provider": provider_name(a), "model": "small", "priority": 0},
                    {"provider": provider_name(b), "model": "large", "priority": 1},
                ],
                "retry": {"attempts": 2},
            }
            if r % 2 == 0:
                spec["residency"] = {"locations": ["EU"], "jurisdictions": ["EU"]}
            docs.append(
                {
                    "apiVersion": "aiguillage.dev/v1alpha1",
                    "kind": "AIRoute",
                    "metadata": {"name": f"route-{r:02d}", "namespace": ns},
                    "spec": spec,
                }
            )
    return docs


def namespaces_using_provider0(namespaces: int, providers: int) -> set[str]:
    return {
        f"{SCALE_PREFIX}{i:03d}"
        for i in range(namespaces)
        if 0 in ((2 * (i % 10)) % providers, (2 * (i % 10) + 1) % providers)
    }


def probe_documents(i: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NAMESPACE}},
        {
            "apiVersion": "aiguillage.dev/v1alpha1",
            "kind": "AIRoute",
            "metadata": {"name": "probe", "namespace": PROBE_NAMESPACE},
            "spec": {
                "model": f"probe-{i}",
                "targets": [{"provider": provider_name(0), "model": "small"}],
            },
        },
    ]


# -- watching ConfigMaps -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float  # time.monotonic() when received
    type: str
    namespace: str
    config_hash: str


class ConfigMapWatch:
    """A watch on every ``aiguillage-config`` ConfigMap, in a thread, recording events."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._conn: http.client.HTTPSConnection | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="cm-watch", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the ConfigMap watch did not start")

    def stop(self) -> None:
        self._stopped = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                if self._conn.sock is not None:
                    self._conn.sock.shutdown(2)
                self._conn.close()
        self._thread.join(5)

    def _run(self) -> None:
        url = urllib.parse.urlsplit(self.plane.server_url)
        query = urllib.parse.urlencode(
            {"watch": "true", "fieldSelector": f"metadata.name={CONFIG_MAP}",
             "timeoutSeconds": "3600"}
        )  # fmt: skip
        while not self._stopped:
            conn = http.client.HTTPSConnection(
                url.hostname or "127.0.0.1",
                url.port,
                context=self.plane.ssl_context(),
                timeout=None,
            )
            self._conn = conn
            try:
                conn.request("GET", f"/api/v1/configmaps?{query}")
                response = conn.getresponse()
                if response.status != 200:
                    raise RuntimeError(f"watch answered {response.status}")
                self._ready.set()
                while True:
                    line = response.readline()
                    if not line:
                        break
                    self._record(json.loads(line))
            except (OSError, ValueError, http.client.HTTPException, RuntimeError, AttributeError):
                # (AttributeError: http.client, when stop() closes the socket under it)
                if self._stopped:
                    return
                time.sleep(0.2)
            finally:
                conn.close()

    def _record(self, event: dict[str, Any]) -> None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        data = obj.get("data") or {}
        config_hash = annotations.get("aiguillage.dev/config-hash", "")
        if not config_hash and "config.json" in data:
            with contextlib.suppress(ValueError):
                config_hash = str(json.loads(data["config.json"]).get("hash", ""))
        with self._cond:
            self.events.append(
                Event(time.monotonic(), str(event.get("type")), meta.get("namespace", ""),
                      config_hash)
            )  # fmt: skip
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[Event]], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, index: int) -> list[Event]:
        with self._cond:
            return list(self.events[index:])


class OperatorProfiler:
    """py-spy attached to the operator from just after its start until `finish()`."""

    def __init__(self, procs: Procs, operator: Proc, py_spy: Path) -> None:
        self.procs = procs
        self.raw = operator.log_path.with_name("profile-operator.txt")
        time.sleep(0.3)  # the interpreter must be up for py-spy to attach
        self.spy = procs.spawn(
            "py-spy-operator",
            [
                str(py_spy), "record", "--pid", str(operator.pid), "--format", "raw",
                "--output", str(self.raw), "--rate", "100", "--duration", "300",
                "--nonblocking", "--full-filenames", "--gil",
            ],
        )  # fmt: skip

    def finish(self) -> dict[str, Any]:
        if self.spy.alive:
            os.kill(self.spy.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.spy.popen.wait(30)
        self.procs.stop(self.spy)
        if not self.raw.exists():
            return {"error": f"py-spy wrote no profile:\n{self.spy.tail()}"}
        return summarize_raw_profile(self.raw.read_text(), top=10)


# -- the run -----------------------------------------------------------------------------------


def _apply(plane: ControlPlane, docs: list[dict[str, Any]], timeout: float = 300) -> None:
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), timeout=timeout)


def _apply_batched(plane: ControlPlane, docs: list[dict[str, Any]], batch: int = 250) -> None:
    threads = []
    errors: list[BaseException] = []

    def run(part: list[dict[str, Any]]) -> None:
        try:
            _apply(plane, part)
        except BaseException as exc:  # reported below
            errors.append(exc)

    batches = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    for part in batches:  # two kubectl processes at a time
        threads.append(threading.Thread(target=run, args=(part,)))
        threads[-1].start()
        if len(threads) >= 2:
            threads.pop(0).join()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def run_controlplane(
    plan: Plan, procs: Procs, workdir: Path, py_spy: Path | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    plane = ControlPlane()
    watch: ConfigMapWatch | None = None
    try:
        say("control plane: starting etcd + kube-apiserver ...")
        plane.start()
        out["controlplane_start_s"] = plane.start_seconds
        plane.kubectl("apply", "-f", str(ROOT / "crds"))
        for crd in ("aiproviders", "airoutes"):
            plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}.aiguillage.dev")
        _apply(plane, [{"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": OPERATOR_NAMESPACE}}])  # fmt: skip
        n_ns, n_routes, n_prov = (
            plan.scale_namespaces, plan.scale_routes_per_namespace, plan.scale_providers
        )  # fmt: skip
        docs = scale_documents(n_ns, n_routes, n_prov)
        began = time.monotonic()
        # namespaces, secrets and providers first: routes need their namespace to exist
        _apply(plane, [d for d in docs if d["kind"] != "AIRoute"])
        _apply_batched(plane, [d for d in docs if d["kind"] == "AIRoute"])
        out["scale"] = {
            "namespaces": n_ns,
            "routes": n_ns * n_routes,
            "providers": n_prov,
            "kubectl_apply_s": round(time.monotonic() - began, 2),
        }
        say(
            f"control plane: applied {n_prov} providers, {n_ns * n_routes} routes in {n_ns} "
            f"namespaces in {out['scale']['kubectl_apply_s']:.1f}s; starting the operator ..."
        )
        watch = ConfigMapWatch(plane)
        watch.start()
        env = {**plane.env(), "AIGUILLAGE_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE}
        operator = procs.spawn("operator", processes.aiguillage("operator"), env=env, cwd=workdir)
        profiler = OperatorProfiler(procs, operator, py_spy) if py_spy is not None else None
        out["scale"].update(_scale(plane, operator, watch, n_ns, n_prov, profiler))
        out["apply_to_configmap"] = _apply_latency(plane, watch, plan.apply_samples)
        mem = group_memory(operator.pid)
        out["scale"]["operator_rss_end_mb"] = mem.leader_rss_mb
        out["scale"]["operator_hwm_mb"] = mem.leader_hwm_mb
        procs.stop(operator)
    finally:
        if watch is not None:
            watch.stop()
        plane.stop()
    return out


def _scale(
    plane: ControlPlane,
    operator: Proc,
    watch: ConfigMapWatch,
    n_ns: int,
    n_prov: int,
    profiler: OperatorProfiler | None,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    expected = {f"{SCALE_PREFIX}{i:03d}" for i in range(n_ns)}
    primed_at: float | None = None
    deadline = time.monotonic() + 120
    all_at: float | None = None
    while time.monotonic() < deadline:
        if not operator.alive:
            raise RuntimeError(f"the operator exited:\n{operator.tail()}")
        if primed_at is None and "primed:" in operator.output():
            primed_at = time.monotonic()
        seen = {e.namespace for e in watch.since(0)}
        if expected <= seen:
            all_at = max(e.at for e in watch.since(0) if e.namespace in expected)
            break
        time.sleep(0.05)
    if all_at is None:
        raise RuntimeError(
            f"not all {n_ns} ConfigMaps appeared within 120s "
            f"({len({e.namespace for e in watch.since(0)})} did):\n{operator.tail()}"
        )
    res["start_to_primed_s"] = round(primed_at - operator.started, 2) if primed_at else None
    res["start_to_all_configmaps_s"] = round(all_at - operator.started, 2)
    res["primed_to_all_configmaps_s"] = round(all_at - primed_at, 2) if primed_at else None
    res["operator_cpu_s_to_all_configmaps"] = round(cpu_seconds(operator.pid), 2)
    if profiler is not None:
        res["operator_profile"] = profiler.finish()
    mem = group_memory(operator.pid)
    res["operator_rss_after_render_mb"] = mem.leader_rss_mb
    say(
        f"control plane: operator rendered {n_ns} namespaces "
        f"{res['start_to_all_configmaps_s']:.2f}s after its start "
        f"(primed at {res['start_to_primed_s']}s), RSS {mem.leader_rss_mb:.0f} MB"
    )
    # Edit one provider (its pricing, so every config using it changes), once the operator
    # has finished the first pass (route statuses, provider statuses): it is then idle.
    res["operator_busy_after_all_configmaps_s"] = round(wait_quiet(operator.pid), 2)
    affected = namespaces_using_provider0(n_ns, n_prov)
    provider = next(
        d for d in scale_documents(0, 0, n_prov)
        if d["kind"] == "AIProvider" and d["metadata"]["name"] == provider_name(0)
    )  # fmt: skip
    provider["spec"]["models"][0]["pricing"]["inputPerMillion"] = "0.11"
    mark = watch.mark()
    t0 = time.monotonic()
    _apply(plane, [provider])
    t1 = time.monotonic()
    got = watch.wait(
        lambda events: affected <= {e.namespace for e in events[mark:] if e.type == "MODIFIED"},
        30,
    )
    if not got:
        raise RuntimeError(f"the provider edit did not reach all {len(affected)} namespaces")
    done = max(e.at for e in watch.since(mark) if e.namespace in affected)
    time.sleep(2.0)  # anything else rewritten shortly after would be a spurious write
    rewritten = {e.namespace for e in watch.since(mark) if e.type == "MODIFIED"}
    res["provider_edit"] = {
        "affected_namespaces": len(affected),
        "rewritten_namespaces": len(rewritten),
        "unexpected_rewrites": sorted(rewritten - affected),
        "apply_start_to_all_s": round(done - t0, 3),
        "apply_return_to_all_s": round(done - t1, 3),
    }
    say(
        f"control plane: provider edit re-rendered {len(affected)} namespaces "
        f"{done - t0:.2f}s after kubectl apply started ({len(rewritten)} rewritten)"
    )
    return res


def _apply_latency(plane: ControlPlane, watch: ConfigMapWatch, samples: int) -> dict[str, Any]:
    from_start: list[float] = []
    from_return: list[float] = []
    for i in range(samples + 1):
        mark = watch.mark()
        t0 = time.monotonic()
        _apply(plane, probe_documents(i))
        t1 = time.monotonic()

        def changed(events: list[Event], since: int = mark) -> bool:
            return any(e.namespace == PROBE_NAMESPACE for e in events[since:])

        if not watch.wait(changed, 30):
            raise RuntimeError("the probe route's ConfigMap did not change within 30s")
        at = next(e.at for e in watch.since(mark) if e.namespace == PROBE_NAMESPACE)
        if i == 0:
            continue  # the first one creates the namespace: not an update
        from_start.append(at - t0)
        from_return.append(at - t1)
        time.sleep(0.2)
    res = {"from_apply_start": summary(from_start), "from_apply_return": summary(from_return)}
    say(
        f"control plane: apply -> ConfigMap p50 {res['from_apply_start']['p50']:.3f}s "
        f"p95 {res['from_apply_start']['p95']:.3f}s over {samples} route changes"
    )
    return res


# -- config file -> sidecar serving ------------------------------------------------------------


def run_reload(
    upstream_url: str, procs: Procs, workdir: Path, samples: int, cpus: str | None
) -> dict[str, Any]:
    root = workdir / "reload"
    variants = []
    for i in range(samples + 1):
        target = root / f"v{i}"
        config_hash = render_sidecar_config(upstream_url, target, model=f"reload-{i}")
        variants.append((target / "config" / "config.json", config_hash, f"reload-{i}"))
    live = root / "live"
    shutil.copytree(root / "v0" / "config", live / "config")
    shutil.copytree(root / "v0" / "credentials", live / "credentials")
    port = free_port()
    proc = procs.spawn(
        "reload-sidecar",
        sidecar_argv(live / "config", port),
        cpus=cpus,
        env=sidecar_env(root / "audit.jsonl"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while http_request(f"{base}/readyz")[0] != 200:
        if time.monotonic() > deadline or not proc.alive:
            raise RuntimeError(f"the reload sidecar did not start:\n{proc.tail()}")
        time.sleep(0.02)
    served: list[float] = []
    rng = random.Random(1)
    try:
        for path, config_hash, model in variants[1:]:
            time.sleep(rng.uniform(0.05, 0.55))  # any phase of the sidecar's 0.5 s poll
            tmp = live / "config" / ".config.json.tmp"
            shutil.copyfile(path, tmp)
            t0 = time.monotonic()
            os.replace(tmp, live / "config" / "config.json")
            while config_hash not in http_request(f"{base}/readyz")[1].decode(errors="replace"):
                if time.monotonic() - t0 > 10:
                    raise RuntimeError(f"the sidecar did not load {config_hash[:12]} in 10s")
                time.sleep(0.002)
            served.append(time.monotonic() - t0)
            body = request_body(False).replace(b'"bench-chat"', json.dumps(model).encode())
            status, _ = http_request(f"{base}/v1/chat/completions", body)
            if status != 200:
                raise RuntimeError(f"the new route {model} answered {status}")
    finally:
        procs.stop(proc)
    res = summary(served)
    say(f"config file -> sidecar serving: p50 {res['p50']:.3f}s p95 {res['p95']:.3f}s")
    return res
