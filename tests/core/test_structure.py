"""The core's structure: no import cycle among its modules (every import counts: top-level, in functions, and under
TYPE_CHECKING), folders on floors that only import the floors below, file names that say what they hold, no file
over 400 lines, and one version source per distribution."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core" / "anymae"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges() -> dict[str, set[str]]:
    """module -> the core modules it imports (``from .x import y`` names ``x``, or ``x.y`` when ``y`` is a module)."""
    files = {module_name(p): p for p in CORE.rglob("*.py")}
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    module = f"{base}.{node.module}" if node.module else base
                else:
                    module = node.module or ""
                submodules = [f"{module}.{alias.name}" for alias in node.names]
                # ``from . import x`` imports the module x, not the package's own names
                targets = submodules if all(t in files for t in submodules) else [module, *submodules]
            else:
                continue
            for target in targets:
                if target in files and target != name:
                    edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_core():
    edges = import_edges()
    assert (
        "anymae.plugins.loader" in edges and "anymae.plugins.registry" in edges["anymae.plugins.loader"]
    )  # the scan sees imports
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


#: The core's folders (and top-level modules), floor by floor: a floor imports only the floors below it.
FLOORS = (
    {"config", "errors", "lazy"},
    {"plugins"},
    {"model", "data"},
    {"masking"},
    {"training"},
    {"evaluation"},
    {"cli", "testing"},
)


def test_each_floor_imports_only_the_floors_below():
    floor = {name: level for level, names in enumerate(FLOORS) for name in names}
    edges = import_edges()
    for source, targets in edges.items():
        if source == "anymae":  # the package face: lazy names, imported by nothing inside
            continue
        mine = floor[source.split(".")[1]]
        for target in targets:
            theirs = floor.get(target.split(".")[1]) if target != "anymae" else None
            if theirs is None or target.split(".")[1] == source.split(".")[1]:
                continue
            assert theirs < mine, f"{source} (floor {mine}) imports {target} (floor {theirs})"


def test_only_learned_maskers_import_the_models_parts():
    """The fixed maskers see tokens and their layout (model.types, model.specs); the learned ones (masking/learned)
    may build on the encoder, its layers and the decoders."""
    for source, targets in import_edges().items():
        if source.startswith("anymae.masking") and not source.startswith("anymae.masking.learned"):
            parts = {
                t
                for t in targets
                if t.startswith("anymae.model") and t not in {"anymae.model.types", "anymae.model.specs"}
            }
            assert not parts, f"{source} imports {sorted(parts)}"


def test_no_file_of_the_core_is_over_400_lines():
    long = {str(p.relative_to(CORE)): n for p in CORE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_masker_files_are_named_after_their_classes():
    import re

    for path in (CORE / "masking").glob("*.py"):
        if path.name in {"__init__.py", "base.py"}:
            continue
        classes = re.findall(r"^class (\w+)\(", path.read_text(), re.M)
        snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", c).lower().removesuffix("_masker") for c in classes}
        assert path.stem in snake, f"{path.name} holds {classes}"


def test_one_version_source_per_distribution_and_the_plugins_released_with_the_core():
    """Each distribution reads its version from its package's ``__version__`` (pyproject's ``dynamic``); the plugins
    of this repository are released with the core, pinned to it."""
    import importlib
    import importlib.metadata

    import tomllib

    import anymae

    root = CORE.parents[1]
    assert 'dynamic = ["version"]' in (root / "pyproject.toml").read_text()
    assert importlib.metadata.version("anymae") == anymae.__version__
    for folder in sorted((root / "plugins").iterdir()):
        if folder.name.startswith("_") or not (folder / "pyproject.toml").is_file():
            continue
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        package = importlib.import_module(project["name"].replace("-", "_"))
        assert project["dynamic"] == ["version"] and "version" not in project, folder.name
        assert package.__version__ == anymae.__version__ == importlib.metadata.version(project["name"])
        extras = project.get("optional-dependencies", {}).values()
        pins = [*project["dependencies"], *(d for group in extras for d in group)]
        assert f"anymae=={anymae.__version__}" in pins, folder.name
        assert all(p.endswith(f"=={anymae.__version__}") for p in pins if p.startswith("anymae")), pins


def test_each_public_name_is_exported_by_the_module_the_index_names():
    """`anymae`'s lazy index (module -> names) and the modules' own `__all__` agree, and the index names each
    public name once: `from anymae import X` and `from anymae.<module> import X` give the same object."""
    import importlib

    import anymae

    seen: set[str] = set()
    for module, names in anymae._EXPORTS.items():
        leaf = importlib.import_module(module, "anymae")
        for name in names.split():
            assert name not in seen, f"{name} is indexed twice"
            seen.add(name)
            assert name in leaf.__all__, f"{name} is indexed under {module}, whose __all__ does not list it"
            assert getattr(anymae, name) is getattr(leaf, name)
    assert sorted(seen | {"__version__"}) == anymae.__all__
