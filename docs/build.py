"""Build the HTML API reference of `tf_signsal` from its docstrings, with pdoc.

    python docs/build.py                 # writes docs/api/index.html (git-ignored)
    python docs/build.py --out /tmp/api  # elsewhere
    python docs/build.py --no-strict     # write it even when the checks below fail

The reference is generated, never edited by hand: pdoc (https://pdoc.dev) renders
every public module of the package (every module whose dotted name has no part
starting with "_"), reading the docstrings as Google style ("Args:", "Returns:",
"Example:"). Then open `docs/api/index.html` in a browser.

Beyond rendering, the build checks the docstrings, and by default fails (exit
status 1, `DocsError` from `build`) when any of these holds:

- pdoc warned: an annotation that does not resolve, a docstring it could
  not read (pdoc itself only warns; a module that does not import raises). One known pdoc
  limitation is let through: the generated `__init__` of a `typing.NamedTuple`
  whose module uses `from __future__ import annotations`
  (https://github.com/mitmproxy/pdoc/issues/765);
- a public module, class, function or method has no docstring (methods that
  override a hook of a class from outside the package, e.g. Keras's
  `Callback.set_model`, are documented there);
- an "Args:" entry names no parameter of its function (a renamed or removed
  argument, a typo), or is not of the form `name: text` / `name (type): text`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pdoc  # noqa: E402
import pdoc.doc  # noqa: E402
import pdoc.extract  # noqa: E402
import pdoc.render  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "api"
TEMPLATES = ROOT / "docs" / "templates"  # a module list as front page, every submodule in the nav
PACKAGE = "tf_signsal"

_ARGS_HEADER = re.compile(r"^(?P<indent>\s*)(Args|Arguments|Keyword Args|Keyword Arguments):\s*$")
_ARGS_ENTRY = re.compile(
    r"^\*{0,2}(?P<names>[A-Za-z_]\w*(\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(\([^)]*\))?\s*:(\s|$)"
)
# pdoc issue 765: a NamedTuple's generated __init__ under postponed annotations.
_NAMEDTUPLE_INIT = re.compile(
    r"^Error parsing type annotation .* for (?P<owner>[\w.]+)\.__init__\."
)


class DocsError(RuntimeError):
    """The reference was written, but its docstrings have problems (listed in `problems`)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the docstrings:\n- " + "\n- ".join(self.problems)
        )


# The modules of an optional extra that import its package when imported, and that package:
# documented where the extra is installed.
EXTRA_MODULES = {"tf_signsal.beam": "apache_beam"}


def public_modules(package: str = PACKAGE) -> list[str]:
    """The dotted names of `package` and of its submodules with no part starting with "_"
    (but an extra's module where the extra is not installed, see `EXTRA_MODULES`)."""
    module = importlib.import_module(package)
    names = [package]
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            extra = EXTRA_MODULES.get(info.name)
            if extra is not None and importlib.util.find_spec(extra) is None:
                continue
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def args_entries(docstring: str) -> list[tuple[str, ...] | str]:
    """The names in each entry of the docstring's "Args:" sections, in order; an entry
    that is not `name: text` / `name (type): text` is returned as its line (a str)."""
    lines = inspect.cleandoc(docstring or "").splitlines()
    entries: list[tuple[str, ...] | str] = []
    index = 0
    while index < len(lines):
        header = _ARGS_HEADER.match(lines[index])
        index += 1
        if not header:
            continue
        base, entry_indent = len(header.group("indent")), None
        while index < len(lines):
            line = lines[index]
            if line.strip():
                indent = len(line) - len(line.lstrip())
                if indent <= base:
                    break
                entry_indent = indent if entry_indent is None else entry_indent
                if indent == entry_indent:
                    found = _ARGS_ENTRY.match(line.strip())
                    if found:
                        names = found.group("names").replace("*", "").split(",")
                        entries.append(tuple(n.strip() for n in names))
                    else:
                        entries.append(line.strip())
            index += 1
    return entries


