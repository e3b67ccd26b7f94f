"""The layers of the code base: no module imports a module of a higher layer, and the
command line starts without loading torch."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import REPO

# Lowest first: each layer is a folder (or a few), so the tree shows the layers. A module
# belongs to the layer of the longest package prefix of its name; the package facade is
# ``dreampose/__init__.py`` alone (no other module may sit loose in ``dreampose/``).
LAYERS = (
    ("base", ("dreampose.base",)),
    ("media", ("dreampose.media",)),
    ("pose extraction", ("pose_extraction",)),
    ("model", ("dreampose.model",)),
    ("model setup", ("dreampose.setup",)),
    ("loading", ("dreampose.runtime",)),
    (
        "work",
        (
            "dreampose.rendering",
            "dreampose.training",
            "dreampose.evaluation",
            "dreampose.world",  # the drawn-people world and its demo-model recipe
        ),
    ),
    ("app and command line", ("dreampose.app", "dreampose.cli", "dreampose.__main__")),
    ("package facade", ("dreampose",)),  # dreampose/__init__.py: lazy names for users
    ("page", ("dreampose.app.page", "app")),  # the Gradio page: its step modules and app.py
)
FACADE = "dreampose"
# Siblings in one layer that must not import each other: the app and the command line share
# what lies below them, never each other's modules.
SEPARATE = (("dreampose.app", "dreampose.cli"), ("dreampose.cli", "dreampose.app"), ("app", "dreampose.cli"))


def _within(module: str, prefix: str) -> bool:
    if prefix == FACADE:
        return module == FACADE
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    found = [
        (len(p), rank) for rank, (_, prefixes) in enumerate(LAYERS) for p in prefixes if _within(module, p)
    ]
    return max(found)[1] if found else None


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str) -> set[str]:
    """Every project module ``source`` imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in ("dreampose", "pose_extraction", "app")}


def upward_imports(module: str, source: str) -> list[str]:
    """The imports in ``source`` (the text of ``module``) that reach a higher layer."""
    own = layer_of(module)
    found = []
    for name in sorted(imported_modules(source)):
        target = layer_of(name)
        # `from dreampose import x` names the package itself, which is not its facade.
        if target is not None and target > own and name != FACADE:
            found.append(f"{name} ({LAYERS[target][0]})")
    return found


SOURCES = sorted(
    [*(REPO / "dreampose").rglob("*.py"), *(REPO / "pose_extraction").rglob("*.py"), REPO / "app.py"]
)


def test_every_module_has_a_layer():
    assert [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None] == []


def test_no_module_lies_loose_in_the_package():
    """Every module of ``dreampose`` lives in the folder of its layer; only the entry points
    (the facade and ``python -m dreampose``) sit at the top."""
    loose = sorted(p.name for p in (REPO / "dreampose").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def sibling_imports(module: str, source: str) -> list[str]:
    """The imports in ``source`` (the text of ``module``) of a sibling it must keep apart from."""
    return sorted(
        name
        for name in imported_modules(source)
        for own, other in SEPARATE
        if _within(module, own) and _within(name, other)
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_app_and_the_command_line_import_only_what_lies_below_them(path):
    assert sibling_imports(module_name(path), path.read_text()) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_a_higher_layer(path):
    assert upward_imports(module_name(path), path.read_text()) == []


def test_the_check_catches_upward_imports_also_inside_functions():
    source = "def f():\n    from dreampose.rendering.frames import render_frames\n"
    assert "dreampose.rendering.frames (work)" in upward_imports("pose_extraction.visualize", source)
    assert upward_imports("dreampose.cli.render", source) == []
    assert upward_imports("dreampose.model.pipeline", "from dreampose import model\n") == []
    assert "dreampose.model (model)" in upward_imports("dreampose.media.images", "import dreampose.model\n")
    assert layer_of("dreampose.oops") is None, "a loose module has no layer"
    assert upward_imports("dreampose.app.service", "import dreampose.app.page.wiring\n") != []
    assert "dreampose.cli.options" in sibling_imports("app", "from dreampose.cli.options import x\n")


@pytest.mark.parametrize(
    "command", [[], ["render"], ["preview"], ["finetune"], ["train"], ["extract-poses"], ["download"]]
)
def test_help_loads_neither_torch_nor_diffusers(command):
    """`dreampose --help` must be instant: heavy libraries load only in the command that runs."""
    code = (
        "import sys\n"
        "from dreampose.cli import main\n"
        "try:\n"
        f"    main({[*command, '--help']!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'gradio') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-2000:]
