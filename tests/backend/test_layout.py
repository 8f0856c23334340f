"""The backend's shape: no import circles, no module reaching into another's private names, and the
pieces the QGIS process imports stay free of torch."""

import ast
import os
import subprocess
import sys

from tests.backend.conftest import REPO

BACKEND = os.path.join(REPO, "backend")


def _modules():
    """Every backend module by dotted name → its parsed source."""
    out = {}
    for folder, _, files in os.walk(BACKEND):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                rel = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
                with open(path, encoding="utf-8") as f:
                    out[rel] = ast.parse(f.read(), path)
    return out


def _resolve(module, node, known):
    """Dotted backend modules that an import node pulls in (function-level imports included)."""
    found = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if module in known and _is_package(module) else module.rsplit(".", 1)[0]
            for _ in range(node.level - 1):
                package = package.rsplit(".", 1)[0]
            base = f"{package}.{base}" if base else package
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    for name in names:
        while name and name not in known:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        if name.startswith("backend"):
            found.append(name)
    return found


def _is_package(module):
    return os.path.isfile(os.path.join(REPO, *module.split("."), "__init__.py"))


def _graph():
    modules = _modules()
    graph = {}
    for name, tree in modules.items():
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_resolve(name, node, modules))
        edges.discard(name)
        # a package's __init__ is not an import of its own submodules' parent circle
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    return graph


def test_there_is_no_import_circle_in_the_backend():
    graph = _graph()
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles: " + "; ".join(" → ".join(c) for c in circles)


def test_no_module_imports_the_command_line():
    importers = [m for m, edges in _graph().items() if "backend.cli" in edges and m != "backend.__main__"]
    assert importers == []


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("backend", ""):
                offenders += [f"{name}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


def test_the_pieces_the_plugin_imports_never_load_torch():
    code = ("import sys; import backend.protocol, backend.manifest, backend.cli; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
