"""The notebooks' sources (notebooks/src/*.py, percent format): the committed notebooks are what they say, and
every import and ``wb.`` name they use exists, checked without running them (the notebooks themselves run under
nbmake in the same suite)."""

import ast
import importlib
import importlib.util
import json
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parent.parent


def generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = generator()
NAMES = sorted(GEN.sources())


def parsed(name: str) -> ast.Module:
    text = (GEN.SOURCES / f"{name}.py").read_text()
    return compile(text, f"{name}.py", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks == NAMES and len(NAMES) >= 7


def test_every_notebook_starts_with_the_one_setup_cell():
    setup = (GEN.SOURCES / "_setup.py").read_text().strip("\n")
    for name, cells in GEN.sources().items():
        assert [text for kind, text in cells if kind == "code"][0] == setup, name


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_notebook_is_its_source(name):
    """``python scripts/make_notebooks.py`` has been run: the notebook's cells are the source's, in order."""
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    committed = [("md" if c["cell_type"] == "markdown" else "code", "".join(c["source"])) for c in cells]
    assert committed == GEN.sources()[name], f"run: python scripts/make_notebooks.py (then --execute {name})"


def setup_names() -> set[str]:
    """What the shared setup cell (notebooks/src/_setup.py) defines."""
    names = set()
    for node in ast.parse((GEN.SOURCES / "_setup.py").read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            names |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


@pytest.mark.parametrize("name", NAMES)
def test_what_a_notebook_imports_and_calls_on_wb_exists(name):
    tree = parsed(name)
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "_setup":  # the shared setup cell
            missing += [f"_setup.{a.name}" for a in node.names if a.name not in setup_names()]
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)
                        and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "wb":
            if not hasattr(wb, node.attr):
                missing.append(f"wb.{node.attr}")
    assert not missing, f"{name} uses names that do not exist: {missing}"


def test_a_source_with_an_unknown_cell_marker_or_stray_text_is_refused(tmp_path):
    bad = tmp_path / "99_bad.py"
    bad.write_text("# %% [raw]\nx = 1\n")
    with pytest.raises(SystemExit, match="unknown cell marker"):
        GEN.read_source(bad)
    bad.write_text("x = 1\n# %%\ny = 2\n")
    with pytest.raises(SystemExit, match="before the first"):
        GEN.read_source(bad)
    bad.write_text("# %% [markdown]\n# Title\nnot a comment\n")
    with pytest.raises(SystemExit, match="markdown cell's lines are comments"):
        GEN.read_source(bad)
    bad.write_text("# %% [markdown]\n# # Title\n#\n#  indented\n\n# %%\nprint(1)\n\n\n")
    assert GEN.read_source(bad) == [("md", "# Title\n\n indented"), ("code", "print(1)")]
