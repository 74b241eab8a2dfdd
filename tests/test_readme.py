"""Every Python snippet of the README runs as written, in order, in one namespace.

They run in a scratch copy of the layout they assume: the repository's `results/` and the
shared data beside it (`../shared/data`); whatever they write lands in the scratch folder.
"""

import os
import re

import matplotlib
import pytest

from conftest import SHARED_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        text = file.read()
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(SHARED_DATA, "cifar10")),
    reason="the README's snippets read CIFAR-10 from ../shared/data, absent here",
)
def test_readme_python_snippets_run_as_written(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    repository = tmp_path / "repository"
    repository.mkdir()
    os.symlink(os.path.join(ROOT, "results"), repository / "results")
    os.symlink(os.path.abspath(os.path.join(SHARED_DATA, "..")), tmp_path / "shared")
    monkeypatch.chdir(repository)
    snippets = python_snippets()
    assert len(snippets) >= 4
    namespace: dict = {}
    for line, code in snippets:
        try:
            exec(compile(code, f"README.md, line {line}", "exec"), namespace)
        except Exception as error:  # report which snippet broke
            raise AssertionError(f"the README snippet at line {line} fails: {error!r}") from error
    assert (repository / "runs" / "allegiance.json").is_file()
    assert (repository / "runs" / "evolution.png").is_file()
