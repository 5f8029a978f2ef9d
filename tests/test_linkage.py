"""Record linkage (issue 6, spec/linkage.md): JOIN on a unique key, LEFT JOIN, overlap counts and
COUNT(DISTINCT key) over a UNION ALL of several owners.

1. Oracle vs an independent evaluation (no MPC, many data sets): the query's SQL run by sqlite3 on
   the CSVs, the disclosure rules applied here from their documented meaning (a cell needs k joined
   rows and k distinct persons; an aggregate over a nullable column -- or a right-side column of a
   LEFT JOIN -- needs k contributing rows and 0 or >= k rows left out).
   Data sets: random with duplicates, empty intersection, full intersection, NULL keys, keys at the
   edges of the 48-bit range, an empty dataset.
2. MPC vs oracle (real parties, tens of rows): counts and sums exact, averages within 2^-20.
3. The reveal audit of a join: what each party receives is exactly the reveal node's vectors, each
   announced in the leakage report, and the vector lengths exchanged are those it declares.
4. Diagnostics IQ405-IQ407 for what is not executable, and a data error for a repeated unique key.
"""
from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plaintext.linkage_local import LinkageDataError, link_rows, padded_size
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed

from conftest import _MPC_SLOTS, assert_same_result, compile_plan, load_tables, oracle_result, run_mpc
from rules_ref import Cell, Rules, holdings

LCAT_PATH = Path(__file__).resolve().parent / "linkage" / "catalog.toml"
LCAT = load_catalog(LCAT_PATH)
K = 3
TOP = 2 ** 48 - 1
GENDERS = ["Feminine", "Masculine", "Other"]
REGIONS = ["North", "East", "South", "West"]
FIXED_POINT_REL = 2.0 ** -20

# -- queries: .iq text, the same question in SQL, and how each output is protected -----------------
# outs: (name, sql aggregate, rule) with rule "cell" (released with its cell), or the SQL of the
# contributing-row count of a nullable argument (own-count rule).
QUERIES = {
    "inner_both_sides": dict(
        iq="""SELECT p.exp_Region, n.prs_Gender, COUNT(*) AS rows_, AVG(n.prs_Age) AS age,
       SUM(p.prs_Age) AS ages, COUNT(DISTINCT p.person_id) AS persons
FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id
WHERE p.prs_Age >= 5 AND n.exp_Region <> 'North'
GROUP BY p.exp_Region, n.prs_Gender;""",
        sql="""FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id
WHERE p.prs_Age >= 5 AND n.exp_Region <> 'North'""",
        groups=["p.exp_Region", "n.prs_Gender"], persons="p.person_id",
        u=("n", "ngo_clients", "n.exp_Region <> 'North'", ["n.prs_Gender"]),
        m=("p", "police_victims", "p.prs_Age >= 5", ["p.exp_Region"]), distinct=["persons"],
        outs=[("rows_", "COUNT(*)", "cell"), ("age", "AVG(n.prs_Age)", "cell"),
              ("ages", "SUM(p.prs_Age)", "cell"),
              ("persons", "COUNT(DISTINCT p.person_id)", "cell")]),
    "left_join": dict(
        iq="""SELECT n.exp_Region, s.prs_Gender, COUNT(*) AS rows_, COUNT(s.prs_Age) AS matched,
       AVG(s.prs_Age) AS age, SUM(n.debt_eur) AS debt
FROM ngo_clients n LEFT JOIN shelter_stays s ON n.person_id = s.person_id
WHERE n.prs_Age < 90
GROUP BY n.exp_Region, s.prs_Gender;""",
        sql="""FROM ngo_clients n LEFT JOIN shelter_stays s ON n.person_id = s.person_id WHERE n.prs_Age < 90""",
        groups=["n.exp_Region", "s.prs_Gender"], persons="n.person_id", left=True,
        outs=[("rows_", "COUNT(*)", "cell"), ("matched", "COUNT(s.prs_Age)", "COUNT(s.prs_Age)"),
              ("age", "AVG(s.prs_Age)", "COUNT(s.prs_Age)"),
              ("debt", "SUM(MIN(MAX(n.debt_eur, 0), 500))", "COUNT(n.debt_eur)")]),
    "overlap": dict(
        iq="""SELECT COUNT(*) AS joined_rows, COUNT(DISTINCT n.person_id) AS overlap
FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id;""",
        sql="FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id",
        groups=[], persons="n.person_id", u=("n", "ngo_clients", None, []), m=("p", "police_victims", None, []),
        distinct=["overlap"],
        outs=[("joined_rows", "COUNT(*)", "cell"), ("overlap", "COUNT(DISTINCT n.person_id)", "cell")]),
    "unique_left_side": dict(
        iq="""SELECT p.prs_Gender, COUNT(*) AS rows_, SUM(s.prs_Age) AS ages
FROM shelter_stays s JOIN police_victims p ON s.person_id = p.person_id
GROUP BY p.prs_Gender;""",
        sql="FROM shelter_stays s JOIN police_victims p ON s.person_id = p.person_id",
        groups=["p.prs_Gender"], persons="p.person_id",
        u=("s", "shelter_stays", None, []), m=("p", "police_victims", None, ["p.prs_Gender"]),
        outs=[("rows_", "COUNT(*)", "cell"), ("ages", "SUM(s.prs_Age)", "cell")]),
    "distinct_three": dict(
        iq="""SELECT exp_Region, COUNT(DISTINCT person_id) AS persons, COUNT(*) AS rows_
FROM police_victims UNION ALL ngo_clients UNION ALL shelter_stays
WHERE prs_Age >= 10
GROUP BY exp_Region;""",
        sql="FROM (SELECT * FROM police_victims UNION ALL SELECT * FROM ngo_clients UNION ALL "
            "SELECT * FROM shelter_stays) u WHERE prs_Age >= 10",
        groups=["exp_Region"], persons="person_id", union=["police_victims", "ngo_clients", "shelter_stays"],
        where="prs_Age >= 10", distinct=["persons"],
        outs=[("persons", "COUNT(DISTINCT person_id)", "cell"), ("rows_", "COUNT(*)", "cell")]),
    "distinct_two_total": dict(
        iq="""SELECT COUNT(DISTINCT person_id) AS persons FROM police_victims UNION ALL shelter_stays;""",
        sql="FROM (SELECT * FROM police_victims UNION ALL SELECT * FROM shelter_stays) u",
        groups=[], persons="person_id", union=["police_victims", "shelter_stays"], distinct=["persons"],
        outs=[("persons", "COUNT(DISTINCT person_id)", "cell")]),
}


