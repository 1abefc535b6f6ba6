"""The package's import graph, read from the source with ``ast``: no cycle
(imports inside functions count), and the command line on top of everything:
no module outside ``nn_gpu/cli/`` imports ``nn_gpu.cli``."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nn_gpu"


def module_name(path):
    parts = ["nn_gpu", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, modules):
    """The nn_gpu modules ``path`` imports, anywhere in the file. ``from X
    import name`` counts as importing the submodule X.name where there is one,
    else X itself."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {module for module in found if module in modules and module != name}


def import_graph():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, paths) for name, path in paths.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "nn_gpu.network" in graph["nn_gpu.training"] or "nn_gpu.training" in graph[
        "nn_gpu.network"]
    assert {"nn_gpu.cli.train", "nn_gpu.cli.sweep"} <= graph["nn_gpu.cli"]
    assert "nn_gpu.sweep.study" in graph["nn_gpu.cli.sweep"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_only_the_command_line_imports_the_command_line():
    offenders = sorted(module for module, targets in import_graph().items()
                       if not module.startswith("nn_gpu.cli") and module != "nn_gpu.__main__"
                       and any(t == "nn_gpu.cli" or t.startswith("nn_gpu.cli.") for t in targets))
    assert offenders == []
