"""How well the data-protection detectors work: a labelled corpus made from a seed
(:mod:`.corpus`, :mod:`.values`), recall and precision per category and the false positive
rate on clean texts (:mod:`.metrics`), and the command writing the table in
``docs/data-protection.md`` (``python -m aiguillage.devtools.privacy_eval``).
"""
