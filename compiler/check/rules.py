"""Release rules as units: one stable id per condition a value must meet before it leaves MPC.

A plan's test nodes (`ge_const`, `outside_range`, `dominance`, `nonzero`) carry `rule` (an id
below) and their constants; everything a person reads about a rule -- the leakage report, `iq
explain`, the result notes -- is written from this table, so rewording a sentence here never
changes a plan's hash. Each rule has its section in spec/disclosure.md (the argument why it holds
against the observer) and its own test in tests/test_release_rules.py.

`who` in a node's attrs names the organisations whose rows an observer removes (an observer
coalition, compiler/check/observer.py); `what` names the counted quantity of a pair rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Rule:
    id: str
    section: str  # spec/disclosure.md section with the rule's argument
    title: str
    condition: Callable[[dict], str]  # the test in words, with the node's constants
    cell: bool  # True: part of the cell's release flag; False: withholds single values only


def _k(a: dict) -> str:
    return str(a.get("const", a.get("high", 0) + 1))


def _who(a: dict) -> str:
    return ", ".join(a.get("who", [])) or "nobody"


def _guard(a: dict, text: str) -> str:
    """A guard test: the rule's sentence, or for a helper test the quantity it looks at."""
    if a.get("what"):
        return f"{a['what']}: x >= {a.get('const')}"
    return text.format(k=a.get("const"))


def _range(a: dict) -> str:
    low, high = a["low"], a["high"]
    return f"0 or >= {high + 1}" if low <= 1 else f"below {low} or >= {high + 1}"