def _parameters(obj: object) -> set[str] | None:
    """The parameter names of a function or a class's constructor; None when unknown or
    when it takes **kwargs (then any name may be documented)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return set(signature.parameters)


def _is_foreign_hook(owner: pdoc.doc.Class, name: str, package: str) -> bool:
    """Whether `name` overrides an attribute of a base class from outside `package`."""
    return any(
        name in vars(base) and not (base.__module__ or "").startswith(package)
        for base in inspect.getmro(owner.obj)[1:]
    )


def _members(namespace: pdoc.doc.Namespace) -> Iterator[tuple[pdoc.doc.Doc, pdoc.doc.Class | None]]:
    """Public members of a module or class, with their class (None at module level)."""
    members = namespace.own_members if isinstance(namespace, pdoc.doc.Class) else (
        namespace.members.values()
    )
    for member in members:
        if member.name.startswith("_"):
            continue
        yield member, namespace if isinstance(namespace, pdoc.doc.Class) else None
        if isinstance(member, pdoc.doc.Class):
            yield from _members(member)


def docstring_problems(modules: dict[str, pdoc.doc.Module], package: str) -> list[str]:
    """Undocumented public names and "Args:" entries that name no parameter."""
    problems, seen = [], set()
    for name, module in modules.items():
        if not module.docstring.strip():
            problems.append(f"module {name} has no docstring")
        for member, owner in _members(module):
            source = member.taken_from
            if not source[0].startswith(package) or source in seen:
                continue  # re-exported: checked where it is defined (or not ours)
            seen.add(source)
            if not isinstance(member, (pdoc.doc.Function, pdoc.doc.Class)):
                continue
            where = ".".join(source)
            if not member.docstring.strip():
                if owner is None or not _is_foreign_hook(owner, member.name, package):
                    problems.append(f"{where} has no docstring")
                continue
            parameters = _parameters(member.obj)
            for entry in args_entries(inspect.getdoc(member.obj) or ""):
                if isinstance(entry, str):
                    problems.append(
                        f"{where}: the Args entry {entry!r} is not `name: text` "
                        "or `name (type): text`"
                    )
                elif parameters is not None:
                    unknown = [n for n in entry if n not in parameters]
                    if unknown:
                        problems.append(
                            f"{where}: Args documents {unknown}, which is not a parameter "
                            f"(parameters: {sorted(parameters - {'self', 'cls'})})"
                        )
    return problems


def _is_namedtuple_init_warning(message: str) -> bool:
    found = _NAMEDTUPLE_INIT.match(message)
    if not found:
        return False
    module_name, _, qualname = found.group("owner").rpartition(".")
    while module_name:
        try:
            owner = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            qualname = f"{head}.{qualname}"
    else:
        return False
    for part in qualname.split("."):
        owner = getattr(owner, part, None)
    return isinstance(owner, type) and issubclass(owner, tuple) and hasattr(owner, "_fields")


def build(
    output_directory: str | os.PathLike = DEFAULT_OUT,
    modules: Sequence[str] | None = None,
    strict: bool = True,
) -> list[str]:
    """Write the HTML reference of `modules` into `output_directory` and check the docstrings.

    Args:
        output_directory: folder of the HTML (`index.html`, one page per module,
            `search.js`); created when needed.
        modules: dotted module names; the public modules of `tf_signsal` when None
            (see `public_modules`). pdoc adds the submodules of a package that
            has no `__all__`.
        strict: raise `DocsError` when there are problems (after writing).

    Returns:
        The problems found (see the module docstring); empty when the docs are clean.
    """
    modules = public_modules() if modules is None else list(modules)
    package = modules[0].split(".")[0]
    pdoc.render.configure(
        docformat="google", show_source=True, search=True, template_directory=TEMPLATES
    )
    pdoc.doc.Module.from_name.cache_clear()  # a second build in one process warns again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # What pdoc renders: these modules, and the submodules of a package without
        # `__all__`. A module that does not import raises here.
        documented = {
            name: pdoc.doc.Module.from_name(name) for name in pdoc.extract.walk_specs(modules)
        }
        pdoc.pdoc(*modules, output_directory=Path(output_directory))
    problems = [
        f"pdoc: {warning.message}"
        for warning in caught
        if not issubclass(warning.category, DeprecationWarning)
        and not _is_namedtuple_init_warning(str(warning.message))
    ]
    problems = list(dict.fromkeys(problems))  # pdoc repeats a warning per page
    problems += docstring_problems(documented, package)
    if strict and problems:
        raise DocsError(problems)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (docs/api)")
    parser.add_argument(
        "--no-strict", action="store_true", help="report docstring problems without failing"
    )
    args = parser.parse_args(argv)
    problems = build(args.out, strict=False)
    for problem in problems:
        print(f"docs: {problem}", file=sys.stderr)
    print(f"API reference written to {os.path.join(args.out, 'index.html')}")
    return 1 if problems and not args.no_strict else 0


if __name__ == "__main__":
    sys.exit(main())
