"""The package declares what it imports: a fresh install has every module it needs."""

import ast
import configparser
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Import names that differ from the distribution names declared in setup.cfg.
DISTRIBUTION = {"tensorflow_datasets": "tensorflow-datasets", "PIL": "pillow",
                "google": "protobuf",
                "apache_beam": "apache-beam"}


def _declared():
    """install_requires and the engines' extras (their modules import them; `test` is not
    the package's)."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config["options"]["install_requires"].splitlines()
    extras = config["options.extras_require"]
    lines += [line for name in extras if name != "test" for line in extras[name].splitlines()]
    names = [re.split(r"[<>=!~ ;\[]", line.strip())[0] for line in lines]
    return {n.lower().replace("_", "-") for n in names if n and not n.startswith("#")}


def _imported():
    found = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "tf_signsal")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as file:
                    tree = ast.parse(file.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        found.update(alias.name.split(".")[0] for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        found.add(node.module.split(".")[0])
    return found


def test_every_third_party_import_is_declared():
    import sys

    third_party = {m for m in _imported() if m not in sys.stdlib_module_names}
    third_party.discard("tf_signsal")
    declared = _declared()
    missing = sorted(
        m for m in third_party if DISTRIBUTION.get(m, m).lower().replace("_", "-") not in declared
    )
    assert not missing, f"imported by tf_signsal but not declared in setup.cfg: {missing}"


@pytest.mark.slow
def test_tensorflow_datasets_download_path_imports():
    # tensorflow-datasets imports importlib_resources lazily, only when it builds a dataset
    # to download: without it a fresh install fails before any download is tried.
    from tensorflow_datasets.core import dataset_builder

    assert dataset_builder.importlib_resources.files("tensorflow_datasets") is not None
