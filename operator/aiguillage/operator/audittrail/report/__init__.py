"""``aiguillage audit report``: what a data-protection officer asks of an audit trail.

- :mod:`.categories` — what each outcome a record carries means (served, refused for
  residency, for a limit or budget, for data protection, failed...), tolerant of outcomes
  it does not know;
- :mod:`.tables` — the figures: requests, tokens and euros per namespace, workload, route,
  provider, location and jurisdiction; every refusal and failover; every attempt that sent
  data outside its request's residency rule (checked with the sidecar's own residency code);
  data-protection findings;
- :mod:`.charts` — chart data, drawn as inline SVG for the page;
- :mod:`.png` — the same charts as PNG files (matplotlib, the optional ``report`` extra);
- :mod:`.html` — one self-contained page (no external resource, no script);
- :mod:`.command` — the command: verify, build, write ``index.html``, ``*.csv``, ``*.png``.
"""
