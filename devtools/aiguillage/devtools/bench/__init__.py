"""Side-by-side benchmarks of the sidecar and the control plane (``make bench``).

On loopback, with a simulated OpenAI-compatible upstream in its own process (Go,
``hack/upstream``, the Python simulator's wire format; that simulator as the fallback: a fixed
chat completion, and an SSE stream of 64 chunks 5 ms apart), the same requests are sent by a
separate load generator (Go, ``hack/loadgen``; Python fallback) to:

1. the upstream directly, 2. a 30-line aiohttp pass-through (``bench/passthrough.py``, the
"Python floor"), 3. the Aiguillage sidecar with a realistic route (EU residency, priority
failover, audit and metrics on), 4. the Portkey AI gateway (Node, pinned by
``bench/peers/portkey/``), 5. LiteLLM's proxy (pinned version, its own venv) — each on one
core, one process —

at several concurrencies, streaming and not, plus streams without pauses (capacity). It also
measures footprints (RSS, start-up), RSS with 1,000 streams open at once and over a long
round of requests, the sidecar's idle RSS import by import, the cost of each sidecar feature
(sidecars differing by one feature, interleaved), the control plane on a real kube-apiserver
(apply -> ConfigMap, 1,000 routes in 100 namespaces) and config reloads, profiles the sidecar
with py-spy, and writes ``docs/benchmarks.md``, ``docs/bench/*.png`` and one line of
``bench/results.jsonl``, with the goals of issue 11 met or missed.

Modules: `run` (entry point, results, outputs), `phases` (the run's phases in order),
`systems` (starting each system), `proxy` (load matrix, capacity, profile), `features`
(feature-cost variants and their checks), `services` (OTLP sink, Redis), `memory` (many
streams, long round), `imports` / `importhook` (idle RSS import by import), `controlplane`,
`derive` (ratios and targets), `report` / `sections` / `fmt` (Markdown), `charts`
(matplotlib, run in the tools venv), `procs` (process groups, pinning, memory), `tools`
(Go builds of the load generator and the upstream, venvs, Portkey's node_modules),
`pyloadgen` (fallback load generator), `ab` (before/after one change), `privacy`
(data-protection micro-benchmark).
"""
