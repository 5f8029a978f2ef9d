"""Catalog templates: `from = "htcds.victim"` in a dataset pulls standard columns from the stdlib.

Placeholder until the HTCDS templates land: datasets without `from` pass through unchanged.
"""
from __future__ import annotations


def expand_templates(raw: dict) -> dict:
    for name, ds in raw.get("datasets", {}).items():
        if isinstance(ds, dict) and "from" in ds:
            raise ValueError(f"dataset {name!r}: templates are not available yet")
    return raw
