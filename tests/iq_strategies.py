"""Hypothesis strategies for .iq ASTs and source text, shared by the formatter and fuzz tests.

`queries()` draws any AST that `parse` can return (no spans); `catalog_queries()` draws queries
over the names of tests/corpus/catalog.toml so the checker goes past name resolution.
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from insightql.compiler.syntax import ast as A
from insightql.compiler.syntax.parser import KEYWORDS
from insightql.stdlib.aggregates import AGGREGATES
from insightql.stdlib.functions import FUNCTIONS

NO_NEWLINE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")

plain_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
keyword_names = st.sampled_from(sorted(KEYWORDS)).flatmap(
    lambda k: st.sampled_from([k, k.upper(), k.capitalize()]))
odd_names = st.text(NO_NEWLINE, min_size=1, max_size=8)  # quotes, spaces, unicode: need "..."
names = st.one_of(plain_names, plain_names, keyword_names, odd_names)
lower_names = names.map(str.lower).filter(lambda n: n != "" and n.lower() == n)


def _decimals():
    return st.integers(0, 6).flatmap(
        lambda places: st.decimals(min_value=0, max_value=Decimal(10 ** 18 - 1), places=places,
                                   allow_nan=False, allow_infinity=False)).map(abs)


literals = st.one_of(
    st.integers(0, 2 ** 63 - 1).map(lambda v: A.Literal(v, "int")),
    st.integers(0, 120).map(lambda v: A.Literal(v, "int")),
    _decimals().map(lambda v: A.Literal(v, "decimal")),
    st.text(NO_NEWLINE, max_size=10).map(lambda v: A.Literal(v, "string")),
    st.booleans().map(lambda v: A.Literal(v, "bool")),
    st.just(A.Literal(None, "null")),
    st.dates().map(lambda v: A.Literal(v, "date")),
)

BINARY_OPS = ("or", "and", "=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%")


def expressions(leaves=None, func_names=lower_names, max_leaves: int = 12):
    """Random expressions with every node kind; `leaves` defaults to literals and column refs."""
    if leaves is None:
        leaves = st.one_of(literals, st.builds(A.ColumnRef, st.none() | names, names))

    def extend(sub):
        few = st.lists(sub, min_size=1, max_size=3).map(tuple)
        return st.one_of(
            st.builds(A.BinOp, st.sampled_from(BINARY_OPS), sub, sub),
            st.builds(A.UnaryOp, st.sampled_from(("neg", "not")), sub),
            st.builds(A.FuncCall, func_names, st.lists(sub, max_size=3).map(tuple), st.booleans()),
            st.builds(lambda n: A.FuncCall(n, (), False, True), func_names),
            st.builds(lambda n, p: A.FuncCall(n, (), False, True, p), func_names, sub),  # COUNT(*) FILTER (WHERE p)
            st.builds(lambda n, a, g: A.FuncCall(n, a, False, False, None, g),  # pct(v) OVER (PARTITION BY g, ...)
                      func_names, few, few),
            st.builds(A.InList, sub, few, st.booleans()),
            st.builds(A.Between, sub, sub, sub, st.booleans()),
            st.builds(A.IsNull, sub, st.booleans()),
            st.builds(A.Case, st.lists(st.tuples(sub, sub), min_size=1, max_size=3).map(tuple), st.none() | sub),
            st.builds(A.ListLiteral, st.lists(sub, max_size=3).map(tuple)),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


annotations = st.builds(
    A.Annotation, lower_names,
    st.one_of(st.text(NO_NEWLINE, max_size=12), st.lists(names, min_size=1, max_size=3).map(tuple)))


def queries(exprs=None, tables=None, annotation=annotations):
    """Whole queries; the parts are built once here, not on every draw (validation is costly)."""
    exprs = exprs if exprs is not None else expressions(max_leaves=4)
    tables = tables if tables is not None else st.builds(A.TableRef, names, st.none() | names)
    item = st.one_of(st.builds(A.SelectItem, exprs, st.none() | names), st.just(A.SelectItem(None, None)))
    sources = st.one_of(
        st.tuples(st.lists(tables, max_size=2).map(tuple), st.just(())),
        st.tuples(st.just(()), st.lists(st.builds(A.Join, st.sampled_from(("inner", "left")), tables, exprs),
                                        max_size=2).map(tuple)))
    return st.builds(
        lambda anns, sel, src, more, where, group, having, order, limit: A.Query(
            anns, sel, src, more[0], more[1], where, group, having, order, limit),
        st.lists(annotation, max_size=3).map(tuple),
        st.lists(item, min_size=1, max_size=4).map(tuple),
        tables,
        sources,
        st.none() | exprs,
        st.lists(exprs, max_size=3).map(tuple),
        st.none() | exprs,
        st.lists(st.builds(A.OrderItem, exprs, st.booleans()), max_size=3).map(tuple),
        st.none() | st.integers(0, 10 ** 6),
    )


def catalog_queries(catalog):
    """Queries over the catalog's own datasets, columns, functions and parties."""
    datasets = sorted(catalog.datasets)
    columns = sorted({c for d in catalog.datasets.values() for c in d.columns})
    aliases = ["p", "n", "h"]
    qualifiers = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(datasets + aliases))
    column_refs = st.builds(A.ColumnRef, qualifiers, st.sampled_from(columns))
    category_values = sorted({v for d in catalog.datasets.values() for c in d.columns.values()
                              for v in getattr(c, "domain", [])})
    leaves = st.one_of(column_refs, column_refs, literals,
                       st.sampled_from(category_values).map(lambda v: A.Literal(v, "string")))
    funcs = st.one_of(st.sampled_from(sorted(AGGREGATES)), st.sampled_from(sorted(FUNCTIONS)), lower_names)
    exprs = expressions(leaves, funcs, max_leaves=6)
    tables = st.builds(A.TableRef, st.one_of(st.sampled_from(datasets), st.sampled_from(datasets), names),
                       st.none() | st.sampled_from(aliases))
    parties = st.sampled_from(catalog.party_names()) | names
    annotation = st.one_of(
        st.builds(A.Annotation, st.sampled_from(("name", "description", "purpose")),
                  st.text(NO_NEWLINE, max_size=12) | st.lists(names, min_size=1, max_size=2).map(tuple)),
        st.builds(A.Annotation, st.just("receivers"), st.lists(parties, min_size=1, max_size=3).map(tuple)),
        annotations,
    )
    return queries(exprs, tables, annotation)


TOKENS = sorted(KEYWORDS) + [
    "(", ")", ",", ".", ";", "*", "+", "-", "/", "%", "=", "<>", "!=", "<", "<=", ">", ">=", "[", "]", "@",
    "0", "42", "3.14", "'x'", "''", "'it''s'", "DATE '2024-01-31'", "DATE 'nope'", '"date"', '"a""b"',
    "prs_Gender", "prs_Age", "person_id", "identified_on", "police_victims", "ngo_clients", "p", "count",
    "sum", "year", "age_band", "purpose", "receivers", "research", "police", "-- comment\n", "\n",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)
