"""What the `iq` subcommand groups share: the usage error (exit code 2), finding a query's
catalog, compiling a query (with the differencing guard's ledgers) and writing a result table."""
from __future__ import annotations

import sys
from pathlib import Path

from insightql.compiler.check.catalog import find_catalog, load_catalog


class UsageError(Exception):
    pass


def catalog_for(path: Path, explicit: str | None):
    cat_path = Path(explicit) if explicit else find_catalog(path)
    if cat_path is None:
        raise UsageError(f"no catalog.toml found in {path} or a parent folder; pass --catalog FILE")
    return load_catalog(cat_path), cat_path


def compile_query(path: Path, catalog_arg, ledgers: list[Path] = ()):
    from insightql.compiler.pipeline import compile_source

    catalog, cat_path = catalog_for(path, catalog_arg)
    earlier = None
    if ledgers:  # differencing guard: compare with every release these ledgers record
        from insightql.runtime.governance.party_checks import earlier_releases  # loaded only when there are ledgers
        try:
            earlier = earlier_releases(ledgers)
        except ValueError as e:
            raise UsageError(str(e))
    res = compile_source(path.read_text(encoding="utf-8"), str(path), catalog, earlier=earlier)
    for d in res.diagnostics:
        print(d.render(), file=sys.stderr)
    return res, catalog, cat_path


def write_result(table, out: str | None):
    if out is None:
        return
    text = table.to_json() if out.endswith(".json") else table.to_csv()
    Path(out).write_text(text, encoding="utf-8")
