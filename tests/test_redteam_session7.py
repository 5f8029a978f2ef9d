"""Red team, session 7: differential privacy mixed with exact releases, catalog layouts (`like`), and
other recent features, on the plaintext oracle (tests/redteam_data.py; the observer of
spec/disclosure.md 1.1: a receiver that may own data, remembers every release, colludes with t parties).

Found and closed:

* dp_without_a_budget: `@epsilon` was accepted over a dataset whose policy has no `[policy.privacy]`.
  A DP plan applies no threshold rule but the noisy one and no guard against DP releases (spec/privacy.md 5),
  and no party counts spends for a dataset without a budget: `@epsilon 1000000` gives noise that is
  0 with probability 1 - 2e-1000000, so an exact COUNT(*) by region minus the same count WHERE
  prs_Age <> 77 is the one person aged 77 (and any DP query repeated N times averages its noise
  away). The same over a UNION ALL where only one owner keeps a budget: the other owner's rows are
  released under a budget it never set. Closed: IQ328 (compiler/check/privacy.py).
* privacy_looser_in_iq_diff: a privacy section added to a dataset (which now is what lets `@epsilon`
  replace its threshold rules and guard), or a budget raised, was "changed from" in `iq diff` and
  `iq catalog`, never "looser": with `like`, one owner's edit of its own section reaches every dataset
  that copies it, and `iq diff` exited 1 instead of 3. The same for columns: the police opting its
  prs_Age in to MIN/MAX opened the NGO's `like` copy of it too, and `iq diff` said only "changed".
  Closed (compiler/review/catalog_text.py).
* noisy_threshold_of_one_owner: over a UNION ALL the noisy threshold applied only when every owner
  asked for it, so one owner turning it off for its own dataset dropped it for the others' rows too
  (cells with a noisy count below their k shown). Now the strictest: any owner asking applies it.
* infer_exact_extremes_of_a_small_count: `iq catalog infer` rounded bounds outward to a power of ten
  chosen by the magnitude, which is 1 below 10: a count column's bounds were its exact extremes (one
  family's 7 children). The step is now at least 10 (runtime/data/infer.py).
* like_copy_in_the_owners_name: a `like` copy that writes no `owner` is the parent owner's dataset;
  with a looser policy (k = 2) and a party started with a bare `--data FILE` ("the party owns one
  dataset of the plan"), a plan over the copy read the owner's file under the copy's policy, outside
  the guard of the original's releases. Closed: a bare FILE serves only a party that owns one
  dataset in the whole catalog (runtime/launch/party.py).

* dp_minus_exact_at_a_large_epsilon: where an owner allows DP without requiring it, a DP plan carried no
  guard; at the epsilon the policy allowed (100) a DP count WHERE prs_Age <> 77 minus an earlier exact
  count by region was the one person aged 77. Closed: a DP plan is compared with the earlier EXACT
  releases by the guard (compiler/plan/dp_lower.exact_releases; tests/test_dp_guard.py).

Not protected (spec/disclosure.md 6.15): DP at a large epsilon the owner allows (up to 100 per query)
is nearly exact; two DP releases are not compared (the budget is all that bounds their difference).

Held (tests at the end): an exact release after a DP one is guarded as if the DP one were exact;
ORDER BY / LIMIT / pct / HAVING under rounding read no exact count. Tried without a test: HAVING on
MIN, MEDIAN, COUNT(DISTINCT) or FILTER under DP (IQ325/IQ319; AVG and SUM in HAVING read noisy
values), SUM under DP is clamped before the noise, FILTER on COUNT(x)/COUNT(DISTINCT)/MEDIAN/
PERCENTILE (IQ313), `where = false` through coalesce/CASE/region()/IS NULL (IQ312), suppressed values
in CSV/JSON/Parquet/HTML and their metadata (none: a suppressed value is revealed as 0), the status
handshake (bad data: counts only), guard signatures in `iq explain` (no values).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from insightql.compiler.check.catalog import Catalog, load_catalog
from insightql.compiler.pipeline import compile_source

from conftest import CATALOG
from redteam_data import block, cells, compile_seq, q, releases

CAT = load_catalog(CATALOG)
DP_CAT = load_catalog(CATALOG.parent / "catalog_dp.toml")  # both police and NGO keep a budget
P, N, HL = "police_victims", "ngo_clients", "helpline_reports"
BY_REGION = "SELECT exp_Region, COUNT(*) AS n FROM {frm} {where} GROUP BY exp_Region;"
AGE_77 = [block(P, 40, exp_Region="North", prs_Age=[30] * 39 + [77]), block(P, 40, exp_Region="East")]


def _codes(text: str, cat) -> list[str]:
    return [d.code for d in compile_source(q(text), "q.iq", cat).diagnostics if d.severity == "error"]


def _with_privacy(cat, dataset: str, **privacy) -> Catalog:
    raw = cat.model_dump(mode="json")
    raw["datasets"][dataset]["policy"]["privacy"] = privacy
    return Catalog.model_validate(raw)


# ------------------------------------------------------------------ DP where no owner keeps a budget
def test_dp_without_a_budget_is_refused(tmp_path: Path):
    """The attack: an exact release, then the same count at a huge epsilon minus one person. Before IQ328 the
    second query compiled with no guard and noise of scale 1e-6 (0 with overwhelming probability)."""
    exact = BY_REGION.format(frm=P, where="")
    noisy = "@epsilon 1000000\n" + BY_REGION.format(frm=P, where="WHERE prs_Age <> 77")
    first, second = compile_seq([exact, noisy], CAT)
    assert first.plan is not None
    assert second.plan is None and [d.code for d in second.diagnostics] == ["IQ328"]
    # the exact release alone keeps the person: the North is 40, never 39 beside it
    (plan, _, table), = releases([exact], AGE_77, CAT, tmp_path)
    assert cells(plan, table)[("North",)]["n"] == 40


def test_what_the_refused_plan_would_have_released(tmp_path: Path):
    """Why IQ328 matters, and the mixed case closed since: where an owner DOES allow DP (a budget) without
    requiring it, at the largest epsilon a policy accepts (100) the noise of scale 1/100 is 0 with
    probability 1 - 2e-100, so a DP count minus an earlier exact one would be the person. The DP plan is
    compared by the differencing guard with the earlier EXACT releases (spec/privacy.md 5): the North is
    withheld (more in tests/test_dp_guard.py)."""
    cat = _with_privacy(CAT, P, require=False, epsilon_budget=100)
    runs = releases([BY_REGION.format(frm=P, where=""),
                     "@epsilon 100\n" + BY_REGION.format(frm=P, where="WHERE prs_Age <> 77")], AGE_77, cat, tmp_path)
    (plan0, _, t0), (plan1, _, t1) = runs
    assert [o["plan_hash"] for e in plan1["guard"] for o in e["from"]] == [plan0["hash"]]
    (node,) = [n for n in plan1["nodes"] if n["op"] == "dp_noise"]
    assert Fraction(node["attrs"]["scale"]) < Fraction(1, 99)  # the smallest double >= 1/100: still nearly exact
    assert cells(plan0, t0)[("North",)]["n"] == 40 and cells(plan1, t1)[("North",)]["n"] is None


def test_one_owners_budget_does_not_cover_another_in_a_union():
    """police keeps a budget, the NGO none: the NGO's rows would be released under the police's budget and
    without the NGO's threshold rules. Refused, naming the NGO's dataset; with both budgets it compiles."""
    cat = _with_privacy(CAT, P, require=False, epsilon_budget=100)
    text = "@epsilon 50\n" + BY_REGION.format(frm=f"{P} UNION ALL {N}", where="")
    res = compile_source(q(text), "q.iq", cat)
    assert res.plan is None and [d.code for d in res.diagnostics] == ["IQ328"]
    assert f"`{N}`" in res.diagnostics[0].message and f"`{P}`" not in res.diagnostics[0].message
    assert _codes(text.replace("@epsilon 50", "@epsilon 1"), DP_CAT) == []


def test_dp_control_where_every_owner_keeps_a_budget():
    """Control: the honest DP query over datasets whose owners keep budgets compiles, spends at most its epsilon
    and is checked by the owners' parties against their ledgers (tests/test_dp_budget.py)."""
    res = compile_source(q("@epsilon 0.5\n" + BY_REGION.format(frm=N, where="")), "q.iq", DP_CAT)
    assert res.plan is not None and res.plan["policy"]["privacy"]["required_by"] == []
    spent = sum(Fraction(n["attrs"]["epsilon"]) for n in res.plan["nodes"] if n["op"] == "dp_noise")
    assert 0 < spent <= Fraction(1, 2)


