"""JSON Schema of the plan file (`iq schema plan`), and a small validator for it.

The schema is the contract between the compiler, the runtime, auditors' tools and the golden
plans: every field of `plan_io.make_plan`, and every node op with its attributes as declared
once in compiler/plan/ops.py. A test validates
every corpus plan against it and checks that `spec/plan.schema.json` is this dict, so a change
of the plan format shows up as a schema diff (and a new `PLAN_FORMAT` when it is incompatible).

`validate` implements the part of JSON Schema (2020-12) the schema uses: type, enum, const,
pattern, minimum, properties, required, additionalProperties, items, minItems, maxItems,
uniqueItems, $ref to $defs, anyOf, oneOf, allOf, if/then. No dependency is needed to check a plan.
"""
from __future__ import annotations

import re

from insightql.compiler.plan.ops import BOOL, FRACTION, ID, INT, NAT, NUM, OPS, POS, RULE, SIDE, STR, _ref

SHA256 = "^sha256:[0-9a-f]{64}$"
PLACEMENT = "^(local:[A-Za-z_][A-Za-z0-9_]*|input:[A-Za-z_][A-Za-z0-9_]*|secure|reveal|public)$"


def _obj(props: dict, required: list[str] | None = None, extra=False, **kw) -> dict:
    return {"type": "object", "properties": props, "required": sorted(props) if required is None else required,
            "additionalProperties": extra, **kw}


LEAKAGE_ITEMS = ["group_domain", "suppression_flag", "output", "output_flag", "having_outcome", "input_sizes",
                 "guard_outcome", "sort_comparisons", "match_pattern"]
PLACEMENT_OF = {"local": "^local:", "input": "^input:", "secure": "^secure$", "reveal": "^reveal$",
                "public": "^public$"}


def _node_schema() -> dict:
    rules = []
    for op, spec in OPS.items():
        then = {"properties": {"attrs": _obj(spec.attrs, spec.required, description=spec.doc)}}
        then["properties"]["placement"] = {"type": "string", "pattern": PLACEMENT_OF[spec.placement]}
        rules.append({"if": {"properties": {"op": {"const": op}}}, "then": then})
    return {
        **_obj({
            "id": ID,
            "op": {"enum": sorted(OPS)},
            "placement": {"type": "string", "pattern": PLACEMENT},
            "inputs": {"type": "array", "items": ID},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}, "minItems": 1,
                      "description": "vector length (cells) or matrix (rows, cells); -1: not known before run time"},
            "bounds": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2,
                       "description": "lowest and highest value the node can hold (plaintext units)"},
            "frac": {**NAT, "description": "fractional bits: a secure node holds round(value * 2**frac)"},
            "attrs": {"type": "object"},
        }),
        "allOf": rules,
    }


