"""No module imports from a layer above its own (checked on the source, so a new module is covered too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "workbench"

#: lowest first; a module may import its own layer and those below
LAYERS = [
    {"errors", "types", "paths", "answers", "escaping", "provenance", "stats"},
    {"settings", "specs"},
    {"records"},
    {"events", "shutdown", "testing", "scripted_server"},
    {"backends", "availability"},
    {"storage", "render", "policy", "serving", "context"},
    {"fusion"},
    {"eval", "serve", "experiments"},
    {"ui", "app_cli", "cli", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top(module_path: Path) -> str:
    rel = module_path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def imported(path: Path) -> set[str]:
    """workbench's top-level modules that ``path`` imports (absolute or relative, at any depth)."""
    pkg = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[:len(pkg) - node.level + 1])
                names = base + (node.module.split(".") if node.module else [])
                if len(names) == 1:  # "from .. import plots"
                    out |= {a.name for a in node.names}
                else:
                    out.add(names[1])
            elif node.module and node.module.startswith("workbench."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("workbench.")}
    return out


def test_every_module_imports_only_its_layer_or_below():
    bad = []
    for path in ROOT.rglob("*.py"):
        mine = top(path)
        for dep in imported(path) - {mine}:
            if dep in LAYER and LAYER[dep] > LAYER[mine]:
                bad.append(f"{path.relative_to(ROOT)} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_every_top_level_module_has_a_layer():
    names = {top(p) for p in ROOT.rglob("*.py")}
    assert names <= set(LAYER), names - set(LAYER)
