"""Every Python snippet of the README runs as written, in order, in one namespace.

They run in a scratch copy of the layout they assume: the repository's `results/` and the
shared data beside it (`../shared/data`); whatever they write lands in the scratch folder.
"""

import os
import re
import shlex

import matplotlib
import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.slow  # runs the README's snippets

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


def shell_commands():
    """The README's shell commands: (line, words) for each `tf-signsal` or
    `python examples/...` command of its bash blocks. Continuation lines are joined,
    comments dropped, and each optional part `[a | b]` written as its first choice."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        text = file.read()
    commands = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        first_line = text[: block.start()].count("\n") + 2
        for offset, line in enumerate(block.group(1).replace("\\\n", " \\\n").split("\n")):
            commands.append((first_line + offset, line))
    joined, pending = [], None
    for number, line in commands:  # join `\` continuations onto their first line
        start = pending or (number, "")
        if line.rstrip().endswith("\\"):
            pending = (start[0], start[1] + line.rstrip()[:-1])
            continue
        pending = None
        joined.append((start[0], start[1] + line))
    result = []
    for number, line in joined:
        line = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split("|")[0], line.split("#")[0])
        for part in line.split("&&"):
            words = shlex.split(part)
            if words[:1] == ["tf-signsal"] or words[:2] and words[0] == "python" and (
                words[1].startswith("examples/")
            ):
                result.append((number, words))
    return result


def test_readme_command_lines_use_existing_options():
    from tf_signsal.cli import build_parser

    commands = shell_commands()
    cli = [(n, w[1:]) for n, w in commands if w[0] == "tf-signsal"]
    scripts = [(n, w[1], w[2:]) for n, w in commands if w[0] == "python"]
    assert len(cli) >= 5 and len(scripts) >= 8
    parser = build_parser()
    for number, arguments in cli:
        try:
            parser.parse_args(arguments)
        except SystemExit as error:
            raise AssertionError(f"README.md, line {number}: `tf-signsal "
                                 f"{' '.join(arguments)}` does not parse") from error
    # argparse also takes unambiguous prefixes (--indep): the README spells options whole.
    cli_path = os.path.join(ROOT, "tf_signsal", "cli")  # the package: one module per command
    for number, arguments in cli:
        assert_declared(cli_path, arguments, f"README.md, line {number}: tf-signsal")
    for number, script, arguments in scripts:
        path = os.path.join(ROOT, script)
        assert os.path.isfile(path), f"README.md, line {number}: no {script}"
        assert_declared(path, arguments, f"README.md, line {number}: {script}")


def assert_declared(path, arguments, where):
    """Each --option of `arguments` is declared whole in the source at `path`, a file or a
    folder of modules (read, not run: some examples need PyTorch)."""
    paths = [path] if os.path.isfile(path) else [
        os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith(".py")
    ]
    declared = set()
    for source in paths:
        with open(source, encoding="utf-8") as file:
            declared |= set(re.findall(r"add_argument\(\s*[\"'](--[\w-]+)", file.read()))
    for option in (a for a in arguments if a.startswith("--")):
        assert option in declared, f"{where} has no option {option}"