PLAN_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://insightql.invalid/spec/plan.schema.json",
    "title": "InsightQL plan",
    "description": "A compiled InsightQL query: the MPC circuit every party runs, its disclosure policy, "
                   "leakage report and content hash (spec/plan.md).",
    **_obj({
        "format": {"const": "insightql-plan/1"},
        "compiler_version": STR,
        "catalog_digest": {"type": "string", "pattern": SHA256},
        "query": _obj({"name": STR, "description": STR, "purpose": {"type": ["string", "null"]}, "source": STR,
                       "source_name": STR, "source_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}),
        "parties": {"type": "array", "items": STR, "minItems": 1, "uniqueItems": True},
        "datasets": {"type": "object", "additionalProperties": _obj(
            {"owner": STR, "guard_only": {"const": True, "description": "read only by the differencing guard, to "
                                                                      "count an earlier release's cells"}},
            required=["owner"])},
        "receivers": {"type": "array", "items": STR, "minItems": 1, "uniqueItems": True},
        "output_parties": {"type": "array", "items": STR, "minItems": 1, "uniqueItems": True,
                           "description": "receivers that do not compute: each computing party sends them its "
                                          "shares of the revealed values (spec/plan.md)"},
        "policy": _ref("policy"),
        "cells": POS,
        "secure_type": _obj({"kind": {"const": "secint"}, "l": {"type": "integer", "minimum": 32},
                             "frac_bits": NAT, "recip_bits": NAT, "value_bits": POS}),
        "nodes": {"type": "array", "items": _ref("node"), "minItems": 1},
        "leakage": {"type": "array", "items": _ref("leakage_item")},
        "hash": {"type": "string", "pattern": SHA256},
        "guard": {"type": "array", "items": _ref("guard_entry"),
                  "description": "differencing guard: earlier releases this plan is compared with (compiler/plan/guard.py)"},
    }, required=["catalog_digest", "cells", "compiler_version", "datasets", "format", "hash", "leakage", "nodes",
                 "parties", "policy", "query", "receivers", "secure_type"]),
    "$defs": {
        "node": _node_schema(),
        "policy": _obj({
            "min_group_size": POS, "round_counts_to": POS, "max_groups": POS, "distinct_persons": {"type": "boolean"},
            "dominance": {"anyOf": [{"type": "null"}, _obj({"n": POS, "k": NUM})]},
            "receivers": {"type": "array", "items": STR},
            "privacy": {**_obj({"epsilon": FRACTION, "delta": FRACTION, "unit": STR, "noisy_threshold": BOOL,
                                "rows_per_person": {"type": "object", "additionalProperties": POS},
                                "required_by": {"type": "array", "items": STR}}),
                        "description": "differential privacy (spec/privacy.md; present only then)"}},
            ["distinct_persons", "dominance", "max_groups", "min_group_size", "receivers", "round_counts_to"]),
        "type": {"type": "object", "required": ["kind", "nullable"], "additionalProperties": False,
                 "properties": {"kind": {"enum": ["int", "decimal", "bool", "category", "date", "key", "string",
                                                  "null"]},
                                "nullable": {"type": "boolean"}, "lo": {"type": ["number", "null"]},
                                "hi": {"type": ["number", "null"]}, "scale": NAT,
                                "domain": {"type": "array", "items": STR}}},
        "expr": {"type": "object", "description": "row expression IR: {col}, {lit}, {op, args}, {fn, args, consts, "
                                                  "arg_types} or {op: case, whens, else}; every node has a type",
                 "required": ["type"], "properties": {"type": _ref("type")}},
        "expr_or_null": {"anyOf": [{"type": "null"}, _ref("expr")]},
        "group_key": _obj({"expr": _ref("expr"), "type": _ref("type"), "size": POS}),
        "slot": {"type": "object", "required": ["name", "kind"], "additionalProperties": False, "properties": {
            "name": {"type": "string", "pattern": "^s[0-9]+$"},
            "kind": {"enum": ["rows", "persons", "persons_where", "repeaters", "count", "distinct", "sum", "sumsq",
                              "abssum", "top", "max", "min",
                              "hist", "symdiff"]},
            "datasets": {"type": "array", "items": STR}, "scope": {"enum": ["cell", "all"]},
            "arg": _ref("expr"), "column": STR, "scale": NAT, "clamp": {"type": "array", "items": NUM, "minItems": 2,
                                                                     "maxItems": 2},
            "n": POS, "empty": INT, "lo": INT, "size": POS,
            "person": {"type": "string", "description": "order statistics and dominance per person: each owner "
                                                        "first reduces a person's rows in a cell to one value"}}},
        "output": {"type": "object", "required": ["name", "kind", "type"], "additionalProperties": False,
                   "properties": {"name": STR, "kind": {"enum": ["key", "value"]}, "key": NAT, "type": _ref("type"),
                                  "value": ID, "flag": {"anyOf": [ID, {"type": "null"}]}, "scale": INT,
                                  "post": {"anyOf": [{"enum": ["sqrt"]}, {"type": "null"}]},
                                  "pct": {"type": "boolean", "const": True,
                                          "description": "pct(...) column (present only then): after post and "
                                                         "before round, the public stage replaces each released "
                                                         "value by its percent of the column's released total"},
                                  "pct_by": {"type": "array", "items": NAT, "minItems": 1,
                                             "description": "pct(...) OVER (PARTITION BY ...) (present only "
                                                            "then): the keys (indices) of the partition; the "
                                                            "total is the released values of the cells with "
                                                            "the same values of these keys"},
                                  "dp": {"type": "array", "minItems": 1, "items": _obj({
                                      "mechanism": {"enum": ["discrete_laplace"]}, "epsilon": FRACTION,
                                      "delta": FRACTION, "sensitivity": POS, "scale": FRACTION}),
                                      "description": "differential privacy (present only then): the noisy "
                                                     "measurements the value is computed from (spec/privacy.md)"},
                                  "round": {"anyOf": [{"type": "null"}, _obj({"round": INT})]},
                                  "rounded_to": {"type": "number", "minimum": 0}}},
        "guard_entry": _obj({
            "datasets": {"type": "array", "items": STR}, "where": {"description": "the earlier WHERE (row IR, or "
                                                                                  "a join's sides)"},
            "keys": {"type": "array", "description": "the earlier GROUP BY keys (group_key objects)"},
            "mode": {"enum": ["cells", "rows"], "description": "cells: related over the public domain "
                                                               "(guard.inside/contains/margin); rows: fallback"},
            "scope": {"enum": ["cell", "all"]}, "k": POS, "k_old": POS,
            "guarded": {"type": "array", "items": {"type": "object"},
                        "description": "the releases the earlier release's own guard compared it with, as its "
                                       "ledger signature records them (compiler/plan/guard_cells.py own_guard)"},
            "from": {"type": "array", "minItems": 1, "items": _obj({"query": {"type": ["string", "null"]},
                                                                   "plan_hash": {"type": "string", "pattern": SHA256}})}},
            required=["datasets", "from", "k", "k_old", "keys", "mode", "where"]),
        "link_layout": _obj({
            "mode": {"enum": ["join", "distinct"]}, "key_bits": {"type": "integer", "minimum": 1, "maximum": 64},
            "side_bit": {"enum": [0, 1]}, "payload_bits": NAT, "bits": POS,
            "sides": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                "type": "array", "items": _obj({"name": STR, "bits": NAT, "offset": NAT})}}},
            description="packed row v = key' * 2**(side_bit + payload_bits) + side * 2**payload_bits + payload; "
                        "per side its payload fields, high to low (compiler/plaintext/linkage_local.py)"),
        "link_measure": _obj({"name": {"type": "string", "pattern": "^m[01]_[0-9]+$"}, "arg": _ref("expr"),
                              "scale": NAT, "lo": INT, "hi": INT,
                              "clamp": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2}},
                             ["arg", "hi", "lo", "name", "scale"],
                             description="a packed field: not-NULL bit and clamped, scaled value minus lo"),
        "link_weight": {"anyOf": [
            _obj({"kind": {"enum": ["rows", "persons"]}}),
            _obj({"kind": {"const": "count"}, "side": SIDE, "field": STR}),
            _obj({"kind": {"const": "sum"}, "side": SIDE, "field": STR, "lo": INT})],
            "description": "per joined row: 1 (rows), first of its (key, cell) (persons), a measure's not-NULL bit "
                           "(count) or value (sum, plus lo per counted row)"},
        "result_key": _obj({"name": STR, "values": {"type": "array"}, "type": _ref("type")}),
        "leakage_item": {"type": "object", "required": ["item", "to", "detail"], "additionalProperties": False,
                         "properties": {"item": {"enum": LEAKAGE_ITEMS},
                                        "to": {"type": "array", "items": STR}, "detail": STR, "cells": POS,
                                        "column": STR, "public": {"type": "boolean"},
                                        "rules": {"type": "array", "items": RULE,
                                                  "description": "ids of the release rules that protect it"}}},
    },
}


