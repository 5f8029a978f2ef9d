"""`iq explain` (text, dot, html) and `iq diff`: what an auditor reads.

The HTML page is also rendered by headless Chromium (skipped when /usr/bin/chromium is
absent): every node of the plan must be drawn in the SVG of the rendered DOM.
"""
from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.review.explain import diff_plans, explain_dot, explain_html, explain_text
from insightql.compiler.review.explain_html import layout
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_io import dump_plan

from conftest import CATALOG

AVG = """@purpose research
SELECT exp_Region, COUNT(*) AS n, AVG(hours_worked_week) AS hours
FROM police_victims UNION ALL ngo_clients
WHERE prs_Age >= 18
GROUP BY exp_Region
HAVING COUNT(*) >= 20;
"""
ROUNDED = """@purpose policy
SELECT report_channel, COUNT(*) AS reports
FROM helpline_reports
GROUP BY report_channel;
"""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _plan(text: str, catalog=None) -> dict:
    res = compile_source(text, "explained.iq", catalog or load_catalog(CATALOG))
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


@pytest.fixture(scope="module")
def plan():
    return _plan(AVG)


def test_text_lists_every_node_with_placement_shape_bounds_and_cost(plan):
    text = explain_text(plan)
    for n in plan["nodes"]:
        line = next(l for l in text.splitlines() if l.strip().startswith(n["id"] + " "))
        assert n["placement"] in line and f" {n['op']}:" in line
        facts = text.splitlines()[text.splitlines().index(line) + 1]
        assert f"shape {n['shape']}" in facts and "cost:" in facts
        if n["placement"] == "secure":
            assert "values in [" in facts
    stages = ["local steps", "secret sharing", "secure computation", "reveal:", "public:"]
    positions = [text.index(s) for s in stages]
    assert positions == sorted(positions)


def test_text_shows_policy_receivers_cost_leakage_and_hash(plan):
    text = explain_text(plan)
    assert text.count(plan["hash"]) >= 2
    assert "receivers: police, ngo, helpline" in text
    assert "k=10 rows and k distinct persons" in text
    assert "own-count rule" in text and "dominance: no dataset asks for one" in text
    assert "rounding: counts are exact" in text and "purpose 'research'" in text
    assert "secure multiplications:" in text and "comparisons:" in text and "rounds" in text
    for p in plan["parties"]:
        assert re.search(rf"^    {p}: [0-9.]+ (kB|MB|B) ", text, re.M), p
    for item in plan["leakage"]:
        assert item["detail"] in text
    ge = next(n for n in plan["nodes"] if n["op"] == "ge_const" and n["attrs"]["rule"] == "cell.rows")
    assert "x >= 10  ([cell.rows] the cell has >= 10 rows)" in text
    assert ge["id"] in text.split("minimum group size")[1].splitlines()[0]


def test_text_of_a_rounded_count_names_the_rounding():
    plan = _plan(ROUNDED)
    text = explain_text(plan)
    assert "rounded down to a multiple of 5" in text
    assert "round_down: round down to a multiple of 5" in text


def test_text_of_a_plan_without_linkage_says_row_counts_are_hidden(plan):
    hidden = next(line for line in explain_text(plan).splitlines() if "hidden inputs:" in line)
    assert "row counts and which cells an owner has rows in are not revealed" in hidden


# -- record linkage (compiler/plan/linkage.py): link ops in words, row counts revealed ---------------------
def _link_plan(name: str, design: str, tmp_path) -> dict:
    from test_linkage import LCAT_PATH, QUERIES
    from test_linkage_fast import catalog_with_fast

    cat = load_catalog(LCAT_PATH if design == "oblivious" else catalog_with_fast(tmp_path))
    return _plan(QUERIES[name]["iq"], cat)


def _line(text: str, node_id: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(node_id + " "))


