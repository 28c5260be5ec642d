"""The custom resources of group ``aiguillage.dev``, as pydantic models.

These models are the single source of truth for the CRD schemas (see
:mod:`aiguillage.operator.crdgen`) and parse objects read from the API server or
from manifest files.
"""
