"""The package's import structure: layers only import downwards, no cycles, no private names
across modules, and the two frameworks stay apart (``spiking.LAYERS`` defines the order)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spiking

PKG = Path(spiking.__file__).resolve().parent
FRAMEWORK_TORCH = ("torch", "snntorch", "neurobench")
FRAMEWORK_TF = ("tensorflow", "keras", "nengo", "nengo_dl")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every import in the file, at any depth (absolute names)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [a.name for a in node.names]
            # ``from spiking.x import y`` may name the sub-module spiking.x.y rather than a name of spiking.x
            subs = [n for n in names if (PKG.parent / f"{mod}.{n}".replace(".", "/")).is_dir()
                    or (PKG.parent / (f"{mod}.{n}".replace(".", "/") + ".py")).is_file()]
            if len(subs) < len(names):
                out.append((mod, names, node.lineno))
            out += [(f"{mod}.{n}", [], node.lineno) for n in subs]
    return out


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _layer(module: str) -> tuple[int, str] | None:
    for i, layer in enumerate(spiking.LAYERS):
        for pkg in layer:
            if module == pkg or module.startswith(pkg + "."):
                return i, pkg
    return None


def _internal(mod: str) -> str | None:
    """The package module that ``mod`` names (itself or the closest parent that exists)."""
    while mod:
        if mod in MODULES:
            return mod
        mod = mod.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    g = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for mod, _, _ in _imports(p):
            if mod.startswith("spiking"):
                target = _internal(mod)
                if target and target != m and target != "spiking":
                    g[m].add(target)
    return g


def test_every_module_is_in_a_layer():
    missing = [m for m in MODULES if m != "spiking" and _layer(m) is None]
    assert not missing, f"modules outside spiking.LAYERS: {missing}"


def test_imports_only_go_down_the_layers():
    bad = []
    for m, p in MODULES.items():
        src = _layer(m)
        if src is None:
            continue
        for mod, _, line in _imports(p):
            dst = _layer(mod) if mod.startswith("spiking.") else None
            if dst is None:
                continue
            if dst[0] > src[0] or (dst[0] == src[0] and dst[1] != src[1]):
                bad.append(f"{p.relative_to(PKG.parent)}:{line} {m} ({src[1]}) imports {mod} ({dst[1]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = _graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_across_modules():
    bad = []
    for m, p in MODULES.items():
        for mod, names, line in _imports(p):
            top = mod.split(".")[0]
            private_mod = any(part.startswith("_") and not part.startswith("__") for part in mod.split("."))
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if (mod.startswith("spiking") or top in FRAMEWORK_TORCH + FRAMEWORK_TF or top == "ray") and (
                    private_mod or private_names):
                bad.append(f"{p.relative_to(PKG.parent)}:{line} imports {mod} {private_names}")
    assert not bad, "private names imported:\n" + "\n".join(bad)


def _reach(start: str, g: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo += g[v]
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("spiking.keras")))
def test_keras_modules_never_reach_torch(module):
    g = _graph()
    bad = [(m, mod) for m in _reach(module, g) for mod, _, _ in _imports(MODULES[m])
           if mod.split(".")[0] in FRAMEWORK_TORCH]
    assert not bad, f"{module} reaches torch through {bad}"


def test_only_spiking_keras_imports_tensorflow():
    bad = [f"{p.relative_to(PKG.parent)}:{line} {mod}" for m, p in MODULES.items() if not m.startswith("spiking.keras")
           for mod, _, line in _imports(p) if mod.split(".")[0] in FRAMEWORK_TF]
    assert not bad, "TensorFlow/Nengo imported outside spiking.keras:\n" + "\n".join(bad)


def test_the_checks_see_a_violation(tmp_path, monkeypatch):
    """The walker reads function-level and relative imports (a check that sees nothing passes vacuously)."""
    f = PKG / "data" / "splits.py"
    found = {mod for mod, _, _ in _imports(f)}
    assert "spiking.data.preprocess.prepare" in found
    assert any(mod.startswith("spiking.") for mod, _, _ in _imports(PKG / "search" / "runner.py"))
    assert _layer("spiking.cli.main")[0] > _layer("spiking.data.ingest.shards")[0]


def test_module_docstrings_are_short():
    """Longer explanations belong in the README or docs/ (docs/modules.md)."""
    long = [m for m, p in MODULES.items()
            if (ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")), clean=False) or "").count("\n") >= 12]
    assert not long, f"module docstrings over 12 lines: {long}"


def test_the_readme_names_every_layer():
    readme = (PKG.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Architecture"):]
    missing = [pkg for layer in spiking.LAYERS for pkg in layer if pkg.split(".")[-1] not in section]
    assert not missing, f"README's Architecture section does not name {missing}"


def test_no_source_file_is_ignored_by_git(tmp_path):
    """A .gitignore pattern such as ``data/`` once hid spiking/data/__init__.py from every commit.

    The project's .gitignore is checked in a scratch repository, so the test also runs where the
    checkout has no .git folder.
    """
    import subprocess

    root = Path(spiking.__file__).resolve().parent.parent
    files = [str(p.relative_to(root)) for d in ("spiking", "tests", "benchmarks", "scripts")
             for p in (root / d).rglob("*.py") if "__pycache__" not in p.parts]
    assert "spiking/data/__init__.py" in files
    (tmp_path / ".gitignore").write_text((root / ".gitignore").read_text())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).touch()
    out = subprocess.run(["git", "check-ignore", *files], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.split() == [], f"ignored by .gitignore: {out.stdout.split()}"


def test_no_private_attributes_of_project_modules_are_used_across_modules():
    """``module._name`` (attribute access, which the import check does not see) across project modules."""
    import re

    root = Path(spiking.__file__).resolve().parent
    bad = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("spiking"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spiking"):
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and re.match(r"_[a-z]", node.attr)):
                bad.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.value.id}.{node.attr}")
    assert bad == []