RULES: dict[str, Rule] = {r.id: r for r in [
    Rule("cell.rows", "2.1", "cell rule: rows", lambda a: f"the cell has >= {_k(a)} rows", True),
    Rule("cell.persons", "2.1", "cell rule: distinct persons",
         lambda a: {"linked": f"the cell has >= {_k(a)} distinct persons across all organisations (record linkage)",
                    "join_keys": f"the joined rows hold >= {_k(a)} distinct persons (join keys)"}.get(
             a.get("count"), f"some dataset alone has >= {_k(a)} distinct persons in the cell"), True),
    Rule("source.once", "2.2", "each source row once",
         lambda a: f"the joined rows hold >= {_k(a)} distinct rows of {a.get('dataset', 'the unique side')}", True),
    Rule("observer.rows", "2.3", "observer's complement: rows",
         lambda a: f"the rows not held by {_who(a)} number >= {_k(a)} (0 counts as too few)", True),
    Rule("observer.persons", "2.3", "observer's complement: distinct persons",
         lambda a: f"some dataset not held by {_who(a)} alone has >= {_k(a)} distinct persons in the cell", True),
    Rule("values.rows", "2.4", "own-count rule: contributing rows",
         lambda a: f"rows with a value of {a.get('what', 'the column')}"
                   + (f" not held by {_who(a)}" if a.get("who") else "") + f" are {_range(a)}"
                   if "low" in a else f"rows with a value of {a.get('what', 'the column')} number >= {_k(a)}", False),
    Rule("values.left_out", "2.4", "own-count rule: rows left out",
         lambda a: f"rows without a value of {a.get('what', 'the column')}"
                   + (f" not held by {_who(a)}" if a.get("who") else "") + f" are {_range(a)}", False),
    Rule("values.persons", "2.4", "persons behind a value",
         lambda a: f"the {a.get('what', 'rows')}" + (f" not held by {_who(a)}" if a.get("who") else "")
                   + (f" hold >= {_k(a)} distinct persons" if a.get("strict") else
                      f" hold 0 or >= {_k(a)} distinct persons") + " (some dataset alone has them, or none has any)",
         False),
    Rule("counts.pair", "2.5", "two counts of one cell",
         lambda a: f"{' and '.join(a.get('what', ['two counts']))}"
                   + (f" in the rows not held by {_who(a)}" if a.get("who") else "")
                   + f" differ by {_range(a)}", False),
    Rule("filter.rows", "2.13", "a subgroup and the rest of its cell: rows",
         lambda a: f"the {a.get('what', 'subgroup')}" + (f" not held by {_who(a)}" if a.get("who") else "")
                   + f" number >= {_k(a)} (0 counts as too few)", False),
    Rule("filter.persons", "2.13", "a subgroup and the rest of its cell: distinct persons",
         lambda a: f"some dataset" + (f" not held by {_who(a)}" if a.get("who") else "")
                   + f" alone has >= {_k(a)} distinct persons in the {a.get('what', 'subgroup')}", False),
    Rule("filter.parts", "2.15", "several counted parts of one cell: every group their counts determine",
         lambda a: f"the {a.get('what', 'group')}" + (f" not held by {_who(a)}" if a.get("who") else "")
                   + f" number >= {_k(a)} (0 counts as too few)",
         False),
    Rule("linkage.shared", "2.6", "membership: persons shared with other organisations",
         lambda a: f"of the persons held by {_who(a)}, those also in other organisations' rows number >= {_k(a)}",
         False),
    Rule("linkage.unshared", "2.6", "membership: persons not shared",
         lambda a: f"of the {a.get('what', 'rows')} held by {_who(a)}, those without a match in the other "
                   f"organisations' rows number >= {_k(a)}", True),
    Rule("distinct.keys", "2.1", "distinct keys",
         lambda a: f"the counted distinct keys number >= {_k(a)}", False),
    Rule("sum.dominance", "2.7", "dominance (n, k) per person",
         lambda a: f"the {a['n']} largest contributors (persons) hold at most {a['k']:g}% of the sum of absolute "
                   "values" + (f" of the rows not held by {_who(a)}" if a.get("who") else ""), False),
    Rule("variance.rows", "2.8", "variance needs two rows",
         lambda a: f"rows with a value number >= {_k(a)}", False),
    Rule("percentile.rank", "2.8", "a percentile is not the smallest or largest value",
         lambda a: f"the values number >= {_k(a)}, so the percentile's rank is neither the first nor the last",
         False),
    Rule("ratio.denominator", "2.8", "division by zero",
         lambda a: "the denominator is not zero", False),
    Rule("dp.threshold", "2.14", "noisy threshold (differential privacy)",
         lambda a: f"the cell's NOISY row count is >= {_k(a)} (post-processing of a DP value; spec/privacy.md)",
         True),
    Rule("having.released", "2.10", "HAVING on released values",
         lambda a: "HAVING reads every value as the receivers get it (0 unless released, counts rounded)", False),
    Rule("linkage.sizes", "2.9", "sizes of linked vectors",
         lambda a: f"every linked vector is padded to a power of two >= {a.get('min_size', '2k')} (2k)", False),
    Rule("guard.inside", "3.2", "earlier cell minus new cells inside it",
         lambda a: _guard(a, "an earlier cell minus the released new cells inside it holds >= {k} rows, or "
                             "they cover it and are all released"), True),
    Rule("guard.contains", "3.2", "new cell minus earlier cells inside it",
         lambda a: _guard(a, "a new cell minus the possibly released earlier cells inside it holds >= {k} rows, "
                             "or it is exactly those cells, all released"), True),
    Rule("guard.margin", "3.2", "margins across queries",
         lambda a: _guard(a, "a group of cells that can share rows: one release's sum minus the other's holds "
                             ">= {k} rows, or the definitions force it to 0 with nothing hidden"), True),
    Rule("guard.dominance", "3.2", "dominance of a difference across queries",
         lambda a: _guard(a, "") if "const" in a else
         f"the {a['n']} largest contributors (persons) hold at most {a['k']:g}% of the sum of absolute values of "
         f"{a.get('what', 'a difference of two released sums')}"
         + (f", on the rows not held by {_who(a)}" if a.get("who") else ""), False),
    Rule("guard.closure", "3.2", "complementary suppression across queries",
         lambda a: f"the {a.get('what', 'cell')} is released after the differencing guard's tests, and no "
                   f"{a.get('what', 'cell')} of a cell that earlier cells connect with this one was withheld by them",
         True),
    Rule("guard.rows", "3.3", "row difference (fallback)",
         lambda a: f"the rows that differ from an earlier release number >= {_k(a)} (0 counts as too few)", True),
]}


def rule_of(node: dict) -> Rule | None:
    return RULES.get(node["attrs"].get("rule", ""))


def condition(node: dict) -> str:
    """`[rule id] the test in words` for a test node of a plan."""
    rule = rule_of(node)
    if rule is None:
        return "the denominator is not zero" if node["op"] == "nonzero" else node["op"]
    return f"[{rule.id}] {rule.condition(node['attrs'])}"
