"""Data protection: personal data found in a request, and audited, redacted, pseudonymised
or refused before it leaves the pod.

Modules, from the rules down to the bytes:

- :mod:`.rules` — the compiled rules (``Route.data_protection``; the shape of
  ``AIPolicy.spec.dataProtection``): categories, the action per category and target, custom
  patterns, deny lists;
- :mod:`.engine` — rules compiled into detectors; ``scan`` a request once, ``apply`` it per
  attempt for the target of that attempt;
- :mod:`.textscan` — one text: the trigger pre-filter, the detectors, overlaps;
- :mod:`.detectors` (e-mail, IP, cards), :mod:`.identifiers` (stdnum: national ids, IBAN,
  VAT), :mod:`.phones` (phonenumbers), :mod:`.custom` (RE2: patterns, deny lists);
- :mod:`.fields` — which fields of each client API are scanned, copy-on-write edits;
- :mod:`.placeholders` — ``[EMAIL_1]``: one per value, never one already in the request;
- :mod:`.restore` — originals put back in whole answers and SSE streams;
- :mod:`.findings` — findings, and the value-free summary for audit and metrics;
- :mod:`.errors` — ``PersonalDataBlocked`` and ``RulesError``.

The request path uses the engine through :mod:`aiguillage.sidecar.protection`.

Every sidecar imports :mod:`.rules` (pydantic models, part of the config); the rest is
imported when a loaded config has data-protection rules, and the detection libraries
(phonenumbers, python-stdnum, google-re2) only for the categories those rules use.
"""
