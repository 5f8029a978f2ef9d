"""Result files: CSV, JSON, Parquet and HTML, all written from one result document
(document.py: the released table plus what the plan says about it; tabular.py: CSV and Parquet;
html.py: the page with its bar charts). spec/results.md.
"""
from insightql.runtime.results.document import (EXTENSIONS, FORMATS, format_of, read_result, render_result,
                                                write_result)

__all__ = ["EXTENSIONS", "FORMATS", "format_of", "read_result", "render_result", "write_result"]
