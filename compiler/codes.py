"""Every diagnostic code with its one-line title. Codes are stable and never reused.

IQ0xx catalog, IQ1xx syntax, IQ2xx names and types, IQ3xx disclosure, IQ4xx plan,
IQ5xx data and runtime, IQ9xx internal. spec/diagnostics.md documents each with an example.
"""
import re

DOCS_URL = "https://github.com/insightql/insightql/blob/main/"
"""Where the repository's files are published; SARIF `helpUri`s point into its spec/ pages
(`iq check --docs-url` or IQ_DOCS_URL set another address, e.g. an internal mirror)."""
CODES: dict[str, str] = {
    "IQ001": "catalog is not valid TOML",
    "IQ002": "catalog does not match the catalog schema",
    "IQ003": "like names no dataset, template or preset",
    "IQ004": "like forms a cycle",
    "IQ005": "column change or exclude not in the inherited layout",
    "IQ006": "privacy policy allows a large epsilon per query (warning)",
    "IQ101": "unexpected character",
    "IQ102": "query ends too early",
    "IQ103": "unexpected token",
    "IQ104": "unknown or repeated annotation",
    "IQ105": "invalid date literal",
    "IQ106": "number literal out of range",
    "IQ107": "query nested too deeply",
    "IQ108": "annotation value of the wrong form",
    "IQ109": "file is not readable UTF-8 text",
    "IQ201": "unknown dataset or alias",
    "IQ202": "ambiguous column",
    "IQ203": "unknown column",
    "IQ206": "table bound twice in FROM",
    "IQ207": "UNION ALL of incompatible datasets",
    "IQ208": "duplicate output column name",
    "IQ209": "ORDER BY position out of range",
    "IQ210": "operator not defined for these types",
    "IQ211": "condition is not boolean",
    "IQ212": "category literal outside the domain",
    "IQ213": "list literal outside a function call",
    "IQ214": "ordering comparison on unordered values",
    "IQ215": "comparison with NULL",
    "IQ216": "CASE branches of different types",
    "IQ217": "value range too large",
    "IQ220": "nested aggregate",
    "IQ221": "aggregate where none is allowed",
    "IQ223": "column neither grouped nor aggregated",
    "IQ230": "unknown function",
    "IQ231": "wrong number of arguments",
    "IQ232": "argument of the wrong type",
    "IQ233": "only COUNT accepts *",
    "IQ234": "DISTINCT outside COUNT",
    "IQ235": "aggregate of a key column",
    "IQ240": "unknown party",
    "IQ250": "JOIN condition is not a column equality",
    "IQ251": "JOIN on incompatible columns",
    "IQ301": "raw row output",
    "IQ302": "key column released, grouped or counted as rows",
    "IQ303": "hidden column used",
    "IQ304": "aggregate not allowed on this column",
    "IQ305": "SUM/AVG/VAR/STDDEV of a column without clamp bounds",
    "IQ306": "ORDER BY a value the query does not release",
    "IQ307": "receiver not allowed by the datasets' policies",
    "IQ308": "purpose missing or not allowed",
    "IQ309": "HAVING on an upper bound of a count",
    "IQ310": "GROUP BY not enumerable or more cells than max_groups",
    "IQ311": "key compared with a constant",
    "IQ312": "WHERE on a column the owner does not allow in WHERE",
    "IQ313": "conditional aggregate (CASE inside an aggregate)",
    "IQ316": "COUNT(DISTINCT ...) of a non-key column",
    "IQ317": "aggregate of a computed expression",
    "IQ318": "AVG/VAR/STDDEV under a dominance rule",
    "IQ319": "HAVING on an aggregate that may be withheld in a released cell",
    "IQ320": "HAVING on an exact count while counts are rounded",
    "IQ321": "output reveals an exact count while counts are rounded",
    "IQ322": "UNION ALL datasets disagree on clamp bounds or person key",
    "IQ323": "row count of a dataset whose owner does not allow it",
    "IQ324": "dataset read more than once",
    "IQ325": "aggregate without a differential privacy mechanism",
    "IQ326": "differential privacy required but no @epsilon",
    "IQ327": "@epsilon above the policy's per-query cap",
    "IQ329": "sums whose value classes cannot be related to the counts",
    "IQ328": "@epsilon over a dataset whose owner keeps no privacy budget",
    "IQ410": "estimated run time above the limit set for the check",
}


def doc_page(code: str) -> str:
    """The spec page that documents `code`, relative to the repository root."""
    return "spec/diagnostics-disclosure.md" if code.startswith("IQ3") else "spec/diagnostics.md"


def help_uri(code: str, base: str = DOCS_URL) -> str:
    """The address of `code`'s section: its page and the heading's anchor (GitHub's rule: lower
    case, punctuation dropped, spaces as hyphens)."""
    uri = base.rstrip("/") + "/" + doc_page(code)
    if code not in CODES:
        return uri
    heading = f"{code} {CODES[code]}".lower()
    return uri + "#" + re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")
