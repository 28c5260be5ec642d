"""``aiguillage audit verify`` and ``aiguillage audit report``: the auditor's side of the trail.

The sidecars write the trail (:mod:`aiguillage.sidecar.audit`, chained and checkpointed by
:mod:`aiguillage.sidecar.auditchain`); these modules read it back, wherever it was collected:

- :mod:`.lines` — reads files (plain JSON lines, Kubernetes CRI log lines, Docker json-file
  lines), keeps each chained line's exact bytes, counts and skips everything else;
- :mod:`.keys` — the public keys checkpoints are checked against (PEM files, a directory,
  or the operator's ConfigMap of public keys saved as YAML/JSON);
- :mod:`.verify` — every chain's links and checkpoint signatures, and the first broken link
  of each chain, named precisely (edited, deleted, inserted, reordered, missing tail...);
- :mod:`.commands` — the two commands' output and exit codes;
- :mod:`.report` — the data-protection officer's report (tables, CSV, HTML with inline
  SVG charts, PNG charts).
"""