# -- data -----------------------------------------------------------------------------------------
def make_data(folder: Path, scenario: str, seed: int) -> dict[str, str]:
    """CSVs of the three datasets; ngo and shelter keys are unique, police keys repeat."""
    rng = np.random.default_rng(seed)
    n_pol, n_ngo, n_sh = {"tiny": (8, 6, 0)}.get(scenario, (60, 45, 35))
    pool = list(range(1, 90))
    if scenario == "edges":
        pool = [0, 1, 2, TOP, TOP - 1, TOP - 2] + [int(x) for x in rng.integers(3, TOP - 3, 40)]
    police_keys = [int(rng.choice(pool)) for _ in range(n_pol)]
    if scenario == "empty":
        ngo_pool = [k + 1000 for k in pool]
    elif scenario == "full":
        ngo_pool = sorted(set(police_keys))
    else:
        ngo_pool = pool
    ngo_keys = [int(x) for x in rng.permutation(ngo_pool)[:n_ngo]]
    sh_keys = [int(x) for x in rng.permutation(pool)[:n_sh]]
    null_rate = 0.15 if scenario in ("edges", "nulls") else 0.0
    out = {}
    for name, keys in (("police_victims", police_keys), ("ngo_clients", ngo_keys), ("shelter_stays", sh_keys)):
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["person_id", "case_id", "prs_Gender", "exp_Region", "prs_Age", "hours_worked_week",
                        "debt_eur"])
            for i, k in enumerate(keys):
                w.writerow(["" if rng.random() < null_rate else k, i + 1,
                            GENDERS[int(rng.integers(0, 2 if rng.random() < 0.8 else 3))],
                            REGIONS[int(rng.integers(1, 4 if rng.random() < 0.9 else 4))],
                            int(rng.integers(0, 100)),
                            "" if rng.random() < 0.2 else int(rng.integers(0, 121)),
                            "" if rng.random() < 0.2 else f"{rng.uniform(0, 1000):.2f}"])
        out[name] = str(path)
    return out


