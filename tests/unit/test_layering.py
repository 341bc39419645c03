"""The package's floors, checked statically (ast; nothing is imported or run).

- The pure core (client/, jobs/, formats/, batch/ and the top-level modules) imports
  no Blender module and nothing of hiptah_blender.blender: it runs without Blender and
  the Blender layer translates between the two (docs/INTERFACES.md, "Conventions").
- No import circle among hiptah_blender's modules. Every import counts: top-level,
  inside functions and under TYPE_CHECKING, since a lazy import still ties the two
  modules together.
- No module is much longer than 500 lines (one job per module).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hiptah_blender"
PURE_PACKAGES = ("client", "jobs", "formats", "batch")
BLENDER_MODULES = {
    "addon_utils", "aud", "bgl", "blf", "bmesh", "bpy", "bpy_extras", "gpu", "gpu_extras",
    "idprop", "imbuf", "mathutils",
}  # and every bl_* module
MAX_LINES = 520  # "about 500"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "wheels" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import x" names a module when x is one, else a name in the package.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return out


def _is_pure(name: str) -> bool:
    parts = name.split(".")[1:]
    if not parts:
        return False  # the root package: its register() reaches into the Blender layer
    if parts[0] in PURE_PACKAGES:
        return True
    return len(parts) == 1 and not _is_package(name)  # a top-level module (textfit, ...)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        graph[name] = {target for target, _ in _imports(name) if target in MODULES and target != name}
    return graph


def test_the_scan_sees_the_package() -> None:
    # Guards against a test that passes by finding nothing.
    assert "hiptah_blender.jobs.scheduler" in MODULES and "hiptah_blender.blender.runtime" in MODULES
    assert _is_pure("hiptah_blender.jobs.scheduler") and _is_pure("hiptah_blender.textfit")
    assert _is_pure("hiptah_blender.batch") and not _is_pure("hiptah_blender.blender.runtime")
    assert not _is_pure("hiptah_blender")
    assert "bpy" in {t for t, _ in _imports("hiptah_blender.blender.runtime")}
    graph = _graph()
    assert "hiptah_blender.jobs.records" in graph["hiptah_blender.jobs.scheduler"]
    assert "hiptah_blender.blender.settings" in graph["hiptah_blender.blender.preferences"]
    # "from . import runtime" names the module, not the package.
    assert "hiptah_blender.blender.runtime" in graph["hiptah_blender.blender"]


def test_pure_core_imports_no_blender() -> None:
    offences = []
    for name in MODULES:
        if not _is_pure(name):
            continue
        for target, line in _imports(name):
            top = target.split(".")[0]
            if top in BLENDER_MODULES or top.startswith("bl_"):
                offences.append(f"{name}:{line} imports {target}")
            elif target == "hiptah_blender.blender" or target.startswith("hiptah_blender.blender."):
                offences.append(f"{name}:{line} imports {target} (an upward import)")
    assert not offences, "\n".join(sorted(set(offences)))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # The root package's register() imports the Blender layer, which imports the
    # package's modules; a module never imports the root package itself.
    graph["hiptah_blender"] = set()
    cycles = _cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_modules_stay_small() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split along a seam): {long}"
