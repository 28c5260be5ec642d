"""Rate limits and monthly budgets (compiled from AIPolicies as ``Route.limits``).

:mod:`aiguillage.sidecar.limits.keys` is the one place that says how their counters are
named and what they hold in the shared store: the sidecars write them, the operator reads
them to show spend in AIRoute status.
"""
