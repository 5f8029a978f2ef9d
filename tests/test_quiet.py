"""`iq party --quiet` prints only the result (issue 20 item 3): none of MPyC's own log lines ("Start
MPyC runtime", "All 3 parties connected", "Stop MPyC -- elapsed time"), which MPyC writes to
stdout, where the result table goes. One small run with real parties; `iq run --quiet` shows
only what its parties write to stderr (tests/test_governance_e2e.py test_iq_run_all_parties_refuse
checks its whole output)."""
from __future__ import annotations

import re

import pytest

from insightql.compiler.check.catalog import load_catalog

from conftest import CATALOG, MPYC_LOG_LINE, Parties, compile_plan

pytestmark = pytest.mark.mpc

QUERY = """@purpose research
SELECT exp_Region, COUNT(*) AS n FROM police_victims GROUP BY exp_Region;"""
MPYC_WORDS = ("MPyC", "parties connected", "elapsed time", "bytes sent")


class ToTerminal(Parties):
    """Parties whose first receiver prints the result instead of writing a file."""

    def cmd(self, name: str) -> list[str]:
        cmd = super().cmd(name)
        if name == self.plan["receivers"][0]:
            i = cmd.index("--out")
            del cmd[i:i + 2]
        return cmd


def test_party_quiet_prints_only_the_result(tmp_path, corpus_data):
    plan = compile_plan(QUERY, load_catalog(CATALOG))
    shown = plan["receivers"][0]
    parties = ToTerminal(plan, corpus_data, tmp_path, extra=["--quiet"]).start()
    try:
        codes = parties.wait(timeout=120)
    finally:
        parties.stop_all()
    assert all(c == 0 for c in codes.values()), {n: parties.stderr(n) for n in codes}
    for name in parties.names:
        out, err = parties.out[name], parties.stderr(name)
        for text in (out, err):
            assert not re.search(MPYC_LOG_LINE, text, re.M) and not any(w in text for w in MPYC_WORDS), (name, text)
        assert err == "", (name, err)
        if name != shown:
            assert out == "", (name, out)
    table = parties.out[shown].splitlines()
    assert table[0].split() == ["exp_Region", "n"] and set(table[1]) == {"-", " "}, table
    regions = {line.split()[0] for line in table[2:] if not line.endswith("(policy of the data owners).")}
    assert regions == {"North", "East", "South", "West"}, table


def test_party_prints_mpyc_log_on_stderr_and_only_the_result_on_stdout(tmp_path, corpus_data):
    """Without --quiet MPyC's log lines stay, on stderr: stdout holds the result table alone."""
    plan = compile_plan(QUERY, load_catalog(CATALOG))
    shown = plan["receivers"][0]
    parties = ToTerminal(plan, corpus_data, tmp_path).start()
    try:
        codes = parties.wait(timeout=120)
    finally:
        parties.stop_all()
    assert all(c == 0 for c in codes.values()), {n: parties.stderr(n) for n in codes}
    out, err = parties.out[shown], parties.stderr(shown)
    assert "MPyC" in err and not any(w in out for w in MPYC_WORDS), (out, err)
    assert out.splitlines()[0].split() == ["exp_Region", "n"], out
