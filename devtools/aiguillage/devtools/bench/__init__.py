"""Side-by-side benchmarks of the sidecar and the control plane (``make bench``).

On loopback, with a simulated OpenAI-compatible upstream in its own process (a fixed chat
completion, and an SSE stream of 64 chunks 5 ms apart), the same requests are sent by a
separate load generator (Go, ``hack/loadgen``; Python fallback) to:

1. the upstream directly, 2. a 30-line aiohttp pass-through (``bench/passthrough.py``, the
"Python floor"), 3. the Aiguillage sidecar with a realistic route (EU residency, priority
failover, audit and metrics on), 4. LiteLLM's proxy (pinned version, its own venv);

at several concurrencies, streaming and not. It also measures footprints (RSS, start-up), the
control plane on a real kube-apiserver (apply -> ConfigMap, 1,000 routes in 100 namespaces),
and config reloads, profiles the sidecar with py-spy, and writes ``docs/benchmarks.md``,
``docs/bench/*.png`` and one line of ``bench/results.jsonl``.

Modules: `run` (entry point), `systems` (starting each system), `proxy` (load matrix, profile),
`controlplane`, `report` (derived numbers, Markdown), `charts` (matplotlib, run in the tools
venv), `procs` (process groups, pinning, memory), `tools` (load generator build, venvs),
`pyloadgen` (fallback load generator).
"""