# ------------------------------------------------------------------ layouts: a privacy section through `like`
def _examples_with_police_budget(folder: Path, budget: str) -> Path:
    text = (Path(__file__).resolve().parents[1] / "examples" / "catalog.toml").read_text(encoding="utf-8")
    anchor = "max_groups = 2000\n[datasets.police_victims.columns]"
    assert anchor in text
    path = folder / f"catalog_{budget}.toml"
    path.write_text(text.replace(anchor, "max_groups = 2000\n[datasets.police_victims.policy.privacy]\n"
                                 f"require = false\nepsilon_budget = {budget}\n[datasets.police_victims.columns]"),
                    encoding="utf-8")
    return path


def test_a_privacy_section_through_like_is_looser_in_iq_diff(tmp_path: Path):
    """examples/catalog.toml: ngo_clients is `like = "police_victims"`. The police adds a DP budget to its own
    dataset's policy; the NGO's dataset inherits it without a line of its own, and DP queries over it then skip
    its threshold rules and guard. `iq diff` must call that looser for both datasets (exit 3), and a larger
    budget looser again; `iq catalog` shows where the NGO's section comes from."""
    from insightql.compiler.review.catalog_text import diff_catalogs, explain_catalog

    root = Path(__file__).resolve().parents[1]
    before = load_catalog(root / "examples" / "catalog.toml")
    small, big = (load_catalog(_examples_with_police_budget(tmp_path, b)) for b in ("1.0", "100"))
    assert big.datasets[N].policy.privacy is not None and big.lineage(N).policy.get("privacy") == P
    text, looser = diff_catalogs(before, small)
    assert looser and f"dataset {N}: policy privacy" in text and f"dataset {P}: policy privacy" in text
    assert all("looser than before (none)" in line for line in text.splitlines() if "policy privacy" in line)
    text, looser = diff_catalogs(small, big)
    assert looser and "looser than before (require=False, epsilon_budget=1.0" in text
    text, looser = diff_catalogs(big, small)  # a smaller budget: stricter
    assert not looser and "stricter than before" in text
    assert any(line.split()[:1] == ["privacy"] and P in line for line in explain_catalog(big, "x").splitlines()
               if "epsilon_budget=100" in line)