def sqlite_of(data: dict[str, str]) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    for name, path in data.items():
        with open(path, newline="", encoding="utf-8") as fh:
            r = csv.reader(fh)
            header = next(r)
            con.execute(f"CREATE TABLE {name} ({', '.join(h + ' NUMERIC' for h in header)})")
            con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(header))})",
                            ([v if v != "" else None for v in row] for row in r))
    return con


def expected(name: str, plan: dict, data: dict[str, str]) -> list[list]:
    """The result rows from sqlite3 and the release rules of spec/disclosure.md (tests/rules_ref.py
    for a UNION ALL; the join rules written out here): 'cell' / 'value' for suppressed."""
    q = QUERIES[name]
    con = sqlite_of(data)
    extra = [rule for _, _, rule in q["outs"] if rule != "cell"]
    sel = q["groups"] + ["COUNT(*)", f"COUNT(DISTINCT {q['persons']})"] + [a for _, a, _ in q["outs"]] + extra
    sql = f"SELECT {', '.join(sel)} {q['sql']}" + (f" GROUP BY {', '.join(q['groups'])}" if q["groups"] else "")
    found = {tuple(r[:len(q["groups"])]): r[len(q["groups"]):] for r in con.execute(sql)}
    table = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    domains = [k["values"] for k in table["keys"]]
    combos = list(__import__("itertools").product(*domains)) if domains else [()]
    side_ok = join_parts_ok(q, con, combos, found) if "u" in q else {}
    per = union_parts(q, con) if "union" in q else {}
    receivers = {"police", "ngo", "shelter"}
    rows = []
    for combo in combos:
        r = found.get(tuple(combo))
        if r is None or (not q["groups"] and r[0] == 0):
            r = [0, 0] + [None] * len(q["outs"]) + [0] * len(extra)
        n, persons, vals, counts = r[0], r[1], r[2:2 + len(q["outs"])], r[2 + len(q["outs"]):]
        if "union" in q:
            ds = q["union"]
            parts = {d: per.get((d,) + tuple(combo), (0, 0)) for d in ds}
            owners = {d: LCAT.datasets[d].owner for d in ds}
            rules = Rules(K, 1, holdings(set(owners.values()), receivers, len(LCAT.party_names())))
            cell = Cell({d: parts[d][0] for d in ds}, owners, {d: parts[d][1] for d in ds}, linked_persons=persons)
            released = rules.cell(cell)
        else:
            rules = Rules(K)
            released = n >= K and persons >= K and side_ok.get(tuple(combo), True)
        out = list(combo)
        ci = 0
        nullable = [c for _, _, c in q["outs"] if c != "cell"]
        for (oname, _, rule), v in zip(q["outs"], vals):
            if not released:
                out.append("cell")
                continue
            if rule != "cell":
                c = counts[ci]
                ci += 1
                others = [counts[nullable.index(o)] for o in dict.fromkeys(nullable) if o != rule]
                if c < K or 0 < n - c < K or any(0 < abs(c - o) < K for o in others):
                    out.append("value")
                    continue
            if oname in q.get("distinct", []):
                ok = rules.distinct(cell, v, {d: parts[d][1] for d in q["union"]}) if "union" in q else \
                    v >= K and not 0 < n - v < K
                if not ok:
                    out.append("value")
                    continue
            out.append(v if v is not None else 0)
        rows.append(out)
    return rows


def union_parts(q: dict, con) -> dict[tuple, tuple[int, int]]:
    """{(dataset, *cell): (rows, distinct persons)} of each dataset of a UNION ALL on its own."""
    out = {}
    where = f" WHERE {q['where']}" if q.get("where") else ""
    group = f" GROUP BY {', '.join(q['groups'])}" if q["groups"] else ""
    for d in q["union"]:
        sel = q["groups"] + ["COUNT(*)", f"COUNT(DISTINCT {q['persons']})"]
        for r in con.execute(f"SELECT {', '.join(sel)} FROM {d}{where}{group}"):
            out[(d,) + tuple(r[:len(q["groups"])])] = tuple(r[len(q["groups"]):])
    return out


