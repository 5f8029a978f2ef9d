"""Regenerate tests/golden/<query>.plan.json for every tests/corpus/valid/*.iq that compiles.

    make golden        (or: .venv/bin/python tests/make_golden.py)

The golden plans are generated, never edited by hand: tests/test_plan_golden.py compiles every
corpus query again and compares bytes, so any change of a plan (a node, an attribute, a bound,
the leakage report, the hash) shows up as a diff in review. Queries that do not compile are
listed on stderr and get no golden plan; golden files whose query is gone are removed.
A query compiles against tests/corpus/catalog.toml, or against the catalog its header line
`-- catalog: NAME.toml` names (tests/corpus/NAME.toml, e.g. catalog_fast.toml for fast linkage).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_io import dump_plan

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "corpus" / "valid"
CATALOG = TESTS / "corpus" / "catalog.toml"
GOLDEN = TESTS / "golden"


def catalog_of(text: str) -> Path:
    """The catalog of a corpus query: a `-- catalog: NAME` line before the query, else catalog.toml."""
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if m := re.fullmatch(r"-- catalog: (\S+)", line.strip()):
            return CATALOG.parent / m[1]
    return CATALOG


def golden_path(query: Path) -> Path:
    return GOLDEN / f"{query.stem}.plan.json"


def compile_corpus() -> tuple[dict[Path, str], dict[Path, str]]:
    """({golden path: plan text}, {query path: rendered diagnostics}) for every corpus query."""
    catalogs: dict[Path, object] = {}
    plans, failed = {}, {}
    for q in sorted(CORPUS.glob("*.iq")):
        text = q.read_text(encoding="utf-8")
        path = catalog_of(text)
        if path not in catalogs:
            catalogs[path] = load_catalog(path)
        res = compile_source(text, q.name, catalogs[path])
        if res.plan is None:
            failed[q] = "\n".join(d.render() for d in res.diagnostics) or "no plan"
        else:
            plans[golden_path(q)] = dump_plan(res.plan)
    return plans, failed


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    plans, failed = compile_corpus()
    changed = 0
    for path, text in plans.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed += 1
    for stale in sorted(set(GOLDEN.glob("*.plan.json")) - set(plans)):
        stale.unlink()
        print(f"removed {stale.name} (its query is gone or no longer compiles)")
    for q, why in failed.items():
        print(f"does not compile, no golden plan: {q.relative_to(TESTS)}\n{why}", file=sys.stderr)
    print(f"{len(plans)} golden plan(s), {changed} rewritten, {len(failed)} corpus quer(ies) failed to compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