# ------------------------------------------------------------------ layouts: a copy in another owner's name
COPY = """
[datasets.police_copy]
like = "police_victims"
[datasets.police_copy.policy]
min_group_size = 2
require_approval = false
"""


def test_a_like_copy_in_the_owners_name_is_not_read_from_its_bare_data_file(tmp_path: Path):
    """Anyone drafting the shared catalog adds `police_copy`, `like = "police_victims"` with k = 2 and no
    `owner` line: it inherits the owner, so it is the police's dataset. A police party started as
    `iq party --data police.csv` (a bare FILE: 'the party owns one dataset of the plan') loaded that file
    for a plan over police_copy, under k = 2 and outside the guard of police_victims' releases (another
    dataset). Closed: a bare --data FILE serves only a party that owns one dataset in the whole catalog."""
    from insightql.runtime.data.loader import DataError
    from insightql.runtime.launch.party import load_own_data

    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.read_text(encoding="utf-8") + COPY, encoding="utf-8")
    cat = load_catalog(path)
    assert cat.datasets["police_copy"].owner == "police" and cat.datasets["police_copy"].policy.min_group_size == 2
    world = [block(P, 3, exp_Region="North", prs_Age=77), block(P, 40, exp_Region="East")]
    copy_world = [block("police_copy", 3, exp_Region="North", prs_Age=77), block("police_copy", 40, exp_Region="East")]
    text = BY_REGION.format(frm="police_copy", where="")
    (plan, _, table), = releases([text], copy_world, cat, tmp_path / "copy")
    assert cells(plan, table)[("North",)]["n"] == 3  # what the copy's policy lets out of the police's rows
    (plan_own, _, own), = releases([BY_REGION.format(frm=P, where="")], world, cat, tmp_path / "own")
    assert cells(plan_own, own)[("North",)]["n"] is None  # the police's own policy (k = 10)
    police_file = tmp_path / "own" / f"{P}.csv"
    try:
        load_own_data(plan, "police", cat, {"*": str(police_file)})
        raise AssertionError("the police's file was read as police_copy")
    except DataError as e:
        assert "owns police_victims, police_copy" in str(e)
    # the police owns two datasets now, so it names the one its file holds (a bare FILE is refused for both)
    loaded = load_own_data(plan_own, "police", cat, {P: str(police_file)})
    assert [n for _, n in loaded.values()] == [43]


