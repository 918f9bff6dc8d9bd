"""The layer rule, checked over the source: no module imports a layer above its own.

Lowest first: db ← ingest ← incidents ← notify ← history ← ops ← wiring ← cli. A module may
import its own layer or lower ones. `config`, `errors`, `durations` (time helpers) and the
package itself (`__version__`) are the base: every layer may import them, and they import only
each other. `wiring` is the composition root: it builds the engine and the clock for the CLI,
so it may import everything below the CLI, and only the CLI imports it. Imports inside
functions count too: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = "incidentctl"
LAYERS = ("db", "ingest", "incidents", "notify", "history", "ops", "wiring", "cli")
# "" is the package's __init__; slicing: clip, chunks; counting: the counters of a run's summary
BASE = ("", "config", "errors", "durations", "slicing", "counting")
ENTRY_POINTS = {"__main__": "cli"}  # `python -m incidentctl` runs the CLI


def module_name(path: Path, root: Path) -> str:
    """incidentctl/db/schema.py → incidentctl.db.schema; a package's __init__ is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer a module of the package belongs to ("base" for the shared ones), None if unplaced."""
    rest = module.split(".")[1:]
    top = rest[0] if rest else ""
    if top in BASE:
        return "base"
    if top in ENTRY_POINTS:
        return ENTRY_POINTS[top]
    return top if top in LAYERS else None


def rank(layer: str) -> int:
    return -1 if layer == "base" else LAYERS.index(layer)


def imported_modules(module: str, is_package: bool, source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import of the package's modules, at any depth of the code.
    `from incidentctl.x import y` names incidentctl.x.y when that is a module, else incidentctl.x."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else target))
    return [(line, name) for line, name in found if name == PACKAGE or name.startswith(PACKAGE + ".")]


def layer_violations(sources: dict[str, tuple[bool, str]]) -> list[str]:
    """Every import of a higher layer in these modules ({name: (is_package, source)}), as
    "module:line → imported (layer X imports layer Y above it)"; a module in no layer is one too."""
    known = set(sources)
    problems = []
    for module, (is_package, source) in sorted(sources.items()):
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{module}: in no layer (add it to LAYERS or BASE in tests/test_layers.py)")
            continue
        for line, imported in imported_modules(module, is_package, source, known):
            target = layer_of(imported)
            if target is None:
                problems.append(f"{module}:{line} → {imported}: in no layer")
            elif rank(target) > rank(layer):
                problems.append(f"{module}:{line} → {imported} (layer {layer} imports layer {target} above it)")
    return problems


def package_sources() -> dict[str, tuple[bool, str]]:
    return {module_name(path, ROOT): (path.name == "__init__.py", path.read_text(encoding="utf-8"))
            for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def test_no_module_imports_a_layer_above_its_own():
    problems = layer_violations(package_sources())
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_layer_is_a_place_in_the_package():
    # A renamed package would otherwise leave its layer empty and the rule vacuous.
    for name in LAYERS + BASE[1:]:
        assert (ROOT / PACKAGE / name).is_dir() or (ROOT / PACKAGE / f"{name}.py").is_file(), name
    modules = package_sources()
    assert {layer_of(m) for m in modules} == set(LAYERS) | {"base"}


CASES = [
    # a lower layer, the base, the own layer and third-party modules are fine
    ("incidentctl.notify.digest", "from incidentctl.db.schema import incidents\nimport sqlalchemy\n"
     "from incidentctl.durations import utc_now\nfrom incidentctl.notify import outbox\n", []),
    # the receiver reading the clock from the composition root
    ("incidentctl.ingest.receiver.server", "from incidentctl.wiring import utc_now\n",
     ["incidentctl.ingest.receiver.server:1 → incidentctl.wiring (layer ingest imports layer wiring above it)"]),
    # an import inside a function counts
    ("incidentctl.db.migrations", "def up(conn):\n    from incidentctl.incidents.store import label_rows\n",
     ["incidentctl.db.migrations:2 → incidentctl.incidents.store (layer db imports layer incidents above it)"]),
    # `from package import module` is the module's layer, not the package's
    ("incidentctl.ops.doctor", "from incidentctl import wiring\n",
     ["incidentctl.ops.doctor:1 → incidentctl.wiring (layer ops imports layer wiring above it)"]),
    # `from incidentctl import __version__` is the base
    ("incidentctl.ingest.receiver.metrics", "from incidentctl import __version__\n", []),
    # a relative import is resolved against the module's package
    ("incidentctl.notify.outbox", "from ..history import stats\n",
     ["incidentctl.notify.outbox:1 → incidentctl.history.stats (layer notify imports layer history above it)"]),
    # the base imports only the base
    ("incidentctl.config", "from incidentctl.durations import parse_duration\nimport incidentctl.db.engine\n",
     ["incidentctl.config:2 → incidentctl.db.engine (layer base imports layer db above it)"]),
    # the CLI may import the composition root, and `python -m` is the CLI
    ("incidentctl.__main__", "from incidentctl.cli import main\nfrom incidentctl.wiring import Context\n", []),
    # a new top-level module must be placed
    ("incidentctl.helpers", "",
     ["incidentctl.helpers: in no layer (add it to LAYERS or BASE in tests/test_layers.py)"]),
]


@pytest.mark.parametrize("module, source, expected", CASES, ids=[c[0] for c in CASES])
def test_layer_violations(module, source, expected):
    known = {"incidentctl.wiring", "incidentctl.history.stats", "incidentctl.notify.outbox", "incidentctl.cli"}
    sources = {module: (False, source)} | {k: (k == "incidentctl.cli", "") for k in known if k != module}
    assert layer_violations(sources) == expected
