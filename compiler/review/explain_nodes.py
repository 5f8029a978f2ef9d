"""A plan's nodes and policy in words, shared by every renderer of `iq explain` (text, dot, html)
and by `iq diff`: the stage table and its colours, what each node does, its facts and cost line,
the disclosure rules the plan enforces, the leakage report. Record-linkage nodes: explain_link.py.
"""
from __future__ import annotations

from fractions import Fraction

from insightql.compiler.review.cost import cost_line
from insightql.compiler.review.explain_expr import expr_text, slot_text
from insightql.compiler.review.explain_link import describe_link, hidden_inputs, link_cost
from insightql.compiler.plan.ops import DESCRIBE, register
from insightql.compiler.check.rules import RULES, condition

STAGES = [("local", "local steps: plaintext, each data owner on its own rows"),
          ("input", "secret sharing: each owner shares a fixed-size matrix"),
          ("secure", "secure computation: on secret shares, all parties together"),
          ("reveal", "reveal: the only values that leave MPC"),
          ("public", "public: post-processing of revealed values")]
COLOURS = {"local": "#d8efd0", "input": "#fbeab0", "secure": "#d4e3f7", "reveal": "#f8d0c8", "public": "#e4e4e4"}
STROKES = {"local": "#4d8a3c", "input": "#b08a12", "secure": "#3467a8", "reveal": "#b0402a", "public": "#777777"}


def stage(placement: str) -> str:
    return placement.split(":")[0]


def _slots(plan: dict) -> dict:
    for n in plan["nodes"]:
        if n["op"] == "partials":
            return {s["name"]: s for s in n["attrs"]["slots"]}
    return {}


def describe(node: dict, plan: dict) -> str:
    """What one node does, in a few words (each op's part is registered below: ops.DESCRIBE)."""
    part = DESCRIBE.get(node["op"])
    if part is None:
        raise AssertionError(f"`iq explain` has no words for op {node['op']!r} (compiler/review/explain_nodes.py)")
    return part(node, plan)


register(DESCRIBE, "link_rows", "link_share", "link_join", "link_distinct", "link_slot")(describe_link)


@register(DESCRIBE, "load")
def _load(node: dict, plan: dict) -> str:
    return f"reads {node['attrs']['dataset']}: columns {', '.join(node['attrs']['columns'])}"


@register(DESCRIBE, "partials")
def _partials(node: dict, plan: dict) -> str:
    a = node["attrs"]
    return (f"{a['dataset']} WHERE {expr_text(a['where'])}; per cell of "
            f"{' x '.join(str(k['size']) for k in a['keys']) or '1'}: " + "; ".join(slot_text(s) for s in a["slots"]))


@register(DESCRIBE, "share")
def _share(node: dict, plan: dict) -> str:
    return f"{node['attrs']['party']} secret-shares its partials (slots x cells)"


@register(DESCRIBE, "combine")
def _combine(node: dict, plan: dict) -> str:
    a = node["attrs"]
    s = _slots(plan).get(a["slot"])
    return f"{a['how']} over parties of {slot_text(s) if s else a['slot']}"


@register(DESCRIBE, "ge_const")
def _ge_const(node: dict, plan: dict) -> str:
    return f"x >= {node['attrs']['const']}  ({condition(node)})"


@register(DESCRIBE, "outside_range")
def _outside_range(node: dict, plan: dict) -> str:
    return f"x < {node['attrs']['low']} or x > {node['attrs']['high']}  ({condition(node)})"


@register(DESCRIBE, "compare")
def _compare(node: dict, plan: dict) -> str:
    return f"x {node['attrs']['relation']} 0"


@register(DESCRIBE, "dominance")
def _dominance(node: dict, plan: dict) -> str:
    return f"top {node['attrs']['n']} contributions <= {node['attrs']['k']}% of the total  ({condition(node)})"


@register(DESCRIBE, "dp_noise")
def _dp_noise(node: dict, plan: dict) -> str:
    from insightql.compiler.plaintext.dp_interval import noise_interval

    a, m = node["attrs"], len(plan.get("parties", [])) or 3
    return (f"{a['what']} + discrete Laplace noise, epsilon {a['epsilon']} (= {float(Fraction(a['epsilon'])):.4g}), "
            f"delta {a['delta']}, sensitivity {a['sensitivity']}, scale {a['scale']} per party x {m} parties; "
            f"95% of the noise within ± {noise_interval(a['scale'], m)}")