@pytest.mark.parametrize("design", ["oblivious", "fast"])
def test_text_of_a_join_describes_link_ops_and_revealed_row_counts(design, tmp_path):
    plan = _link_plan("inner_both_sides", design, tmp_path)
    text = explain_text(plan)
    by_op = {n["op"]: n for n in plan["nodes"]}
    algo = {"oblivious": "(oblivious: shuffle + radix sort; opens only uniformly random permutations)",
            "fast": "(fast: shuffle + keyed PRF; opens match pattern)"}[design]
    join = _line(text, by_op["link_join"]["id"])
    assert f"link_join: {algo} inner join, U=ngo_clients unique key person_id, M=police_victims key person_id" in join
    assert "per cell of 3 x 4: joined rows; distinct persons" in join and "sum(prs_Age)" in join
    rows = {n["attrs"]["dataset"]: _line(text, n["id"]) for n in plan["nodes"] if n["op"] == "link_rows"}
    assert "U side (unique key): key person_id (declared unique, checked here before sharing)" in rows["ngo_clients"]
    assert "WHERE (prs_Age >= 5)" in rows["police_victims"] and "vector length = its row count" in rows["police_victims"]
    assert "link_share: police secret-shares its packed rows, one per input row" in text
    assert "link_slot: slot s0 = joined rows per cell" in text
    assert '"layout"' not in text and '"weights"' not in text  # no raw attributes
    for n in plan["nodes"]:
        if n["op"] in ("link_share", "link_join"):
            assert "not in the per-node counts" in text.splitlines()[text.splitlines().index(_line(text, n["id"])) + 1]
    assert "not included above: record linkage" in text and "the time estimate below includes it" in text
    assert "estimated time: needs each dataset's row bound" in text
    with_rows = explain_text(plan, {d: 1000 for d in plan["datasets"]})
    assert "estimated time: at most ~" in with_rows and "linkage " in with_rows
    rules = text.split("disclosure policy enforced by this plan:")[1].split("circuit, stage by stage")[0]
    hidden = next(line for line in rules.splitlines() if "hidden inputs:" in line)
    assert "not revealed" not in hidden and "NOT hidden" in hidden
    assert "ngo_clients: its row count" in hidden and "input_sizes" in hidden
    assert f"leakage item {'match_pattern' if design == 'fast' else 'sort_comparisons'}" in hidden
    persons = next(n["id"] for n in plan["nodes"] if n["attrs"].get("count") == "join_keys")
    k_rule = next(line for line in rules.splitlines() if "minimum group size" in line)
    assert "distinct persons (join keys)" in k_rule and persons in k_rule
    assert "per organisation" not in k_rule
    for item in plan["leakage"]:
        assert item["detail"] in text


def test_text_of_a_distinct_count_names_the_linked_datasets(tmp_path):
    plan = _link_plan("distinct_three", "oblivious", tmp_path)
    text = explain_text(plan)
    link = next(n for n in plan["nodes"] if n["op"] == "link_distinct")
    assert ("link_distinct: (oblivious: shuffle + radix sort; opens only uniformly random permutations) "
            "COUNT(DISTINCT person_id) across police_victims, "
            "ngo_clients, shelter_stays, per cell (4 cells)") in _line(text, link["id"])
    assert "shelter_stays: its row count rounded up to a power of two" in text
    assert "repeated (cell, key) pairs become padding" in text
    assert "distinct persons across all organisations (record linkage)" in text


