"""The package's import graph: no cycles and the layering of ARCHITECTURE.md.

Every module of insightql (compiler/, runtime/, stdlib/) is parsed with `ast`; every `import` and
`from ... import` counts, at module level and inside functions, classes or `if`/`try` blocks alike
(an import inside a function is still an edge: it only defers the cycle to the first call). Relative
imports are resolved to module names. A dynamic import (`__import__`, `importlib.import_module`)
would hide an edge from this graph, so the package may not use one.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"insightql.stdlib": ROOT / "stdlib", "insightql.compiler": ROOT / "compiler",
            "insightql.runtime": ROOT / "runtime"}


def package_modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the three packages (a package is its __init__)."""
    mods: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join((pkg, *parts))] = path
    return mods


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(name: str, path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the module, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = name if _is_package(path) else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported package module: line of the first such import}."""
    mods = package_modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, path in mods.items():
        for target, line in imported_names(m, path):
            if target in mods and target != m:
                graph[m].setdefault(target, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, or with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or v in graph[v]:
                        comps.append(sorted(comp))
    return comps


def cycle_path(graph: dict[str, dict[str, int]], comp: list[str]) -> str:
    """One cycle through the component's first module, as `a (line) -> b (line) -> ... -> a`."""
    members = set(comp)
    start = comp[0]
    # breadth-first search back to start inside the component
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    path.reverse()
                    path.append(start)
                    return " -> ".join(
                        f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) + f" -> {start}"
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(comp)


def test_graph_sees_known_edges():
    """The checker itself: module-level, function-level and relative imports are all edges."""
    g = import_graph()
    assert len(g) > 40
    assert "insightql.compiler.syntax.parser" in g["insightql.compiler.pipeline"]
    assert "insightql.compiler.plan.passes.refs" in g["insightql.compiler.plan.passes.cse"]
    # a function-level import (runtime/launch/party.py imports secure_ops inside run code)
    assert "insightql.runtime.secure.secure_ops" in g["insightql.runtime.launch.party"]


def test_cycle_finder_finds_a_cycle():
    g = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    comps = strongly_connected(g)
    assert comps == [["a", "b", "c"]]
    assert cycle_path(g, comps[0]) == "a (line 1) -> b (line 2) -> c (line 3) -> a"


def test_no_import_cycles():
    g = import_graph()
    cycles = [cycle_path(g, c) for c in strongly_connected(g)]
    assert not cycles, "import cycles (imports inside functions count):\n" + "\n".join(cycles)


def test_no_dynamic_imports():
    """__import__ / importlib.import_module would hide edges from the graph (and, around CLI
    subcommands, turn an ImportError into a missing command)."""
    found = []
    for m, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                if (isinstance(f, ast.Name) and f.id == "__import__") or (
                        isinstance(f, ast.Attribute) and f.attr == "import_module"):
                    found.append(f"{m}:{node.lineno}")
    assert not found, "dynamic imports: " + ", ".join(found)


def _imports_of(layer: str) -> list[tuple[str, str, int]]:
    mods = package_modules()
    return [(m, target, line) for m, path in mods.items() if m.startswith(layer + ".") or m == layer
            for target, line in imported_names(m, path)]


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted({f"{m}:{line} imports {t}" for m, t, line in _imports_of(layer)
                   if any(t == f or t.startswith(f + ".") for f in forbidden)})


def test_stdlib_imports_neither_compiler_nor_runtime():
    bad = _violations("insightql.stdlib", ("insightql.compiler", "insightql.runtime"))
    assert not bad, "\n".join(bad)


def test_compiler_never_imports_runtime():
    bad = _violations("insightql.compiler", ("insightql.runtime",))
    assert not bad, "\n".join(bad)


def test_only_runtime_imports_mpyc():
    bad = _violations("insightql.compiler", ("mpyc",)) + _violations("insightql.stdlib", ("mpyc",))
    assert not bad, "\n".join(bad)


def test_compile_only_commands_never_import_mpyc():
    """`iq check|fmt|compile|explain|diff|catalog|schema` (runtime/cli/query.py) stay fast for CI:
    neither the CLI modules nor these commands load MPyC."""
    code = """
import contextlib, io, sys
from insightql.runtime.cli import main
q = 'examples/victims_by_exploitation.iq'
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main(['check', q]), main(['fmt', q]), main(['explain', q]), main(['schema', 'plan'])]
print(codes, sorted(m for m in sys.modules if m.split('.')[0] == 'mpyc'))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0, 0, 0, 0] []", r.stdout


def test_every_subcommand_is_registered():
    """Every command group registers explicitly (no import that fails quietly drops a command)."""
    from insightql.runtime.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == ["check", "fmt", "compile", "explain", "diff", "run", "party", "report", "catalog", "schema",
                                 "keygen", "approve", "revoke", "verify", "audit", "certs", "lsp"]
    for name, p in sub.choices.items():
        if name != "audit":
            assert p.get_default("fn") is not None, name
    audit = next(a for a in sub.choices["audit"]._actions if a.dest == "audit_command")
    assert list(audit.choices) == ["verify", "show", "prove", "head", "verify-heads", "compare", "report"]
    assert all(p.get_default("fn") is not None for p in audit.choices.values())


def test_a_command_imports_only_its_group():
    """`iq COMMAND` registers only COMMAND's group in full (spec/runtime.md, "Fixed cost of a small
    run": `iq run` used to import audit, governance and certs, with pydantic and cryptography,
    before any party started); the others are named only, and each command's options, help and
    handler are those of the full parser."""
    from insightql.runtime.cli import GROUPS, build_parser

    def commands(parser):
        return next(a for a in parser._actions if a.dest == "command").choices

    full = commands(build_parser())
    assert [name for names, _ in GROUPS for name in names] == list(full)  # a new command is named in GROUPS
    for names, _ in GROUPS:
        for name in names:
            only = commands(build_parser(name))
            assert list(only) == list(full), name
            assert only[name].format_help() == full[name].format_help(), name
            assert only[name].get_default("fn") is full[name].get_default("fn"), name
    code = """
import sys
from insightql.runtime.cli import build_parser
build_parser('run')
print(sorted(m for m in ('insightql.runtime.cli.audit', 'insightql.runtime.cli.governance',
                         'insightql.runtime.cli.lsp', 'insightql.runtime.launch.certs') if m in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
