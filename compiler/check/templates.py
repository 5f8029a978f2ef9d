"""Catalog templates: the stdlib's dataset layouts (HTCDS 2.0), read from package data.

A dataset reuses one with `like = "template:htcds.victim"` (or the older `from = "htcds.victim"`),
the same mechanism as `like = "other_dataset"` (compiler/check/layout.py, spec/catalog.md):

    [datasets.ngo_cases]
    owner = "ngo"
    like = "template:htcds.victim"         # columns of HTCDS 2.0 Person + Victim Context
    exclude = ["prs_Birthdate"]            # drop template columns
    policy_preset = "research-output"      # k = 10, counts rounded to 5, dominance (2, 85)
    [datasets.ngo_cases.columns]
    prs_Gender = { type = "category", domain = ["Feminine", "Masculine"] }   # replaces the template's
    [datasets.ngo_cases.policy]
    receivers = ["ngo", "police"]          # the dataset's own policy keys win over the preset

A template is a layout without owner or policy: columns, description and `person_key`.
spec/stdlib.md section 2 lists the templates and how HTCDS fields become columns.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def load_templates() -> dict[str, dict]:
    """The stdlib's templates by name (`htcds.victim`, ...), read from the installed package data."""
    text = files("insightql.stdlib.data").joinpath("htcds_templates.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["templates"]
