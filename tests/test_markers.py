"""`pytest -m "not slow"` stays a quick loop: every test that starts a process is marked slow.

A source scan: a test "starts a process" when it, a module-level helper or fixture it reaches, or a
parameter (fixture) it takes names one of STARTS_PROCESSES."""

from __future__ import annotations

import ast
import textwrap

import pytest

from tests.support import ROOT

STARTS_PROCESSES = {"subprocess", "ServeProcess", "AlertmanagerProcess", "run_cli", "console_script",
                    "incidentctl_bin", "galera_cluster"}


def _is_slow(decorators) -> bool:
    return any("mark.slow" in ast.unparse(d) for d in decorators)


def unmarked_process_tests(source: str) -> list[str]:
    """Names of the tests in `source` that start a process and are not marked slow."""
    tree = ast.parse(source)
    module_slow = any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets)
                      and "mark.slow" in ast.unparse(node.value) for node in tree.body)
    functions = {node.name: node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def names(fn) -> set[str]:
        params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        return params | {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}

    reaches = {name: names(fn) for name, fn in functions.items()}
    starts = {name for name, used in reaches.items() if used & STARTS_PROCESSES}
    while True:  # helpers and fixtures of the module that reach one that starts a process
        more = {name for name, used in reaches.items() if name not in starts and used & starts}
        if not more:
            break
        starts |= more
    marked = {name for name, fn in functions.items() if _is_slow(fn.decorator_list)}
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        if _is_slow(cls.decorator_list):
            marked |= {fn.name for fn in cls.body if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if module_slow:
        return []
    return sorted(name for name in starts if name.startswith("test") and name not in marked)


def _test_modules():
    return sorted((ROOT / "tests").rglob("test_*.py"))


@pytest.mark.parametrize("path", _test_modules(), ids=lambda p: str(p.relative_to(ROOT / "tests")))
def test_every_test_that_starts_a_process_is_marked_slow(path):
    assert unmarked_process_tests(path.read_text()) == [], f"{path.name}: mark these @pytest.mark.slow"


def test_the_scan_finds_an_unmarked_process_through_a_helper_or_a_fixture():
    source = textwrap.dedent('''
        import subprocess
        import pytest

        def _run(*args):
            return subprocess.run(args)

        @pytest.fixture
        def server(incidentctl_bin):
            yield incidentctl_bin

        def test_helper():
            _run("ls")

        def test_fixture(server):
            pass

        @pytest.mark.slow
        def test_marked():
            _run("ls")

        def test_pure():
            assert 1 + 1 == 2
    ''')
    assert unmarked_process_tests(source) == ["test_fixture", "test_helper"]
    assert unmarked_process_tests("import pytest\npytestmark = pytest.mark.slow\n" + source) == []
