"""No import circle among the project's modules: every import of a ``sitewatch`` module
that runs, at the top of a file or inside a function, read from the source (nothing is
imported to find them); the type checker's own imports (``if TYPE_CHECKING:``) never
run and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: the project's packages, each a top-level folder whose name is its import name
PACKAGES = ("sitewatch", "edge", "ingest", "alerts", "api", "dashboards", "simulators")


def _modules() -> dict[str, Path]:
    """Every module of the project's packages, by its import name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for the type checker
    alone, which never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others() -> None:
    modules = _modules()
    assert len(modules) > 100  # the walk found the tree
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert graph["sitewatch.domains.schema"] >= {
        "sitewatch.core.db",
        "sitewatch.domains.accounts",
    }  # it reads
    assert _circles(graph) == []


def test_the_circle_finder_finds_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Who may import whom (docs/architecture.md): the shared core imports only itself; a
# domain imports the core and other domains; a service (edge, ingest, alerts, api)
# imports the core, the domains and itself, never another service; the simulators may
# also import the edge drivers' protocol code (they speak HJ 212 and Modbus as devices
# do); the programs assemble everything.
SERVICES = ("edge", "ingest", "alerts", "api")
RULES: dict[str, tuple[str, ...]] = {
    "core": ("core",),
    "domains": ("core", "domains"),
    **{s: ("core", "domains", s) for s in SERVICES},
    "dashboards": ("core", "domains", "dashboards"),
    "simulators": ("core", "domains", "simulators", "edge.drivers"),
    "programs": ("",),
}


def _path(name: str) -> str:
    """Where a module lives in the layout: ``sitewatch.core.db`` -> ``core.db``,
    ``alerts.rules.evaluate`` as it is; the ``sitewatch`` package itself -> ``""``."""
    if name == "sitewatch":
        return ""
    return name.removeprefix("sitewatch.")


def _room(name: str) -> str:
    """``alerts.rules.evaluate`` -> ``alerts``, ``sitewatch.core.db`` -> ``core``."""
    return _path(name).split(".")[0]


def _allowed(source: str, target: str) -> bool:
    if target == "sitewatch":  # the root package: the version, nothing else
        return True
    rest = _path(target)
    return any(rest == r or rest.startswith(r + ".") or r == "" for r in RULES[_room(source)])


def _violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source != "sitewatch"
        for target in targets
        if not _allowed(source, target)
    )


def test_every_module_lives_in_a_room_of_the_layout() -> None:
    rooms = {_room(name) for name in _modules()}
    assert rooms - {""} == set(RULES), "a folder that the import rules do not know"


def test_services_never_import_one_another_and_the_core_imports_no_domain() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _violations(graph) == []


def test_the_rule_check_finds_a_service_importing_another() -> None:
    graph = {
        "api.alerts": {"alerts.engine", "sitewatch.domains.alertrecords.store"},
        "sitewatch.core.db": {"sitewatch.domains.schema"},
        "simulators.hj212_monitor": {"edge.drivers.hj212.protocol"},
        "sitewatch.programs.cli": {"api.main", "edge.agent"},
    }
    assert _violations(graph) == [
        "api.alerts imports alerts.engine",
        "sitewatch.core.db imports sitewatch.domains.schema",
    ]
