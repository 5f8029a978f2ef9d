"""Regenerate spec/plan.schema.json and spec/catalog.schema.json (what `iq schema` prints).

Run after changing compiler/plan/plan_schema.py or the catalog models:
    .venv/bin/python tests/make_schemas.py
tests/test_plan_golden.py fails while the files are out of date. Never edit them by hand.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from insightql.compiler.check.catalog import catalog_json_schema
from insightql.compiler.plan.plan_schema import PLAN_SCHEMA

SPEC = Path(__file__).resolve().parent.parent / "spec"


def schema_files() -> dict[Path, str]:
    """Each generated file and its exact text (the output of `iq schema plan|catalog`)."""
    return {SPEC / "plan.schema.json": json.dumps(PLAN_SCHEMA, indent=2, sort_keys=True) + "\n",
            SPEC / "catalog.schema.json": json.dumps(catalog_json_schema(), indent=2, sort_keys=True) + "\n"}


def main() -> int:
    for path, text in schema_files().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(SPEC.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