def join_parts_ok(q: dict, con, combos: list, found: dict) -> dict[tuple, bool]:
    """linkage.unshared for an inner JOIN (spec/disclosure.md 2.6): each side's own rows in each part
    of the cells it can tell apart (its GROUP BY keys), minus those matched (M: the joined rows; U:
    the distinct join keys summed over the part's cells), must be >= k."""
    ok = {tuple(c): True for c in combos}
    for side, matched_col in (("m", 0), ("u", 1)):
        alias, ds, where, keys = q[side]
        idx = [q["groups"].index(k) for k in keys]
        own = {}
        sel = [k.split(".")[1] for k in keys] + ["COUNT(*)"]
        w = f" WHERE {where.replace(alias + '.', '')}" if where else ""
        g = f" GROUP BY {', '.join(k.split('.')[1] for k in keys)}" if keys else ""
        for r in con.execute(f"SELECT {', '.join(sel)} FROM {ds}{w}{g}"):
            own[tuple(r[:-1])] = r[-1]
        matched: dict[tuple, int] = {}
        for c in combos:
            part = tuple(c[i] for i in idx)
            r = found.get(tuple(c))
            matched[part] = matched.get(part, 0) + (r[matched_col] if r else 0)
        for c in combos:
            part = tuple(c[i] for i in idx)
            if own.get(part, 0) - matched[part] < K:
                ok[tuple(c)] = False
    return ok


def normalise(table) -> list[list]:
    return [["cell" if isinstance(v, Suppressed) and v.reason.startswith("fewer") else
             "value" if isinstance(v, Suppressed) else v for v in r] for r in table.rows]


def same(got: list[list], want: list[list], rel: float = 1e-9) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            if isinstance(a, float) or isinstance(b, float):
                if isinstance(a, str) or isinstance(b, str) or not math.isclose(a, b, rel_tol=rel, abs_tol=1e-6):
                    return False
            elif a != b:
                return False
    return True


