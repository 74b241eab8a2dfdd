"""The package's layers hold: each module imports only its own layer and the layers below.

    leaf -> core -> evaluation -> applications

`LAYERS` places every module of the package: a new module must be placed there, or
`test_every_module_is_placed` fails naming it. A package placed as a whole (the
evaluation, plotting, cli, data) places every module under it. Three checks:

- statically (`ast`), every `tf_signsal` import of every module, the lazy ones inside
  functions included, points to its own layer or below (imports under `TYPE_CHECKING`
  are type hints and never run), but for the lazy links of `LAZY_UPWARD` (a result's
  `plot()`); and the extra rules of `FORBIDDEN` hold;
- in a fresh process, importing the modules layer by layer from the bottom loads no module
  of a higher layer (a module loaded for the first time while a lower layer's module is
  imported is a real upward import, direct or not);
- in a fresh process, the modules of `WITHOUT_TENSORFLOW` load no TensorFlow.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys

import pytest

LAYERS: dict[str, tuple[str, ...]] = {
    "leaf": (
        "tf_signsal",  # the package's __init__: the names, imported lazily (PEP 562)
        "tf_signsal.vocabulary",
        "tf_signsal._checks",
        "tf_signsal._io",
        "tf_signsal._random",
    ),
    "core": (
        "tf_signsal.attributions",
        "tf_signsal.gradients",
        "tf_signsal.maps",
        "tf_signsal.maps_io",  # the stored maps' files (read_maps): numpy, TF/pyarrow lazily
        "tf_signsal._data",
        "tf_signsal._model",  # what is read from a user's model: its input range, copies
        "tf_signsal.precision",  # the model the engine runs: the user's, or a bfloat16 copy
    ),
    # Orders, fills, ROAD, counts, the evaluator, its result, the sanity checks and
    # the pointing game: every module under tf_signsal/evaluation/.
    "evaluation": ("tf_signsal.evaluation",),
    "applications": (
        "tf_signsal.__main__",
        "tf_signsal.beam",  # the [beam] extra: Apache Beam imported with the module
        "tf_signsal.callbacks",
        "tf_signsal.cli",
        "tf_signsal.data",
        "tf_signsal.datasets",
        "tf_signsal.demo",
        "tf_signsal.loading",
        "tf_signsal.models",
        "tf_signsal.plotting",
        "tf_signsal.ray",  # the [ray] extra: Ray imported when called
        "tf_signsal.report",
        "tf_signsal.serving",
        "tf_signsal.training",
    ),
}

#: importer -> packages it may not import at run time even though they are below it.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Plotting takes plain arrays and mappings; `AllegianceResult.plot` is the one link.
    "tf_signsal.plotting": ("tf_signsal.evaluation",),
}

#: The lazy imports allowed upward, (importer, imported): a result's `plot()` draws it with
#: plotting, which never imports the evaluation back.
LAZY_UPWARD: tuple[tuple[str, str], ...] = (
    ("tf_signsal.evaluation.result", "tf_signsal.plotting"),
    ("tf_signsal.evaluation.sanity_result", "tf_signsal.plotting"),
)

#: Modules whose import must not load TensorFlow (numpy-only records, names, figures).
WITHOUT_TENSORFLOW: tuple[str, ...] = (
    "tf_signsal",
    "tf_signsal.vocabulary",
    "tf_signsal._checks",
    "tf_signsal._io",
    "tf_signsal.maps_io",
    "tf_signsal.evaluation.result",
    "tf_signsal.evaluation.sanity_result",
    "tf_signsal.evaluation.pointing",
    "tf_signsal.plotting",
    "tf_signsal.report",
)

#: Modules that do something when imported (`python -m tf_signsal` runs the command line):
#: checked statically only.
NOT_IMPORTED = ("tf_signsal.__main__",) + (
    # tf_signsal.beam subclasses Beam's classes: it imports only where the [beam] extra is
    () if importlib.util.find_spec("apache_beam") else ("tf_signsal.beam",)
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(ROOT, "tf_signsal")
_RANK = {layer: rank for rank, layer in enumerate(LAYERS)}


def _modules(directory: str = PACKAGE_DIR, prefix: str = "tf_signsal") -> dict[str, str]:
    """Every module of the package, name -> file, found on disk without importing it."""
    found = {prefix: os.path.join(directory, "__init__.py")}
    for info in pkgutil.iter_modules([directory]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            found.update(_modules(os.path.join(directory, info.name), name))
        else:
            found[name] = os.path.join(directory, info.name + ".py")
    return found


MODULES = _modules()


def _layer(module: str) -> str | None:
    """The layer of `module`: that of its own entry, or of the nearest package placed."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for layer, names in LAYERS.items():
            if prefix in names:
                return layer
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: str) -> list[tuple[str, int, bool]]:
    """(imported tf_signsal module, line, lazy) of each import that runs; the imports
    under `if TYPE_CHECKING:` are left out. `from tf_signsal import plotting` imports the
    module tf_signsal.plotting, `from tf_signsal.maps import METHODS` tf_signsal.maps."""
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), path)
    is_package = path.endswith("__init__.py")
    found = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno, lazy) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")
                package = package[: len(package) - node.level + is_package]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in MODULES else base, node.lineno, lazy))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return [(name, line, lazy) for name, line, lazy in found if _within(name, "tf_signsal")]


