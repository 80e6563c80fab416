"""The structure holds: one direction of imports (import-linter's contracts in pyproject.toml), every module
placed in a layer, lazy imports only where start-up time needs them, one handler per command."""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

# Imports of project modules inside functions, and why each stays there. Command-line modules import the
# machinery of their command when it runs (`vj --help` takes 0.16 s; importing every command's machinery
# up front would load torch, numba and OpenCV first); the rest load torch or numba only when used.
LAZY = {
    "vj/cli/": "a command's machinery loads when the command runs",
    "gan/cli.py": "a command's machinery loads when the command runs",
    "mosaic/cli.py": "a command's machinery loads when the command runs",
    "vj/sources/generator.py": "torch and gan/ load when a generator is made, not with the scene",
    "vj/core/features": "torch and timm load when features are computed, not for posters or the live view",
    "mosaic/fitsne": "numba loads when a t-SNE runs",
}


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "broken" not in proc.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_every_vj_module_is_placed_and_forbidden_to_the_pipelines():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    modules = {p.stem if p.is_file() else p.name for p in (ROOT / "vj").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    forbidden = {c["name"]: {m.removeprefix("vj.") for m in c["forbidden_modules"]} for c in config
                 if c["type"] == "forbidden"}
    for name, mods in forbidden.items():
        assert modules - {"core"} <= mods, f"{name}: add {sorted(modules - {'core'} - mods)}"
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    placed = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    assert placed == modules


def _function_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.If)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.col_offset > 0 \
                        and node.module.split(".")[0] in ("vj", "gan", "mosaic"):
                    found.append(node.module)
    return found


def test_project_imports_inside_functions_are_only_the_lazy_ones():
    stray = []
    for package in ("vj", "gan", "mosaic"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(k) for k in LAZY):
                continue
            for module in _function_level_imports(path):
                if not any(module.replace(".", "/").startswith(k) for k in LAZY):
                    stray.append(f"{rel}: {module}")
    assert not stray, "move these imports to the top of their module (or say in LAZY why they wait): " + \
        ", ".join(sorted(set(stray)))


def test_every_command_has_one_handler(show):
    from vj.commands import COMMANDS
    from vj.engine import Engine
    from vj.scene import load_scene

    _, scene, _ = show
    engine = Engine(load_scene(scene), exact=True)
    try:
        assert set(engine.handlers) == set(COMMANDS)
    finally:
        engine.close()
