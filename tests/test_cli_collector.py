"""`iq` pauses Python's cyclic garbage collector while it imports a command's group, and for the whole
of `iq run` (compile, fork the parties, wait: spec/runtime.md, "Fixed cost of a small run"), and
restores it afterwards, also when the command fails; a forked party collects again (launcher.py)."""
from __future__ import annotations

import contextlib
import gc
import io

import insightql.runtime.cli as cli


def _main(argv, monkeypatch, seen):
    real = cli.build_parser

    def spy(command=None):
        seen.append(("build_parser", gc.isenabled()))
        return real(command)

    monkeypatch.setattr(cli, "build_parser", spy)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli.main(argv)


def test_collector_paused_while_importing_and_restored(monkeypatch):
    seen = []
    assert gc.isenabled()
    assert _main(["fmt", "examples/victims_by_exploitation.iq"], monkeypatch, seen) == 0
    assert seen == [("build_parser", False)] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        _main(["fmt", "examples/victims_by_exploitation.iq"], monkeypatch, seen)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collector_paused_through_iq_run_and_restored_when_it_fails(monkeypatch):
    from insightql.runtime.cli import run
    from insightql.runtime.cli.common import UsageError

    during = []

    def compile_query(*args, **kwargs):
        during.append(gc.isenabled())
        raise UsageError("no catalog.toml found")

    monkeypatch.setattr(run, "compile_query", compile_query)
    assert _main(["run", "q.iq", "--catalog", "none.toml"], monkeypatch, []) == 2
    assert during == [False] and gc.isenabled()
