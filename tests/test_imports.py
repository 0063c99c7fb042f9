"""The domains' imports form no circle: a circle means two modules that cannot be read, or
changed, one without the other. Counted statically, `TYPE_CHECKING` imports included (they
are a dependency all the same)."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# The runs loop's circle goes with the plugin issue's tool interface (tools become plugins
# the executor calls through one interface); until then it is the only one.
KNOWN = [["app.runs.cancellation", "app.runs.executor", "app.runs.service", "app.runs.tools"]]


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in APP.rglob("*.py"):
        name = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app"):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    imported.add(submodule if submodule in modules else str(node.module))
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("app")}
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_no_module_imports_itself_through_others() -> None:
    assert circles(import_graph()) == KNOWN


def test_identity_resolution_depends_on_users_never_the_reverse() -> None:
    graph = import_graph()
    assert not {
        module for module in graph["app.users.service"] if module.startswith("app.auth")
    } - {
        "app.auth.identity",
        "app.auth.errors",
    }
    assert "app.users.service" in graph["app.auth.service"]
