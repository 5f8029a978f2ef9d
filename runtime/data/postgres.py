"""PostgreSQL as a data source: a table, or one read-only query, -> a `Source` (runtime/data/sources.py).

A party names it in `--data` instead of a file:

    --data police_victims=postgresql:public.victims      a table or view ([schema.]name, as written)
    --data police_victims=postgresql:victims.sql         a file holding one query (SELECT, WITH, VALUES, TABLE)

The connection string never comes from the catalog, the plan or the command line: `IQ_PG_DSN` (a
libpq connection string or URI), else the file named by `IQ_PG_DSN_FILE`, else libpq's own
environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ~/.pgpass, PGSERVICE). It is never
printed: messages name host, port, database and the table or query file, and every text that
leaves this module has the password (and the whole connection string) blanked out.

The transaction is READ ONLY (the server refuses any write, a data-modifying CTE included), with
DateStyle ISO (dates as YYYY-MM-DD), shortest exact floats, UTF-8, and without parallel or
synchronised scans, so a table's rows come in its physical order and a query's in its result
order (its ORDER BY; without one, the order the server reads them in). Rows are numbered in that
order from 1, as a file's, and the diagnostics say which order it is. Every value arrives as text
(each row as its record text, parsed as CSV) and is judged by the one validation (runtime/data/validate.py), so the
same values give the same Table and the same bad values the same issues as a CSV file.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from insightql.runtime.data.checks import DataError, DataIssue
from insightql.runtime.data.sources import Source

PREFIX = "postgresql:"
FETCH_ROWS = 50_000  # rows parsed at a time, in a thread, while the server makes the next ones
SESSION = ["SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL extra_float_digits = 1",
           "SET LOCAL synchronize_seqscans = off", "SET LOCAL max_parallel_workers_per_gather = 0"]


def is_postgres(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def read_postgres(spec: str) -> Source:
    """The table or query that `spec` (postgresql:...) names, every column as text, in source order."""
    import psycopg
    from psycopg import sql

    target = spec[len(PREFIX):].strip()
    dsn = connection_string(spec)
    secrets = _secrets(dsn, spec)
    if target.lower().endswith(".sql"):
        query, what = _query_file(target, spec), f"query {target}"
        order = "rows in the query's result order"
    else:
        query, what = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*_table_name(target, spec))), f"table {target}"
        order = "rows in the table's physical order"
    try:
        conn = psycopg.connect(dsn, **_defaults(dsn))
    except psycopg.Error as e:
        raise DataError([DataIssue(f"{spec} ({_where_dsn(dsn)})", None, None,
                                   "cannot connect: " + _scrub(_first_line(e), secrets))]) from None
    label = f"PostgreSQL {what} (database {conn.info.dbname} on {conn.info.host}:{conn.info.port}; {order})"
    try:
        conn.read_only = True
        with conn.transaction(), conn.cursor() as cur:
            for statement in SESSION:
                cur.execute(statement)
            return _fetch(cur, query, label)
    except psycopg.Error as e:
        raise DataError([DataIssue(label, None, None, "the server refused: " + _scrub(_first_line(e), secrets))]) \
            from None
    finally:
        conn.close()


def connection_string(spec: str) -> str:
    """IQ_PG_DSN, else the content of IQ_PG_DSN_FILE, else "" (libpq's environment and defaults)."""
    dsn = os.environ.get("IQ_PG_DSN", "").strip()
    file = os.environ.get("IQ_PG_DSN_FILE", "").strip()
    if not dsn and file:
        try:
            dsn = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError([DataIssue(spec, None, None, f"IQ_PG_DSN_FILE {file} cannot be read "
                                                         f"({getattr(e, 'strerror', None) or type(e).__name__})")])
    return dsn


def _secrets(dsn: str, spec: str) -> list[str]:
    """What no message may contain: the connection string and any password in it or in PGPASSWORD."""
    from psycopg.conninfo import conninfo_to_dict
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # its message quotes the string: never shown
        raise DataError([DataIssue(spec, None, None, "the connection string (IQ_PG_DSN or IQ_PG_DSN_FILE) is not "
                                                     "a libpq connection string or URI; it is not shown here, as "
                                                     "it may hold a password")]) from None
    found = [dsn, str(params.get("password") or ""), os.environ.get("PGPASSWORD", "")]
    return sorted({s for s in found if s}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _defaults(dsn: str) -> dict:
    from psycopg.conninfo import conninfo_to_dict
    kw = {"client_encoding": "utf8", "application_name": "insightql"}
    if "connect_timeout" not in conninfo_to_dict(dsn) and not os.environ.get("PGCONNECT_TIMEOUT"):
        kw["connect_timeout"] = 10
    return kw


def _where_dsn(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict
    params = conninfo_to_dict(dsn)
    host = params.get("host") or os.environ.get("PGHOST") or "the local socket"
    db = params.get("dbname") or os.environ.get("PGDATABASE") or "the default database"
    return f"database {db} on {host}"


def _table_name(target: str, spec: str) -> list[str]:
    parts = target.split(".")
    if not target or len(parts) > 2 or not all(p.strip() for p in parts):
        raise DataError([DataIssue(spec, None, None, "write postgresql:[SCHEMA.]TABLE, or postgresql:FILE.sql for "
                                                     "a query")])
    return [p.strip() for p in parts]


def _query_file(target: str, spec: str):
    from psycopg import sql
    try:
        text = Path(target).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError([DataIssue(spec, None, None, f"the query file cannot be read "
                                                     f"({getattr(e, 'strerror', None) or type(e).__name__})")])
    text = text.strip().rstrip(";").strip()
    if not text:
        raise DataError([DataIssue(spec, None, None, "the query file is empty")])
    return sql.SQL("\n" + text)  # an argument of the COPY statement: its braces are not placeholders


def _fetch(cur, query, label: str) -> Source:
    """The header from the query's description; the rows as their record text, `(v1,v2,"v 3",)`,
    FETCHed in chunks (one result a chunk: no Python work per value, nor per protocol message as
    COPY would cost) and parsed by pyarrow in a thread while the server makes the next chunk."""
    from psycopg import sql
    cur.execute(sql.SQL("SELECT * FROM ({}\n) AS iq_q LIMIT 0").format(query))
    header = [d.name.strip() for d in cur.description or []]
    cur.execute(sql.SQL("DECLARE iq_rows NO SCROLL CURSOR FOR SELECT ROW(iq_q.*)::text FROM ({}\n) AS iq_q")
                .format(query))
    chunks = []
    with ThreadPoolExecutor(1) as pool:
        while True:
            cur.execute(f"FETCH {FETCH_ROWS} FROM iq_rows")
            res = cur.pgresult
            n = res.ntuples if res is not None else 0
            if n == 0 or not header:
                break
            get = res.get_value
            body = b"\n".join([get(k, 0)[1:-1] for k in range(n)])  # without the record's parentheses
            chunks.append(pool.submit(_parse, body, n, len(header)))
        tables = [c.result() for c in chunks]
    if not tables:
        return Source(label, header, [pa.array([], pa.string())] * len(header), 0)
    table = pa.concat_tables(tables)
    return Source(label, header, table.columns, table.num_rows)


def _parse(body: bytes, rows: int, m: int) -> pa.Table:
    """Record text is CSV but for its escapes: a quoted value doubles a quote and a backslash; a
    value with a line break is quoted (and slower to parse: looked for first)."""
    names = [f"f{j}" for j in range(m)]
    multiline = body.count(b"\n") != rows - 1 or b"\r" in body
    return pcsv.read_csv(
        pa.py_buffer(body), read_options=pcsv.ReadOptions(column_names=names, block_size=max(len(body), 1 << 20) + 1),
        parse_options=pcsv.ParseOptions(newlines_in_values=multiline, ignore_empty_lines=False, escape_char="\\"),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), check_utf8=False,
                                            strings_can_be_null=False, quoted_strings_can_be_null=False))
