"""`iq check` in every format reports every kind of failure: query errors, catalog errors (with
line and column) and unreadable files (not UTF-8, a byte-order mark, a folder); SARIF validates
against the SARIF 2.1.0 schema (tests/sarif-schema-2.1.0.json, the OASIS file), GitHub
annotations escape their properties, and the compile-only commands speak in words."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from insightql.compiler.codes import CODES, doc_page, help_uri
from insightql.compiler.diagnostics import Diagnostic, Source, Span, render_github
from insightql.runtime.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
CATALOG = ROOT / "tests" / "corpus" / "catalog.toml"
GOOD = "@purpose research\nSELECT prs_Gender, COUNT(*) AS n\nFROM police_victims\nGROUP BY prs_Gender;\n"
BAD_CATALOG = 'name = "x"\n[datasets.police_victims\nowner = "police"\n'
WRONG_FIELD = ('[datasets.police_victims]\nowner = "police"\n[datasets.police_victims.columns]\n'
               'prs_Age = { type = "integer", min = 99, max = 0 }\n')


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A folder with one good query, one with an unknown column, one Latin-1 file and one with a BOM."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(CATALOG, tmp_path / "catalog.toml")
    (tmp_path / "good.iq").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.iq").write_text(GOOD.replace("prs_Gender, COUNT", "prs_Gendr, COUNT"), encoding="utf-8")
    (tmp_path / "latin.iq").write_bytes("-- caf\u00e9\n".encode("latin-1") + GOOD.encode())
    (tmp_path / "bom.iq").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    return tmp_path


def _sarif(text: str) -> dict:
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_sarif_of_query_errors_and_unreadable_files(tree, capsys):
    code, out, _ = _run(capsys, "check", "--format", "sarif", ".")
    doc = _sarif(out)
    run = doc["runs"][0]
    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in run["results"]}
    assert found == {("IQ203", "bad.iq"), ("IQ109", "latin.iq"), ("IQ109", "bom.iq")}
    assert code == 1
    for r in run["results"]:
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert loc["region"]["startLine"] >= 1
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tree.resolve().as_uri() + "/"
    latin = next(r for r in run["results"] if "latin" in r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
    assert latin["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    assert latin["locations"][0]["physicalLocation"]["region"]["startColumn"] == 7  # the é
    for rule in run["tool"]["driver"]["rules"]:
        assert rule["helpUri"] == help_uri(rule["id"])


@pytest.mark.parametrize("catalog, code, line", [(BAD_CATALOG, "IQ001", 2), (WRONG_FIELD, "IQ002", 4)])
@pytest.mark.parametrize("fmt", ["sarif", "json", "github", "human"])
def test_catalog_errors_in_every_format(tree, capsys, catalog, code, line, fmt):
    (tree / "catalog.toml").write_text(catalog, encoding="utf-8")
    status, out, _ = _run(capsys, "check", "--format", fmt, "good.iq", "bad.iq")
    assert status == 1 and out.strip(), "never an empty document"
    if fmt == "sarif":
        results = _sarif(out)["runs"][0]["results"]
        assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] \
            == [(code, line)], "the catalog's error, once, at its line"
        assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "catalog.toml"
    elif fmt == "json":
        found = json.loads(out)
        assert [(d["code"], d["file"], d["line"]) for d in found] == [(code, "catalog.toml", line)]
        assert found[0]["column"] >= 1
    elif fmt == "github":
        assert out.startswith(f"::error file=catalog.toml,line={line},col=")
        assert f"title={code}" in out
    else:
        assert f"catalog.toml:{line}:" in out and code in out


def test_check_given_a_catalog_checks_the_catalog(tree, capsys):
    assert _run(capsys, "check", "catalog.toml")[0] == 0
    (tree / "broken.toml").write_text(BAD_CATALOG, encoding="utf-8")
    status, out, _ = _run(capsys, "check", "--format", "json", "broken.toml")
    assert status == 1 and [d["code"] for d in json.loads(out)] == ["IQ001"]


def test_json_and_github_of_unreadable_files(tree, capsys):
    _, out, _ = _run(capsys, "check", "--format", "json", "latin.iq", "bom.iq", "good.iq")
    assert [(d["code"], d["file"]) for d in json.loads(out)] == [("IQ109", "latin.iq"), ("IQ109", "bom.iq")]
    _, out, _ = _run(capsys, "check", "--format", "github", "latin.iq", "bom.iq")
    assert out.splitlines()[0].startswith("::error file=latin.iq,line=1,col=7,title=IQ109::")


def test_clean_check_prints_a_whole_document(tree, capsys):
    status, out, _ = _run(capsys, "check", "--format", "sarif", "good.iq")
    assert status == 0 and _sarif(out)["runs"][0]["results"] == []
    assert json.loads(_run(capsys, "check", "--format", "json", "good.iq")[1]) == []


def test_github_annotations_escape_their_properties():
    d = Diagnostic("IQ203", "50% of it\nis wrong", Span(0, 1), ["a, b"], source=Source("dir,a:b%.iq", "x"))
    assert render_github([d]) == "::error file=dir%2Ca%3Ab%25.iq,line=1,col=1,title=IQ203::50%25 of it%0Ais wrong (hint: a, b)"


def test_every_help_uri_names_a_section_that_exists():
    for code, title in CODES.items():
        page = (ROOT / doc_page(code)).read_text(encoding="utf-8")
        if code < "IQ300" or f"### {code} " in page:
            assert f"### {code} {title}\n" in page, code
            assert help_uri(code).endswith("#" + help_uri(code).split("#")[1])


def test_hints_name_files_that_exist():
    """Every `spec/...` or `docs/...` path a diagnostic or CLI message mentions is in the repository."""
    import re

    for folder in ("compiler", "runtime", "stdlib"):
        for py in (ROOT / folder).rglob("*.py"):
            for path in re.findall(r"\b((?:spec|docs)/[\w.-]+\.(?:md|json))", py.read_text(encoding="utf-8")):
                assert (ROOT / path).exists(), f"{py.relative_to(ROOT)} mentions {path}, which does not exist"


@pytest.mark.parametrize("argv, words", [
    (["check", "nowhere.iq"], "nowhere.iq: no such file or folder"),
    (["explain", "catalog.toml", "--format", "html"], "is a catalog; it is explained as text only"),
    (["diff", "catalog.toml", "good.iq"], "is a catalog"),
    (["compile", "latin.iq"], "not UTF-8"),
    (["explain", "."], "is a folder, not a file"),
])
def test_errors_are_words_with_the_iq_prefix(tree, capsys, argv, words):
    status, out, err = _run(capsys, *argv)
    assert status in (1, 2) and words in err
    assert "Errno" not in err and "Expecting value" not in err and "Traceback" not in err
    assert all(line.startswith(("iq: ", "    ")) or ": IQ" in line for line in err.splitlines() if line)


def test_catalog_takes_the_file_like_every_command(tree, capsys):
    assert _run(capsys, "catalog", "catalog.toml")[1] == _run(capsys, "catalog", "--catalog", "catalog.toml")[1]


def test_every_option_of_the_compile_only_commands_has_help_with_an_example():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("check", "fmt", "compile", "explain", "diff", "catalog", "schema"):
        for action in sub.choices[name]._actions:
            if action.dest == "help":
                continue
            assert action.help and "e.g." in action.help, f"iq {name} {action.dest}: help without an example"


def test_pre_commit_hooks_and_ci_example_run_real_commands(tree, capsys):
    """Each hook's entry (and each iq line of the CI example) is a command line iq accepts."""
    import re

    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    workflow = (ROOT / "examples" / "ci" / "github-actions.yml").read_text(encoding="utf-8")
    entries = re.findall(r"^  entry: iq (.+)$", hooks, re.M)
    assert len(entries) == 2
    for entry in entries:
        assert main([*entry.split(), "good.iq"]) in (0, 1)
    for line in re.findall(r"run: iq ([^>|\n]+)", workflow):
        assert main(line.split()) in (0, 1), line
    capsys.readouterr()