def test_a_bare_data_file_still_serves_a_party_with_one_dataset(tmp_path: Path):
    """Control: in the corpus catalog the police owns one dataset; `--data FILE` loads it."""
    from insightql.runtime.launch.party import load_own_data

    (plan, _, _), = releases([BY_REGION.format(frm=P, where="")], AGE_77, CAT, tmp_path)
    loaded = load_own_data(plan, "police", CAT, {"*": str(tmp_path / f"{P}.csv")})
    assert len(loaded) == 1


def test_the_noisy_threshold_of_one_owner_holds_in_a_union():
    """police asks for the noisy threshold (the default), the NGO turns it off for its own dataset: over their
    UNION ALL the threshold was dropped (all owners had to ask), so cells whose noisy count is below the
    police's k were shown. The strictest policy applies, as for every other field of a UNION ALL."""
    raw = DP_CAT.model_dump(mode="json")
    raw["datasets"][N]["policy"]["privacy"]["noisy_threshold"] = False
    cat = Catalog.model_validate(raw)
    text = "@epsilon 1\n" + BY_REGION.format(frm=f"{P} UNION ALL {N}", where="")
    plan = compile_source(q(text), "q.iq", cat).plan
    assert plan["policy"]["privacy"]["noisy_threshold"] is True
    assert [n["attrs"]["rule"] for n in plan["nodes"] if n["op"] == "ge_const"] == ["dp.threshold"]
    alone = compile_source(q("@epsilon 1\n" + BY_REGION.format(frm=N, where="")), "q.iq", cat).plan
    assert not any(n["attrs"].get("rule") == "dp.threshold" for n in alone["nodes"])  # the NGO's own choice


# ------------------------------------------------------------------ iq catalog infer: bounds of small counts
def test_infer_does_not_publish_the_exact_extremes_of_a_small_count(tmp_path: Path):
    """A draft's bounds are the data's extremes rounded outward to a power of ten; below 10 the power was 1, so
    a count column's bounds were its exact extremes: one family with 7 children (every other row 0..4) was
    `max = 7` in the public catalog, the rare-value disclosure --min-count prevents for categories. Now the step
    is at least 10 (0..10); ages 17..83 still become 10..90 (tests/test_catalog_infer.py)."""
    import re

    from insightql.runtime.data.infer import InferOptions, infer_dataset

    data = tmp_path / "families.csv"
    data.write_text("children,delta\n" + "".join(f"{i % 5},{i % 4 - 2}\n" for i in range(59)) + "7,-3\n",
                    encoding="utf-8")
    text = infer_dataset(data, InferOptions())
    out = tmp_path / "draft.toml"
    out.write_text(text, encoding="utf-8")
    cols = load_catalog(out).datasets["families"].columns
    assert (cols["children"].min, cols["children"].max) == (0, 10) and cols["children"].clamp == (0, 10)
    assert (cols["delta"].min, cols["delta"].max) == (-10, 10)
    assert not re.search(r"(?<![\d.-])(7|-3)(?![\d.])", text)


