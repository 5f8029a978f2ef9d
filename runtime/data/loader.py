"""Load one party's own dataset and validate it against the catalog before anything is shared.

`load_dataset` reads the file with the reader its extension picks (runtime/data/sources.py: CSV,
Parquet, Excel .xlsx), or a PostgreSQL table or query named `postgresql:...` (runtime/data/postgres.py),
and checks every declared column, block by block and vectorised
(runtime/data/validate.py), whatever the source: the owner gets file, row, column and reason for
each bad value (up to MAX_REPORTED), and no exception but DataError leaves it.
"""
from __future__ import annotations

from pathlib import Path

from insightql.compiler.check.catalog import Dataset
from insightql.compiler.plaintext.local_eval import Table

from insightql.runtime.data.checks import MAX_REPORTED, DataError, DataIssue, check_path, file_error

__all__ = ["DataError", "DataIssue", "MAX_REPORTED", "load_dataset"]


def load_dataset(path: str | Path, name: str, ds: Dataset, wanted: dict[str, dict] | None = None) -> tuple[Table, int]:
    """Read `path` (a file, or `postgresql:TABLE` / `postgresql:FILE.sql`), check every declared column,
    return the columns the plan reads and the row count.

    `wanted` maps column name -> the plan's view of its type (category codes are taken
    against that domain, which for a UNION ALL may list more values than this dataset's).
    Readers and validation (pyarrow) are imported here: a party without data never loads them.
    """
    from insightql.runtime.data.postgres import is_postgres, read_postgres
    from insightql.runtime.data.sources import Stream, open_source
    from insightql.runtime.data.validate import validate

    if is_postgres(path):
        try:
            return validate(Stream.whole(read_postgres(path)), name, ds, wanted)
        except MemoryError:
            raise file_error(path, "does not fit in memory") from None
    path = Path(path)
    check_path(path)
    try:
        return validate(open_source(path), name, ds, wanted)
    except MemoryError:
        raise file_error(path, "does not fit in memory: too large, or a field far too long") from None
    except OSError as e:
        raise file_error(path, f"cannot be read ({e.strerror or e})") from None
