"""Optimisation passes over the circuit DAG, each a function DiGraph -> DiGraph in its own module.

Placement itself (row-local work at the owner, pre-aggregation over the public domain) is done
by construction in `circuit.py`; these passes clean up and annotate what it built.
"""
from __future__ import annotations

import networkx as nx

from insightql.compiler.plan.passes.batching import batch_comparisons
from insightql.compiler.plan.passes.bitwidth import annotate_bit_lengths
from insightql.compiler.plan.passes.cse import eliminate_common_subexpressions
from insightql.compiler.plan.passes.schedule import schedule

PASSES = (eliminate_common_subexpressions, schedule, annotate_bit_lengths, batch_comparisons)


def optimise(g: nx.DiGraph) -> nx.DiGraph:
    for p in PASSES:
        g = p(g)
    return g