def test_every_module_is_placed():
    unplaced = sorted(m for m in MODULES if _layer(m) is None)
    assert not unplaced, (
        f"modules in no layer: {unplaced}; place each in LAYERS at the top of "
        "tests/test_layers.py (leaf, core, evaluation or applications)"
    )
    assert {"tf_signsal.vocabulary", "tf_signsal.maps", "tf_signsal.evaluation.result",
            "tf_signsal.plotting", "tf_signsal.callbacks"} <= set(MODULES)  # the walk works


def test_every_import_points_down():
    wrong = []
    for module, path in sorted(MODULES.items()):
        layer = _layer(module)
        if layer is None:
            continue  # reported by test_every_module_is_placed
        for imported, line, lazy in _imports(module, path):
            target = _layer(imported)
            where = f"{os.path.relpath(path, ROOT)}:{line}"
            kind = "lazy import" if lazy else "import"
            if target is None:
                wrong.append(f"{where}: {kind} of {imported}, which is no module of the package")
            elif _RANK[target] > _RANK[layer] and not (lazy and (module, imported) in LAZY_UPWARD):
                wrong.append(f"{where}: {module} ({layer}) has a {kind} of {imported} ({target})")
            for owner, packages in FORBIDDEN.items():
                if _within(module, owner) and any(_within(imported, p) for p in packages):
                    wrong.append(f"{where}: {module} may not import {imported}, even lazily "
                                 "(a type hint goes under `if TYPE_CHECKING:`)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# Imports the given modules one at a time and prints, for each, the package modules and
# whether TensorFlow its import loaded for the first time (or the error it raised).
_IMPORT_ONE_BY_ONE = """
import importlib, json, sys
found = {}
for name in %r:
    before = set(sys.modules)
    try:
        importlib.import_module(name)
    except Exception as error:
        found[name] = {"error": f"{type(error).__name__}: {error}"}
        continue
    new = sorted(set(sys.modules) - before)
    found[name] = {"loaded": [m for m in new if m == "tf_signsal" or m.startswith("tf_signsal.")],
                   "tensorflow": "tensorflow" in new}
print(json.dumps(found))
"""


def test_importing_each_layer_loads_nothing_above_it():
    # Bottom-up: when a module is imported, every lower layer is loaded already, so any
    # module of a higher layer that appears was pulled in by it.
    order = sorted(
        (m for m in MODULES if _layer(m) is not None and m not in NOT_IMPORTED),
        key=lambda m: (_RANK[_layer(m)], m),
    )
    found = _run(_IMPORT_ONE_BY_ONE % (order,))
    failed = {m: r["error"] for m, r in found.items() if "error" in r}
    assert not failed, f"modules that do not import: {failed}"
    wrong = [
        f"importing {module} ({_layer(module)}) loads {loaded} ({_layer(loaded)})"
        for module, record in found.items()
        for loaded in record["loaded"]
        if _layer(loaded) is not None and _RANK[_layer(loaded)] > _RANK[_layer(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_light_modules_load_no_tensorflow():
    found = _run(_IMPORT_ONE_BY_ONE % (WITHOUT_TENSORFLOW,))
    failed = {m: r["error"] for m, r in found.items() if "error" in r}
    assert not failed, f"modules that do not import: {failed}"
    heavy = [m for m, r in found.items() if r["tensorflow"]]
    assert not heavy, f"importing these loads TensorFlow: {heavy}"


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("tf_signsal.plotting._curves", "from tf_signsal.evaluation import result",
         [("tf_signsal.evaluation.result", 1, False)]),
        ("tf_signsal.plotting._curves",
         "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tf_signsal.maps\n",
         []),
        ("tf_signsal.maps", "def f():\n    from . import plotting\n",
         [("tf_signsal.plotting", 2, True)]),
        ("tf_signsal.evaluation.result", "from .pairs import Pair",
         [("tf_signsal.evaluation.pairs", 1, False)]),
        ("tf_signsal.evaluation", "from . import result\nimport numpy",
         [("tf_signsal.evaluation.result", 1, False)]),
    ],
)
def test_the_import_reader(tmp_path, module, source, expected):
    path = tmp_path / ("__init__.py" if module == "tf_signsal.evaluation" else "m.py")
    path.write_text(source)
    assert _imports(module, str(path)) == expected