# -- validator ------------------------------------------------------------------------------
_TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def validate(instance, schema: dict | None = None) -> list[str]:
    """Errors of `instance` against `schema` (default PLAN_SCHEMA), as 'path: message' lines."""
    root = PLAN_SCHEMA if schema is None else schema
    errors: list[str] = []
    _check(instance, root, root, "$", errors)
    return errors


def _check(x, s: dict, root: dict, path: str, errors: list[str]) -> None:
    if "$ref" in s:
        target = root
        for part in s["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        _check(x, target, root, path, errors)
    t = s.get("type")
    if t is not None:
        kinds = [t] if isinstance(t, str) else t
        if not any(_TYPES[k](x) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {type(x).__name__}")
            return
    if "const" in s and x != s["const"]:
        errors.append(f"{path}: must be {s['const']!r}")
    if "enum" in s and x not in s["enum"]:
        errors.append(f"{path}: {x!r} is not one of {s['enum']}")
    if isinstance(x, str) and "pattern" in s and not re.search(s["pattern"], x):
        errors.append(f"{path}: {x!r} does not match {s['pattern']}")
    if _TYPES["number"](x) and "minimum" in s and x < s["minimum"]:
        errors.append(f"{path}: {x} is below {s['minimum']}")
    if isinstance(x, dict):
        props = s.get("properties", {})
        for k in s.get("required", []):
            if k not in x:
                errors.append(f"{path}: missing {k!r}")
        extra = s.get("additionalProperties", True)
        for k, v in x.items():
            if k in props:
                _check(v, props[k], root, f"{path}.{k}", errors)
            elif extra is False:
                errors.append(f"{path}: unexpected field {k!r}")
            elif isinstance(extra, dict):
                _check(v, extra, root, f"{path}.{k}", errors)
    if isinstance(x, list):
        if len(x) < s.get("minItems", 0):
            errors.append(f"{path}: needs at least {s['minItems']} item(s)")
        if "maxItems" in s and len(x) > s["maxItems"]:
            errors.append(f"{path}: at most {s['maxItems']} item(s)")
        if s.get("uniqueItems") and len({repr(i) for i in x}) != len(x):
            errors.append(f"{path}: items must be unique")
        if "items" in s:
            for i, v in enumerate(x):
                _check(v, s["items"], root, f"{path}[{i}]", errors)
    for sub in s.get("allOf", []):
        _check(x, sub, root, path, errors)
    for key, need in (("anyOf", "any"), ("oneOf", "one")):
        if key in s:
            ok = sum(1 for sub in s[key] if not _errors(x, sub, root, path))
            if (need == "any" and ok == 0) or (need == "one" and ok != 1):
                errors.append(f"{path}: matches {ok} of the {key} alternatives")
    if "if" in s and "then" in s and not _errors(x, s["if"], root, path):
        _check(x, s["then"], root, path, errors)


def _errors(x, s: dict, root: dict, path: str) -> list[str]:
    out: list[str] = []
    _check(x, s, root, path, out)
    return out