@register(DESCRIBE, "div", "variance")
def _quotient(node: dict, plan: dict) -> str:
    what = "quotient" if node["op"] == "div" else "sample variance"
    return f"{what}, divisor made safe by flag {node['attrs'].get('guard')}"


@register(DESCRIBE, "median")
def _median(node: dict, plan: dict) -> str:
    return f"lower median from the histogram, values from {node['attrs']['lo_value']}"


@register(DESCRIBE, "percentile")
def _percentile(node: dict, plan: dict) -> str:
    a = node["attrs"]
    return f"{a['percent']}th percentile from the histogram (the smallest value with {a['percent']}% of the " \
           f"values at or below it), values from {a['lo_value']}"


@register(DESCRIBE, "round_down")
def _round_down(node: dict, plan: dict) -> str:
    return f"round down to a multiple of {node['attrs']['to']}"


@register(DESCRIBE, "reveal")
def _reveal(node: dict, plan: dict) -> str:
    return f"opens {len(node['inputs'])} vector(s) to {', '.join(node['attrs']['to'])}"


@register(DESCRIBE, "table")
def _table(node: dict, plan: dict) -> str:
    a = node["attrs"]
    outs = ", ".join(o["name"] for o in a["outputs"])
    tail = f"; HAVING flag {a['keep']}" if a.get("keep") else ""
    names = [o["name"] for o in a["outputs"]]
    order = ", ".join(f"{names[i] if isinstance(i, int) and i < len(names) else i}{' DESC' if desc else ''}"
                      for i, desc in a.get("order_by") or [])
    tail += f"; ORDER BY {order}" if order else ""
    tail += f"; LIMIT {a['limit']}" if a.get("limit") is not None else ""
    return f"result columns {outs}; cells without flag {a['released']} marked suppressed{tail}"


@register(DESCRIBE, "mask")
def _mask(node: dict, plan: dict) -> str:
    return "value x release flag (0 where suppressed)"


@register(DESCRIBE, "linear")
def _linear(node: dict, plan: dict) -> str:
    return f"public linear map: {len(node['attrs']['pairs'])} term(s) into {node['attrs']['size']} value(s)"


@register(DESCRIBE, "const", "mul_const")
def _constant(node: dict, plan: dict) -> str:
    a = node["attrs"]
    return f"{'constant' if node['op'] == 'const' else 'x *'} {a.get('value', a.get('const'))}"


_WORDS = {"and": "all flags", "or": "either flag", "not": "1 - flag", "nonzero": "x <> 0", "add": "a + b",
          "sub": "a - b", "neg": "-x", "mul": "a * b"}
register(DESCRIBE, *_WORDS)(lambda node, plan: _WORDS[node["op"]])


def node_cost(node: dict, cost: dict) -> str:
    """The cost line of a node; record linkage grows with row counts the plan does not know."""
    if node["op"].startswith("link_"):
        return link_cost(node) or cost_line(cost["nodes"][node["id"]])
    return cost_line(cost["nodes"][node["id"]])


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def node_facts(node: dict) -> str:
    lo, hi = node["bounds"]
    facts = f"shape {node['shape']}"
    if node["placement"] == "secure" or stage(node["placement"]) == "input":
        facts += f", values in [{_fmt(lo)}, {_fmt(hi)}]"
    if node.get("frac"):
        facts += f", {node['frac']} fractional bits"
    return facts


