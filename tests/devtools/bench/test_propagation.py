"""The propagation benchmark's arithmetic and table (``bench/propagation.py``), on made-up
samples; the measurement itself needs the node."""

from __future__ import annotations

from aiguillage.devtools.bench.propagation import _stats, markdown


def sample(served: float, told: float | None = 0.05) -> dict[str, float | None]:
    return {"configmap_s": 0.02, "pod_annotated_s": told, "served_s": served}


def test_percentiles_of_the_samples() -> None:
    stats = _stats([float(i) for i in range(1, 21)])
    assert (stats["p50"], stats["p95"], stats["max"], stats["n"]) == (10.5, 19.0, 20.0, 20)


def test_the_table_has_each_stage_and_the_baseline_without_propagation() -> None:
    text = markdown({"with": [sample(0.9), sample(1.1)], "without": [sample(70.0, None)]})

    assert "| **the running pod serving it** | 1.00 s | 1.10 s | 1.10 s | 2 |" in text
    assert "| the running pod annotated (propagation) | 0.05 s |" in text
    assert "propagation off (`operator.propagationPerSecond=0`): served | 70.00 s" in text
