"""Estimated wall time of a plan: what `iq explain` shows before a run, what `iq check --max-seconds`
compares with (warning IQ410), and what `iq run`'s default time limit follows from.

A few constants, each calibrated on the benchmarks of this kind of machine (2 shared cores, every
party a process on loopback), times the work the cost model (compiler/review/cost.py) counts:

* start-up of a run, `STARTUP_S`: interpreter, imports, the plan check, connecting (the `startup`
  column of benchmarks/RESULTS.md: 2.0-2.8 s);
* loading and validating, `LOAD_S_PER_ROW` at each owner (pyarrow, spec/runtime.md *Data sources*:
  0.81 s for 1M CSV rows);
* secure steps, `SECURE_S_PER_MULT` per secure multiplication at m = 4 parties, scaled by (m - 1)/3:
  scenarios (a) and (b) of benchmarks/RESULTS.md, 64,440 and 31,504 multiplications in 4.6 s and
  2.1 s after start-up (7.4e-5 s each; the rounds, 37 in both, add little on loopback);
* record linkage (benchmarks/LINKAGE.md, its rows measured on a quiet machine): the oblivious design's
  radix sort, `RADIX_S_PER_ROW_BIT` per row of the linked vectors and bit of the sort key plus
  `RADIX_S_PER_BIT` per bit (each pass's rounds and fixed costs, which dominate at 1k: the earlier
  purely linear model was right at 1k and 8-10x high at 10k and 100k); fitted to the join of 100k x
  100k (262,144 rows x 63 bits in 323 s) and 1k x 1k (about 8 s quiet); the 10k join and distinct
  count fall within 1.3x. The fast design, `FAST_S_PER_ROW` per row (shuffle and MiMC tags) plus
  `FAST_S_FIXED` (the tags' 106 rounds of products, the shuffle's steps): fitted to its 100k x 100k
  join (262,144 rows, 125 s at load 5-6, the parties' CPU 169 s). tests/test_linkage_timing_model.py checks every recorded benchmark row within 2x.

Row counts are bounded by each dataset's `max_rows` unless the caller knows them, so the figure
is an upper bound on a quiet machine; other jobs on the cores make a run slower.
"""
from __future__ import annotations

from insightql.compiler.review.cost import estimate

STARTUP_S = 2.5
LOAD_S_PER_ROW = 1.0e-6
SECURE_S_PER_MULT = 7.4e-5
RADIX_S_PER_ROW_BIT = 1.94e-5
RADIX_S_PER_BIT = 0.05
FAST_S_PER_ROW = 4.0e-4
FAST_S_FIXED = 2.0


def padded(rows: int, min_size: int) -> int:
    """A linked vector's public length: the row count rounded up to a power of two, at least min_size."""
    n = max(rows, min_size, 1)
    return 1 << (n - 1).bit_length()


def estimate_seconds(plan: dict, rows: dict[str, int], cost: dict | None = None) -> dict:
    """{"total", "stages": {stage: seconds}, "bound"}: `rows` maps each dataset the plan reads to its
    row count, or to its catalog max_rows ("bound": True when any figure is a bound)."""
    cost = cost or estimate(plan)
    m = len(plan["parties"])
    nodes = {n["id"]: n for n in plan["nodes"]}
    load = max((rows.get(d, 0) for d in plan["datasets"]), default=0) * LOAD_S_PER_ROW  # owners load in parallel
    secure = cost["totals"]["mults"] * SECURE_S_PER_MULT * max(m - 1, 1) / 3
    linkage = 0.0
    for n in plan["nodes"]:
        if n["op"] not in ("link_join", "link_distinct"):
            continue
        sides = [nodes[nodes[i]["inputs"][0]] for i in n["inputs"] if nodes[i]["op"] == "link_share"]
        length = sum(padded(rows.get(s["attrs"]["dataset"], 0), s["attrs"]["min_size"]) for s in sides)
        bits = max((s["attrs"]["layout"]["bits"] for s in sides), default=0)
        if n["attrs"].get("algorithm") == "fast":
            seconds = length * FAST_S_PER_ROW + FAST_S_FIXED
        else:
            seconds = length * bits * RADIX_S_PER_ROW_BIT + bits * RADIX_S_PER_BIT
        linkage += seconds * max(m - 1, 1) / 2  # calibrated with 3 parties
    stages = {"start-up": STARTUP_S, "loading": load, "linkage": linkage, "secure steps": secure}
    return {"total": sum(stages.values()), "stages": {k: v for k, v in stages.items() if v}, "parties": m}


def catalog_rows(plan: dict, catalog) -> dict[str, int]:
    """Each dataset's max_rows: the bound when the row counts are not known before the run."""
    return {d: catalog.datasets[d].max_rows for d in plan["datasets"] if d in catalog.datasets}


def human(seconds: float) -> str:
    """3.2 s, 4.5 min, 5.7 h."""
    if seconds < 120:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def stages_text(est: dict) -> str:
    return ", ".join(f"{k} {human(v)}" for k, v in est["stages"].items())


def time_line(est: dict, bound: bool = True) -> str:
    """One line for `iq explain`."""
    parts = stages_text(est)
    return (f"estimated time: {'at most ' if bound else ''}~{human(est['total'])} on a quiet 2-core machine "
            f"({parts}; {'rows bounded by each dataset' + chr(39) + 's max_rows, ' if bound else ''}"
            "calibrated on benchmarks/RESULTS.md and LINKAGE.md)")


def default_time_limit(est: dict) -> float:
    """`iq run`'s limit when none is given: ten times the estimate, at least 15 minutes."""
    return max(900.0, 10 * est["total"])
