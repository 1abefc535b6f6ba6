"""The package's import graph, read from the source with ``ast`` (imports
inside functions count): no cycle, and every import goes down :data:`LAYERS`,
the code map the folders draw (the command line on top, errors and options
at the bottom)."""

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


#: The layers, bottom first, as package (or module) prefixes: a module may
#: import modules of its own layer and of the layers below it, never above.
LAYERS = [
    ["nn_gpu.errors", "nn_gpu.options", "nn_gpu.version"],
    ["nn_gpu.io"],
    ["nn_gpu.data"],
    ["nn_gpu.backends"],
    ["nn_gpu.training"],
    ["nn_gpu.model"],
    ["nn_gpu.convnet"],
    ["nn_gpu.presets"],
    ["nn_gpu.analysis"],
    ["nn_gpu.reading"],
    ["nn_gpu.bench"],
    ["nn_gpu.sweep"],
    ["nn_gpu.serve"],
    ["nn_gpu.cli", "nn_gpu.__main__"],
    ["nn_gpu"],  # the package's __init__: the public names
]


def layer_of(module, layers=LAYERS):
    """The index of the layer ``module`` belongs to: its longest matching prefix."""
    best, index = "", None
    for i, prefixes in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    return index


def upward_imports(graph, layers=LAYERS):
    """(module, imported) pairs where a module imports one of a higher layer."""
    return sorted((module, target) for module, targets in graph.items() for target in targets
                  if layer_of(target, layers) > layer_of(module, layers))


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "nn_gpu.training.loop" in graph["nn_gpu.model.base"]
    assert {"nn_gpu.cli.train", "nn_gpu.cli.sweep"} <= graph["nn_gpu.cli"]
    assert "nn_gpu.sweep.study" in graph["nn_gpu.cli.sweep"]  # imported inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_has_a_layer():
    assert [module for module in import_graph() if layer_of(module) is None] == []


def test_an_upward_import_is_caught():
    layers = [["p.low"], ["p.high"]]
    graph = {"p.low.a": {"p.high.b"}, "p.high.b": {"p.low.c"}, "p.low.c": set()}
    assert upward_imports(graph, layers) == [("p.low.a", "p.high.b")]


def test_imports_go_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None