def test_html_and_dot_of_a_join_describe_link_ops(tmp_path):
    plan = _link_plan("left_join", "fast", tmp_path)
    page, dot = explain_html(plan), explain_dot(plan)
    join = next(n for n in plan["nodes"] if n["op"] == "link_join")
    row = page[page.index(f'id="row-{join["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "left join, U=shelter_stays unique key person_id" in row and "not in the per-node counts" in row
    assert "NOT hidden for the linked datasets" in page and "match_pattern" in page
    assert "left join, U=shelter_stays" in dot.split(f"    {join['id']} [")[1].splitlines()[0]


def test_dot_has_one_cluster_per_party_and_every_edge(plan):
    dot = explain_dot(plan)
    assert dot.startswith("digraph plan {") and dot.rstrip().endswith("}")
    owners = {v["owner"] for v in plan["datasets"].values()}
    for p in owners:
        assert f'label="party {p}: plaintext, own rows"' in dot
    assert 'label="secure computation (all parties, on shares)"' in dot
    assert dot.count("subgraph cluster_") == len(owners) + 2
    edges = re.findall(r"^  (n\d+) -> (n\d+);$", dot, re.M)
    assert sorted(edges) == sorted((i, n["id"]) for n in plan["nodes"] for i in n["inputs"])
    for n in plan["nodes"]:
        assert re.search(rf"^    {n['id']} \[label=\"{n['id']} {n['op']}\\n{re.escape(n['placement'])}", dot, re.M)


def test_html_is_self_contained_and_draws_every_node(plan):
    page = explain_html(plan)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(http", page, re.I)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    for url in re.findall(r"https?://[^\s\"']+", page):
        assert url in ("http://www.w3.org/2000/svg",), url  # the SVG namespace name, never fetched
    svg = page[page.index("<svg"):page.index("</svg>")]
    for n in plan["nodes"]:
        assert f'id="node-{n["id"]}"' in svg and f'id="row-{n["id"]}"' in page
    assert svg.count('class="edge"') == sum(len(n["inputs"]) for n in plan["nodes"])
    assert plan["hash"] in page
    for rule in ("minimum group size k", "own-count rule", "dominance", "rounding", "receivers", "purpose"):
        assert f"<b>{rule}</b>" in page
    for item in plan["leakage"]:
        assert item["item"] in page


def test_layout_puts_every_node_below_its_inputs(plan):
    pos = layout(plan)
    assert set(pos) == {n["id"] for n in plan["nodes"]}
    for n in plan["nodes"]:
        for i in n["inputs"]:
            assert pos[i][1] < pos[n["id"]][1]
    assert len(set(pos.values())) == len(pos)  # no two boxes on the same spot


def test_diff_of_identical_plans(plan):
    assert diff_plans(plan, copy.deepcopy(plan)).startswith("plans are identical")


def test_diff_explains_source_policy_nodes_leakage_and_cost(plan):
    catalog_text = CATALOG.read_text(encoding="utf-8")
    other_text = AVG.replace("AVG(hours_worked_week) AS hours", "AVG(hours_worked_week) AS hours, "
                             "MEDIAN(prs_Age) AS med_age").replace("@purpose research", "@purpose policy")
    other = _plan(other_text)
    d = diff_plans(plan, other)
    assert "query source changed:" in d and "+SELECT" in d and "MEDIAN(prs_Age)" in d
    assert "query purpose: 'research' -> 'policy'" in d
    assert "+ added median at secure" in d and "+ added combine at secure" in d
    assert "outputs + med_age (value)" in d
    assert "+ output med_age" in d
    assert re.search(r"estimated cost: mults \d+ -> \d+", d)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "catalog.toml"
        p.write_text(catalog_text.replace("min_group_size = 10", "min_group_size = 15"), encoding="utf-8")
        stricter = _plan(AVG, load_catalog(p))
    d = diff_plans(plan, stricter)
    assert "catalog_digest:" in d
    assert "disclosure policy changed:" in d and "min_group_size: 10 -> 15" in d
    assert "~ ge_const at secure" in d and "const: 10 -> 15" in d
    assert "query source changed" not in d


def test_iq_explain_and_diff_commands(plan, tmp_path, capsys):
    from insightql.runtime.cli import main

    a, b = tmp_path / "a.plan.json", tmp_path / "b.plan.json"
    a.write_text(dump_plan(plan), encoding="utf-8")
    b.write_text(dump_plan(_plan(AVG.replace("20", "30"))), encoding="utf-8")
    assert main(["explain", str(a)]) == 0
    assert plan["hash"] in capsys.readouterr().out
    assert main(["explain", str(a), "--format", "html", "-o", str(tmp_path / "p.html")]) == 0
    assert (tmp_path / "p.html").read_text(encoding="utf-8") == explain_html(plan)
    assert main(["diff", str(a), str(b)]) == 1
    assert "-HAVING COUNT(*) >= 20;" in capsys.readouterr().out
    assert main(["diff", str(a), str(a)]) == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install -y chromium)")
def test_chromium_renders_every_node_in_the_svg(plan, tmp_path):
    page = tmp_path / "plan.html"
    page.write_text(explain_html(plan), encoding="utf-8")
    r = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    svg = dom[dom.index("<svg"):dom.index("</svg>")]
    drawn = set(re.findall(r'<g class="node" id="node-(n\d+)"', svg))
    assert drawn == {n["id"] for n in plan["nodes"]}
    assert plan["hash"] in dom
    shot = tmp_path / "plan.png"
    r = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                        f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 10_000  # a page was painted, not a blank
