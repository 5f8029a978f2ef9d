"""The attack no threshold rule stops (spec/disclosure.md 6.1), under differential privacy: three
overlapping releases A = BG u NG, B = NG u RO, C = BG u RO give (A - B + C) / 2 = the 3 BG nationals
exactly without DP (tests/test_residuals.py); with `@epsilon 0.5` each, the same arithmetic on the
released values gives 3 plus noise whose spread the test bounds (spec/privacy.md). The plans are run
by the oracle with noise from the sampler every party uses (runtime/secure/dp_noise.py), one sample
per computing party, as the secure op adds them."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.runtime.secure.dp_noise import sample_discrete_laplace

from insightql.compiler.check.catalog import Catalog

from redteam_data import block, cells, releases
from test_residuals import CAT as PLAIN, K, P, by_region

TRIALS = 3000


def _with_budget(cat):
    """The residuals' catalog with a budget on police_victims that DP may spend (IQ328: not without one)."""
    raw = cat.model_dump(mode="json")
    raw["datasets"][P]["policy"]["privacy"] = {"require": False, "epsilon_budget": 1.5}
    return Catalog.model_validate(raw)


CAT = _with_budget(PLAIN)


def test_three_overlapping_releases_give_only_noisy_answers(tmp_path):
    world = [block(P, 3, exp_Region="North", prs_Nationality="BG"),
             block(P, 30, exp_Region="North", prs_Nationality="NG"),
             block(P, 30, exp_Region="North", prs_Nationality="RO")]
    queries = ["@epsilon 0.5\n" + by_region(f"WHERE prs_Nationality IN ({x})")
               for x in ("'BG', 'NG'", "'NG', 'RO'", "'BG', 'RO'")]
    runs = releases(queries, world, CAT, tmp_path)
    scales, parties = set(), set()
    for plan, loaded, exact in runs:
        (node,) = [n for n in plan["nodes"] if n["op"] == "dp_noise"]  # the noisy row count only
        assert Fraction(node["attrs"]["epsilon"]) <= Fraction(1, 2) and node["attrs"]["sensitivity"] == 1
        scales.add(node["attrs"]["scale"])
        parties.add(len(plan["parties"]))
        assert cells(plan, exact)[("North",)]["n"] in (33, 60)  # the oracle without noise: the exact counts
    (scale,), (m,) = scales, parties
    assert m == 3

    def noisy_north() -> list[int]:  # one release of each query, as the parties would make it
        out = []
        for plan, loaded, _ in runs:
            node = next(n for n in plan["nodes"] if n["op"] == "dp_noise")
            noise = np.sum([sample_discrete_laplace(scale, plan["cells"]) for _ in range(m)], axis=0)
            out.append(cells(plan, run_plan_plaintext(plan, loaded, noise={node["id"]: noise}))[("North",)]["n"])
        return out

    a, b, c = noisy_north()
    assert None not in (a, b, c)  # released: their noisy counts are far above k
    # many repetitions of the attack (the sampler alone: the oracle adds the noise as shown above)
    z = np.array(sample_discrete_laplace(scale, 3 * m * TRIALS)).reshape(3, m, TRIALS).sum(axis=1)
    estimate = (3 + (z[0] - z[1] + z[2]) / 2)
    err = estimate - 3
    q = math.exp(-1 / float(Fraction(scale)))
    var_one = m * 2 * q / (1 - q) ** 2  # variance of one release's noise: m discrete Laplace samples
    sd = math.sqrt(3 * var_one / 4)
    assert abs(err.mean()) < 4 * sd / math.sqrt(TRIALS)
    assert 0.9 * sd < err.std() < 1.1 * sd  # the error the test bounds: about 4.2 at epsilon 0.5 per query
    assert np.mean(estimate == 3) < 0.15  # the exact size of the small group is rarely what comes out
    half = np.quantile(np.abs(err), 0.95)
    assert half >= K - 3  # its 95% error is as large as the gap between the group and the threshold
    assert sd > 3  # the noise exceeds the group itself