# -- policy ---------------------------------------------------------------------------------
def policy_rules(plan: dict) -> list[tuple[str, str]]:
    """(rule, how the plan enforces it): the disclosure checks this plan passed."""
    pol, nodes = plan["policy"], plan["nodes"]

    def where(*rules: str, ops=()) -> str:
        ids = [n["id"] for n in nodes if n["attrs"].get("rule") in rules or n["op"] in ops]
        return f" (nodes {', '.join(ids)})" if ids else ""

    def cited(*rules: str) -> str:
        used = [r for r in rules if any(n["attrs"].get("rule") == r for n in nodes)]
        return " [" + ", ".join(used) + "]" if used else ""

    k = pol["min_group_size"]
    if pol.get("privacy"):  # spec/privacy.md: noise inside MPC replaces the threshold rules
        return dp_rules(plan, where)
    persons = " and k distinct persons (cell.persons: " + ", ".join(sorted(
        {RULES["cell.persons"].condition(n["attrs"]) for n in nodes if n["attrs"].get("rule") == "cell.persons"}
    )) + ")" if pol["distinct_persons"] else ""
    rules = [("minimum group size k", f"a cell is released only with at least k={k} rows" + persons
              + cited("cell.rows", "cell.persons", "source.once") + where("cell.rows", "cell.persons", "source.once"))]
    obs = sorted({", ".join(n["attrs"]["who"]) for n in nodes if n["attrs"].get("rule") == "observer.rows"})
    rules.append(("observer's complement", "the rows not held by " + "; not held by ".join(obs) + " are at least k "
                  "(and hold k persons)" + cited("observer.rows", "observer.persons") + where("observer.rows", "observer.persons")
                  if obs else "not needed: no observer holds only part of the data read"))
    own = where("values.rows", "values.left_out")
    rules.append(("own-count rule", "an aggregate over a nullable column needs k contributing rows, and the rows it "
                  "leaves out are 0 or at least k, in the cell and in every observer's complement"
                  + cited("values.rows", "values.left_out") + own if own
                  else "not needed: no aggregate over a nullable column"))
    pairs = where("counts.pair")
    if pairs:
        rules.append(("two counts of one cell", "counts the query reveals differ by 0 or at least k [counts.pair]"
                      + pairs))
    dom = pol.get("dominance")
    rules.append(("dominance", f"({dom['n']}, {dom['k']}%) rule per person: the top {dom['n']} contributors hold at "
                  f"most {dom['k']}% of a released sum [sum.dominance]{where(ops=('dominance',))}" if dom
                  else "no dataset asks for one"))
    r = pol["round_counts_to"]
    rules.append(("rounding", f"released counts rounded down to a multiple of {r}{where(ops=('round_down',))}"
                  if r > 1 else "counts are exact (no dataset asks for rounding)"))
    rules.append(("group limit", f"{plan['cells']} cell(s), within the limit of {pol['max_groups']}"))
    rules.append(("receivers", f"only {', '.join(plan['receivers'])} receive results; every dataset allows them"
                  + where(ops=("reveal",))))
    rules.append(("purpose", f"declared purpose {plan['query'].get('purpose')!r} is allowed by every dataset read"))
    if any(n["op"].startswith("link_") for n in nodes):
        rules.append(("hidden inputs", hidden_inputs(plan)))
    else:
        rules.append(("hidden inputs", "row counts and which cells an owner has rows in are not revealed: shares "
                      "have a fixed shape over the public group domain"))
    return rules


def dp_rules(plan: dict, where) -> list[tuple[str, str]]:
    """The rules of a differentially private plan (spec/privacy.md): epsilon, unit, noise, threshold."""
    from insightql.compiler.plaintext.dp_interval import output_noise

    dp, pol = plan["policy"]["privacy"], plan["policy"]
    table = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    out = [("differential privacy", f"epsilon {dp['epsilon']}, delta {dp['delta']} for the whole query, split evenly "
            f"over its noisy measurements{where(ops=('dp_noise',))}; unit of privacy: {dp['unit']} "
            f"(rows per person: {', '.join(f'{d} {r}' for d, r in dp['rows_per_person'].items())})"),
           ("noise", "discrete Laplace, drawn by every computing party with an exact sampler and secret-shared; no "
            "coalition of t parties knows the total; 95% of the noise: " + "; ".join(
                f"{o['name']} {output_noise(o, len(plan['parties']))}" for o in table["outputs"] if o.get("dp")))]
    out.append(("noisy threshold", f"a cell is released only where its NOISY row count is at least k="
                f"{pol['min_group_size']} [dp.threshold]{where('dp.threshold')}" if dp["noisy_threshold"]
                else "none: every cell is released with noise"))
    out.append(("threshold rules", "observer, own-count, pair, dominance and persons rules and the differencing guard "
                "are not applied: they test exact counts, which DP forbids; the budget in each owner's ledger "
                "bounds what all releases together reveal"))
    out.append(("receivers", f"only {', '.join(plan['receivers'])} receive results; every dataset allows them"
                + where(ops=("reveal",))))
    return out


def leakage_lines(plan: dict) -> list[str]:
    out = []
    for item in plan["leakage"]:
        col = f" {item['column']}" if "column" in item else ""
        to = ", ".join(item["to"]) or "nobody"
        out.append(f"{item['item']}{col} -> {to}: {item['detail']}")
    return out
