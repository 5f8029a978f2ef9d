"""Every option of every `iq` command says what it is, with an example (issue 20 item 3), and
`iq run --data` accepts what the README's commands pass."""
from __future__ import annotations

import argparse
import re

import pytest

from insightql.runtime.cli import build_parser
from insightql.runtime.cli.common import UsageError
from insightql.runtime.cli.run import _data_map

EXAMPLE = re.compile(r"e\.g\.|for example")


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("iq",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), "/".join(action.option_strings) or action.dest, action.help


OPTIONS = list(_options(build_parser()))


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("iq",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join(path + (name,)), sub
                yield from _subparsers(sub, path + (name,))


COMMANDS = dict(_subparsers(build_parser()))
EXAMPLE_LINE = re.compile(r"^  iq \S", re.M)


def test_every_option_has_help():
    missing = [f"{cmd} {opt}" for cmd, opt, text in OPTIONS if not text or text == argparse.SUPPRESS]
    assert OPTIONS and not missing, "options without help text: " + ", ".join(missing)


def test_the_commands_are_all_seen():
    """The walk reaches the nested audit commands: the parametrized tests below cover them."""
    assert {"iq keygen", "iq approve", "iq revoke", "iq verify", "iq audit verify-heads", "iq audit report",
            "iq certs", "iq lsp", "iq run", "iq catalog"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted({cmd for cmd, _, _ in OPTIONS}))
def test_every_option_has_an_example(command):
    bare = [opt for cmd, opt, text in OPTIONS if cmd == command and not EXAMPLE.search(text or "")]
    assert not bare, f"{command}: options without an example: {bare}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_ends_with_example_invocations_that_parse(command):
    """Each example in the epilog is a whole command line of this very command, in the width of a
    terminal, that the parser accepts (a renamed option would break it); the help never wraps
    inside an option's name."""
    import shlex
    text = COMMANDS[command].format_help()
    assert re.search(r"^examples?:$", text, re.M), text
    epilog = text[re.search(r"^examples?:$", text, re.M).end():]
    joined = epilog.replace("\\\n", " ")
    found = EXAMPLE_LINE.findall(joined)
    assert 1 <= len(found) <= 2, epilog
    assert all(len(line) <= 80 for line in epilog.splitlines()), epilog
    assert not re.search(r"\w-$", text, re.M), text  # no option broken at its hyphen ("--min-" / "count")
    for line in joined.strip().splitlines():
        argv = shlex.split(line)[1:]
        assert " ".join(argv).startswith(command[3:]), line
        args = build_parser().parse_args(argv)
        assert args.fn is COMMANDS[command].get_default("fn") or command == "iq audit", line


PLAN = {"datasets": {"police_victims": {"owner": "police"}, "ngo_clients": {"owner": "ngo"}},
        "parties": ["police", "ngo", "helper"], "output_parties": ["helpline"]}


def test_data_for_a_receiver_that_does_not_compute_is_a_note(capsys):
    """`make demo` passes every organisation's file; the helpline only receives this query's result."""
    got = _data_map(["police=p.csv", "ngo_clients=n.csv", "helpline=h.csv"], PLAN)
    assert got == {"police_victims": "p.csv", "ngo_clients": "n.csv"}
    assert "helpline holds no dataset this query reads" in capsys.readouterr().err


def test_data_for_an_unknown_name_is_refused():
    with pytest.raises(UsageError, match="neither a dataset of this query nor a party"):
        _data_map(["bank=b.csv"], PLAN)
