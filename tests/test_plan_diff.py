"""`iq diff` marks every weakening (compiler/review/weakening.py) and takes .iq files too; exit 0 for
the same plan, 1 for a difference that weakens nothing, 3 when the new plan is weaker."""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.review.plan_diff import diff_plans
from insightql.compiler.review.weakening import weakenings
from insightql.runtime.cli import main

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "tests" / "corpus" / "catalog.toml"
BASE = """@purpose research
@receivers police, ngo
SELECT exp_Region, COUNT(*) AS n FROM police_victims UNION ALL ngo_clients GROUP BY exp_Region;
"""


def plan(text: str, catalog_path: Path = CATALOG) -> dict:
    res = compile_source(text, "q.iq", load_catalog(catalog_path))
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


def catalog_with_k(tmp_path: Path, k: int) -> Path:
    text = CATALOG.read_text(encoding="utf-8").replace("min_group_size = 10", f"min_group_size = {k}")
    path = tmp_path / f"catalog{k}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_lower_k_is_weaker_and_higher_k_is_not(tmp_path):
    a = plan(BASE)
    lower, higher = (plan(BASE, catalog_with_k(tmp_path, k)) for k in (5, 20))
    found = weakenings(a, lower)
    assert any("smaller minimum group size k: 10 -> 5" in w for w in found), found
    assert any("compares with a smaller constant" in w for w in found), found
    assert weakenings(a, higher) == []
    assert "! smaller minimum group size k" in diff_plans(a, lower)
    assert "nothing weaker" in diff_plans(a, higher)


@pytest.mark.parametrize("change,words", [
    (lambda t: t.replace("@receivers police, ngo", "@receivers police, ngo, helpline"), "more receivers: helpline"),
    (lambda t: t.replace("COUNT(*) AS n", "COUNT(*) AS n, AVG(prs_Age) AS age"), "newly revealed: output (age)"),
])
def test_more_receivers_and_new_outputs_are_weaker(change, words):
    found = weakenings(plan(BASE), plan(change(BASE)))
    assert any(words in w for w in found), found


def test_cli_exit_codes_and_iq_files(tmp_path, capsys):
    a, b, c = (tmp_path / n for n in ("a.iq", "b.iq", "c.iq"))
    a.write_text(BASE)
    b.write_text(BASE.replace("@receivers police, ngo", "@receivers police, ngo, helpline"))
    c.write_text(BASE.replace("@purpose research", "@purpose research\n@description 'regions'"))
    cat = ["--catalog", str(CATALOG)]
    assert main(["diff", str(a), str(a), *cat]) == 0
    assert main(["diff", str(a), str(b), *cat]) == 3
    assert "! more receivers: helpline" in capsys.readouterr().out
    assert main(["diff", str(a), str(c), *cat]) == 1
    assert "nothing weaker" in capsys.readouterr().out
