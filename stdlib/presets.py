"""Policy presets: named sets of disclosure-policy fields a catalog dataset can start from.

`policy_preset = "research-output"` in a dataset fills its policy from stdlib/data/policy_presets.toml;
the dataset's own policy keys override the preset's (compiler/check/layout.py applies this before the
catalog is validated). Each preset records what it enforces, what it does not, and its sources;
spec/stdlib.md renders them for readers.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

PRESET_POLICY_FIELDS = ("min_group_size", "round_counts_to", "dominance", "max_groups", "allow_row_counts")
"""Policy fields a preset may set; receivers and purposes are each owner's own decision."""


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    summary: str
    policy: dict
    enforces: tuple[str, ...]
    does_not_enforce: tuple[str, ...]
    sources: tuple[str, ...]


@lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    """Every preset by name, read from the installed package data."""
    text = files("insightql.stdlib.data").joinpath("policy_presets.toml").read_text(encoding="utf-8")
    out = {}
    for name, p in tomllib.loads(text)["presets"].items():
        unknown = set(p["policy"]) - set(PRESET_POLICY_FIELDS)
        if unknown:
            raise ValueError(f"policy preset {name!r} sets fields a preset may not set: {sorted(unknown)}")
        out[name] = Preset(name, p["title"], p["summary"], p["policy"], tuple(p["enforces"]),
                           tuple(p["does_not_enforce"]), tuple(p["sources"]))
    return out


def preset_policy(name: str) -> dict:
    """A fresh copy of a preset's policy fields (KeyError for an unknown preset)."""
    return copy.deepcopy(load_presets()[name].policy)
