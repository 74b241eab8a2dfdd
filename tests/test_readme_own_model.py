"""The README's "Explaining your own model" runs as written: its Python blocks in order in
one namespace, then its command line, in a scratch folder (random weights, offline)."""

import os
import re
import shlex
import warnings

import numpy as np
import pytest

from tf_signsal import SignedSaliency, load_model
from tf_signsal._model import ValueRangeWarning

pytestmark = pytest.mark.slow  # MobileNetV2 and EfficientNetB0, a SavedModel export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE = "## Explaining your own model\n"


def section():
    """(first line number, text) of the README's own-model section."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        text = file.read()
    start = text.index(TITLE)
    end = text.index("\n## ", start + len(TITLE))
    return text[:start].count("\n") + 1, text[start:end]


def blocks(language):
    first, text = section()
    return [(first + text[: m.start()].count("\n"), m.group(1))
            for m in re.finditer(rf"```{language}\n(.*?)```", text, re.S)]


def test_the_own_model_section_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # fenced "python own-model" so that test_readme.py does not run them a second time
    python, commands = blocks("python own-model"), blocks("bash")
    assert len(python) == 2 and len(commands) == 1
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for line, code in python:
            exec(compile(code, f"README.md, line {line}", "exec"), namespace)
    messages = [str(w.message) for w in caught]
    # EfficientNetB0's softmax is stripped with a warning; the value ranges given are right.
    assert any("applies a softmax" in m for m in messages), messages
    assert not [w for w in caught if issubclass(w.category, ValueRangeWarning)]

    own_maps = namespace["own_maps"]
    assert set(own_maps.keys()) == {"standard", "positive", "negative", "active", "inactive"}
    for maps in (own_maps, namespace["effnet_maps"], namespace["served_maps"]):
        for name in maps.keys():
            assert maps[name].shape == (2, 96, 96)
    # The SavedModel gives the maps of the Keras model it was exported from.
    served_maps = namespace["served_maps"]
    np.testing.assert_array_equal(served_maps.targets, own_maps.targets)
    for method in own_maps.keys():
        np.testing.assert_array_equal(served_maps[method], own_maps[method])

    from tf_signsal.cli import main

    (line, command), = commands
    words = shlex.split(command)
    assert words[0] == "tf-signsal", f"README.md, line {line}"
    assert main(words[1:]) == 0, f"README.md, line {line}: {command}"
    saved = np.load(tmp_path / "runs" / "maps-mobilenet" / "maps.npz")
    np.testing.assert_array_equal(saved["value_range"], [0.0, 255.0])
    served = load_model(tmp_path / "runs" / "mobilenet_v2")
    expected = SignedSaliency(served, value_range=(0, 255)).explain(
        saved["images"] * 255, methods=["positive", "negative"])
    for method in ("positive", "negative"):
        np.testing.assert_array_equal(saved[method], expected[method])