SCENARIOS = ["random", "empty", "full", "nulls", "edges", "tiny"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    out = {}
    for sc in SCENARIOS:
        for seed in (1, 2):
            folder = tmp_path_factory.mktemp(f"link-{sc}-{seed}")
            out[(sc, seed)] = make_data(folder, sc, seed)
    return out


def plan_of(name: str) -> dict:
    return compile_plan(QUERIES[name]["iq"], LCAT, f"{name}.iq")


# -- 1. oracle vs sqlite3 ---------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_oracle_matches_sqlite(name, scenario, datasets):
    plan = plan_of(name)
    for seed in (1, 2):
        data = datasets[(scenario, seed)]
        got = normalise(oracle_result(plan, LCAT, data))
        want = expected(name, plan, data)
        assert same(got, want), f"{name} on {scenario}/{seed}:\noracle {got}\nsqlite {want}"


def test_scenarios_cover_empty_full_and_released_cells(datasets):
    plan = plan_of("overlap")
    got = {sc: normalise(oracle_result(plan, LCAT, datasets[(sc, 1)]))[0] for sc in ("empty", "full", "random")}
    assert got["empty"] == ["cell", "cell"]  # intersection 0 < k: suppressed like any small count
    con = sqlite_of(datasets[("full", 1)])
    n_ngo = con.execute("SELECT COUNT(DISTINCT person_id) FROM ngo_clients").fetchone()[0]
    # every NGO client is known to the police: released, the overlap would tell the NGO (which knows
    # its clients) that each of them is in the police data: linkage.unshared, the zero rule
    assert got["full"] == ["cell", "cell"]
    assert isinstance(got["random"][1], int) and 0 < got["random"][1] < n_ngo


def test_padding_depends_on_row_count_only(datasets):
    """The shared vector's length is the next power of two >= max(row count, 2k), whatever the
    filter and the keys (linkage.sizes)."""
    for name in ("inner_both_sides", "distinct_three"):
        plan = plan_of(name)
        tables = load_tables(plan, LCAT, datasets[("random", 1)])
        nodes = {n["id"]: n for n in plan["nodes"]}
        for n in plan["nodes"]:
            if n["op"] == "link_rows":
                ds = n["attrs"]["dataset"]
                tbl, count = tables[ds]
                vec = link_rows(n["attrs"], tbl, count)
                assert (n["attrs"]["size_rule"], n["attrs"]["min_size"]) == ("pow2", 2 * K)
                assert len(vec) == padded_size(count, 2 * K) and len(vec) >= max(count, 2 * K)
                assert len(vec) & (len(vec) - 1) == 0
                assert nodes[n["inputs"][0]]["op"] == "load"


def test_repeated_unique_key_is_a_data_error(tmp_path, datasets):
    plan = plan_of("inner_both_sides")
    data = dict(datasets[("random", 1)])
    rows = list(csv.reader(open(data["ngo_clients"], encoding="utf-8")))
    rows[2][0] = rows[1][0] = "77"
    bad = tmp_path / "ngo.csv"
    with open(bad, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    data["ngo_clients"] = str(bad)
    with pytest.raises(LinkageDataError, match="declares `person_id` unique"):
        oracle_result(plan, LCAT, data)


# -- 4. what is not executable -------------------------------------------------------------------
NOT_EXECUTABLE = [
    ("IQ324", LCAT, "SELECT COUNT(*) FROM police_victims p JOIN police_victims q ON p.person_id = q.person_id;"),
    ("IQ405", LCAT, "SELECT COUNT(*) FROM ngo_clients n LEFT JOIN police_victims p ON n.person_id = p.person_id;"),
    ("IQ406", LCAT, "SELECT MEDIAN(p.prs_Age) FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id;"),
    ("IQ406", LCAT, "SELECT COUNT(*) FROM ngo_clients n LEFT JOIN shelter_stays s ON n.person_id = s.person_id "
                    "WHERE s.prs_Age > 3;"),
    ("IQ406", LCAT, "SELECT COUNT(*) FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id "
                    "WHERE p.prs_Age > n.prs_Age;"),
    ("IQ406", LCAT, "SELECT COUNT(*) FROM police_victims p JOIN ngo_clients n ON p.prs_Gender = n.prs_Gender;"),
    ("IQ406", LCAT, "SELECT COUNT(*) FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id "
                    "JOIN shelter_stays s ON s.person_id = n.person_id WHERE p.prs_Age > 1;"),
    ("IQ407", LCAT, "SELECT COUNT(*) FROM police_victims p JOIN ngo_clients n ON p.case_id = n.case_id;"),
]


@pytest.mark.parametrize("code,cat,text", NOT_EXECUTABLE)
def test_not_executable_has_a_diagnostic_with_a_hint(code, cat, text):
    res = compile_source(text, "q.iq", cat)
    assert res.plan is None
    codes = [d.code for d in res.diagnostics]
    assert code in codes, [d.render() for d in res.diagnostics]
    d = next(d for d in res.diagnostics if d.code == code)
    assert d.hints and d.span is not None


def test_leakage_report_lists_input_sizes_to_every_party():
    for name in ("inner_both_sides", "distinct_three"):
        plan = plan_of(name)
        item = next(i for i in plan["leakage"] if i["item"] == "input_sizes")
        assert item["to"] == plan["parties"]
        for ds in plan["datasets"]:
            assert ds in item["detail"]
    plan = plan_of("distinct_three")
    assert "power of two" in next(i for i in plan["leakage"] if i["item"] == "input_sizes")["detail"]
    flags = next(i for i in plan["leakage"] if i["item"] == "suppression_flag")["detail"]
    assert "distinct persons across all organisations (record linkage)" in flags  # exact here


# -- 2. MPC vs oracle, and 3. the reveal audit -----------------------------------------------------
MPC_CASES = [("inner_both_sides", "random"), ("left_join", "nulls"), ("overlap", "full"),
             ("unique_left_side", "edges"), ("distinct_three", "edges"), ("distinct_two_total", "empty")]


@pytest.mark.mpc
@pytest.mark.parametrize("name,scenario", MPC_CASES)
def test_mpc_matches_oracle_and_sqlite(name, scenario, datasets):
    plan = plan_of(name)
    data = datasets[(scenario, 1)]
    got = run_mpc(plan, data, catalog_path=LCAT_PATH)
    want = oracle_result(plan, LCAT, data)
    assert_same_result(plan, got, want, rel=FIXED_POINT_REL)
    assert same(normalise(got), expected(name, plan, data), rel=1e-5)  # and the independent evaluation


@pytest.mark.mpc
def test_join_reveal_audit(tmp_path, datasets):
    """Every value a party receives during a join is exactly what the leakage report lists."""
    from insightql.runtime.launch.launcher import launch_local
    from test_reveal_audit import leakage_of

    plan = plan_of("inner_both_sides")
    data = datasets[("random", 1)]
    audit = tmp_path / "audit.jsonl"
    with _MPC_SLOTS:
        table, _ = launch_local(plan, LCAT_PATH, data, quiet=True, timeout=120, env={"IQ_AUDIT_FILE": str(audit)})
    assert_same_result(plan, table, oracle_result(plan, LCAT, data), rel=FIXED_POINT_REL)
    every = [json.loads(x) for x in audit.read_text().splitlines()]
    names = plan["parties"]
    reveal = next(n for n in plan["nodes"] if n["op"] == "reveal")
    link = next(n for n in plan["nodes"] if n["op"] == "link_join")
    lines = [x for x in every if x["reveal"] == reveal["id"]]
    by_party = {x["party"] if x["pid"] is None else names[x["pid"]]: x for x in lines}  # output-only: by name
    assert len(lines) == len(names) + len(plan.get("output_parties", [])) == len(by_party), "one reveal line per party"
    # besides: quicksort comparison outcomes, announced as sort_comparisons, opened during the link op
    assert all(x["reveal"] == link["id"] and x["received"]["item"] == "sort_comparisons"
               for x in every if x not in lines)
    assert any(i["item"] == "sort_comparisons" and i["to"] == names for i in plan["leakage"])
    counts = {pid: sum(x["received"]["count"] for x in every if x["pid"] == pid and x not in lines)
              for pid in range(len(names))}
    assert len(set(counts.values())) == 1 and 0 < counts[0] < 3 * 128 ** 2  # same at all parties, ~n log n
    announced = leakage_of(plan)
    for party, line in by_party.items():
        if party in plan["receivers"]:
            assert list(line["received"]) == reveal["inputs"]
            assert set(line["received"]) <= set(announced)
        else:
            assert line["received"] is None
    t = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    received = by_party[plan["receivers"][0]]["received"]
    for o in t["outputs"]:
        if o["kind"] == "value":
            assert all(ok == 1.0 or v == 0.0 for v, ok in zip(received[o["value"]], received[o["flag"]]))
    # besides the reveal, the parties learn the vector lengths: exactly what input_sizes declares
    sizes = next(i for i in plan["leakage"] if i["item"] == "input_sizes")
    assert sizes["to"] == names and "row count" in sizes["detail"]


def test_joins_of_unique_keys_sort_without_a_tiebreak():
    """Only where both sides' keys are unique: their (key', side) sort keys are distinct once padding
    and keyless rows carry distinct keys above every real key."""
    from insightql.compiler.plaintext.linkage_local import decode, dummy
    from insightql.runtime.secure.linkage_ops import LinkOps, spread_padding

    def join_of(name):
        plan = plan_of(name)
        return LinkOps(None, plan, {}, None), next(n for n in plan["nodes"] if n["op"] == "link_join")

    ops, link = join_of("left_join")  # ngo LEFT JOIN shelter: both unique
    assert ops.sort_keys_distinct(link)
    police_ops, police_link = join_of("inner_both_sides")
    assert not police_ops.sort_keys_distinct(police_link)  # police repeats keys
    lay = link["attrs"]["layout"]
    K = lay["key_bits"]
    vec = np.array([dummy(lay, 1), 5 << (1 + lay["payload_bits"]), dummy(lay, 1), dummy(lay, 1)], dtype=object)
    keys = [decode(lay, int(v))[0] for v in spread_padding(vec, lay, 1)]
    assert keys[1] == 5 and len(set(keys)) == 4
    assert all(2 ** K <= k < 2 ** (K + 1) for k in keys[:1] + keys[2:])
    other = [decode(lay, int(v))[0] for v in spread_padding(vec, lay, 0)]
    assert not set(other[:1] + other[2:]) & set(keys)  # the two sides' padding keys differ too