def test_a_column_opened_through_like_is_looser_in_iq_diff(tmp_path: Path):
    """The police opts its own prs_Age in to MIN and MAX (one person's value, spec/disclosure.md 6.5). The NGO's
    prs_Age is `like` the police's with only its own description, so MAX over the NGO's clients compiles too,
    though the NGO wrote nothing. `iq diff` listed 'column prs_Age changed: aggregates' without 'looser' (exit 1,
    not 3), for both datasets; now each opened column (aggregates, role, WHERE, clamp, unique) is looser."""
    from insightql.compiler.review.catalog_text import diff_catalogs

    root = Path(__file__).resolve().parents[1]
    text = (root / "examples" / "catalog.toml").read_text(encoding="utf-8")
    before = load_catalog(root / "examples" / "catalog.toml")
    path = tmp_path / "catalog.toml"
    old = 'role = "measure", clamp = [0, 99], description = "Age in years when identified"'
    assert old in text
    opened = ", ".join(f'"{a}"' for a in before.datasets[P].columns["prs_Age"].allowed_aggregates() + ("min", "max"))
    path.write_text(text.replace(old, old.replace("clamp = [0, 99]", f"clamp = [0, 99], aggregates = [{opened}]")),
                    encoding="utf-8")
    after = load_catalog(path)
    query = q(BY_REGION.format(frm=N, where="").replace("COUNT(*) AS n", "MAX(prs_Age) AS oldest"))
    assert compile_source(query, "q.iq", before).plan is None
    assert compile_source(query, "q.iq", after).plan is not None  # the NGO's column, opened by the police's edit
    diff, looser = diff_catalogs(before, after)
    assert looser, diff
    for ds in (P, N):
        assert f"dataset {ds}: column prs_Age changed: aggregates, looser: aggregates max, min" in diff
    _, back = diff_catalogs(after, before)
    assert not back  # closing it again is not looser


# ------------------------------------------------------------------ attacks that failed (the protection held)
def test_an_exact_release_is_guarded_against_an_earlier_dp_release(tmp_path: Path):
    """police allows DP without requiring it. A DP count WHERE prs_Age <> 77 (noisy; the oracle adds no noise),
    then the exact total, then the exact count WHERE prs_Age <> 77: the guard compares each exact release with
    the DP one as if it were exact (spec/privacy.md 5), so the total is suppressed after the DP release, and
    the exact WHERE after the total; the exact difference of 1 never comes out. Before any DP release the total
    is released (40), and then the DP release is compared with it (tests/test_dp_guard.py): withheld too."""
    cat = _with_privacy(CAT, P, require=False, epsilon_budget=3, max_epsilon_per_query=1)
    total, but_77 = BY_REGION.format(frm=P, where=""), BY_REGION.format(frm=P, where="WHERE prs_Age <> 77")
    for i, (seq, north) in enumerate([(["@epsilon 1\n" + but_77, total, but_77], [39, None, None]),
                                      ([total, "@epsilon 1\n" + but_77, but_77], [40, None, None])]):
        got = [cells(p, t)[("North",)]["n"] for p, _, t in releases(seq, AGE_77, cat, tmp_path / str(i))]
        assert got == north, (seq, got)


def test_order_limit_pct_and_having_under_rounding_do_not_read_the_exact_count(tmp_path: Path):
    """helpline_reports rounds counts to 5. Two channels with 11 and 14 reports (both shown as 10), swapped, and
    10 and 10: ORDER BY ... LIMIT, pct() with 3 digits, HAVING COUNT(*) >= 10 and ORDER BY a rounded SUM give
    the same table in all three worlds (no tie broken by the exact counts)."""
    from redteam_data import view

    queries = ["SELECT report_channel, COUNT(*) AS n FROM helpline_reports GROUP BY report_channel ORDER BY n DESC;",
               "SELECT report_channel, COUNT(*) AS n FROM helpline_reports GROUP BY report_channel "
               "ORDER BY n DESC LIMIT 1;",
               "SELECT report_channel, COUNT(*) AS n, round(pct(COUNT(*)), 3) AS p FROM helpline_reports "
               "GROUP BY report_channel;",
               "SELECT report_channel, COUNT(*) AS n FROM helpline_reports GROUP BY report_channel "
               "HAVING COUNT(*) >= 10;",
               "SELECT report_channel, SUM(victims_mentioned) AS s FROM helpline_reports GROUP BY report_channel "
               "ORDER BY s DESC;"]
    for j, text in enumerate(queries):
        views = []
        for a, b in ((11, 14), (14, 11), (10, 10)):
            world = [block(HL, a, report_channel="Phone"), block(HL, b, report_channel="Chat"),
                     block(HL, 30, report_channel="Email", victims_mentioned=2)]
            views.append(view(releases([text], world, CAT, tmp_path / f"{j}_{a}_{b}")[0][2]))
        assert views[0] == views[1] == views[2], text
