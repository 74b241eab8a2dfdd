"""docs/build.py: the pdoc API reference documents every public name, and a broken
docstring fails the build."""

import importlib
import importlib.util
import inspect
import os
import textwrap

import pytest

pytestmark = pytest.mark.slow  # builds the whole API reference

pytest.importorskip("pdoc", reason="pdoc builds the API reference: pip install pdoc")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_build():
    path = os.path.join(ROOT, "docs", "build.py")
    spec = importlib.util.spec_from_file_location("docs_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    problems = build.build(out, strict=False)
    return out, problems


def _page(out, module):
    path = out / (module.replace(".", "/") + ".html")
    assert path.is_file(), f"no page for {module}"
    return path.read_text(encoding="utf-8")


def _public_names(module_name):
    """What a module offers: its `__all__`, or the functions and classes defined in it."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return [n for n in module.__all__ if not n.startswith("_")]
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    ]


def test_the_reference_has_no_docstring_problem(reference):
    _, problems = reference
    assert problems == []


def test_every_public_module_and_name_has_its_page_and_anchor(reference):
    out, _ = reference
    modules = build.public_modules()
    assert {"tf_signsal", "tf_signsal.maps", "tf_signsal.plotting", "tf_signsal.evaluation",
            "tf_signsal.evaluation.sanity", "tf_signsal.callbacks"} <= set(modules)
    assert not [m for m in modules if "._" in m]  # private modules (_checks, _io) stay out
    index = (out / "index.html").read_text(encoding="utf-8")
    top = _page(out, "tf_signsal")
    missing = []
    for module in modules:
        page = _page(out, module)
        # The front page lists every module; the package page links its submodules.
        assert f'href="{module.replace(".", "/")}.html"' in index, module
        if module.count(".") == 1:
            assert f'href="{module.replace(".", "/")}.html"' in top, module
        missing += [f"{module}.{n}" for n in _public_names(module) if f'id="{n}"' not in page]
    assert missing == []
    assert (out / "search.js").stat().st_size > 0


def test_the_main_names_are_documented_with_their_sections(reference):
    out, _ = reference
    top = _page(out, "tf_signsal")
    for name in ["SignedSaliency", "AllegianceEvaluator", "AllegianceResult",
                 "IntegratedGradients", "randomization_check"]:
        assert f'id="{name}"' in top, name
    maps = _page(out, "tf_signsal.maps")
    assert 'id="SignedSaliency.explain"' in maps
    plotting = _page(out, "tf_signsal.plotting")
    for name in ["overlay", "plot_overlays", "plot_signed", "signed_view", "add_colorbar"]:
        assert f'id="{name}"' in plotting, name
    # Google-style sections are rendered as sections, not as plain text.
    assert "Returns:" not in plotting.split('id="plot_signed"')[1].split("def")[0]


def _write_package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_broken_docstring_fails_the_build(tmp_path, monkeypatch):
    _write_package(tmp_path / "src", {
        "brokenpkg/__init__.py": '"""A package."""\n',
        "brokenpkg/good.py": '''
            """Fine."""


            def scale(x, factor=2):
                """Multiply.

                Args:
                    x: a number.
                    factor: by how much.
                """
                return x * factor
        ''',
        "brokenpkg/bad.py": '''
            """Broken docstrings."""


            def renamed(images, alpha=0.5):
                """Args name a parameter that is gone.

                Args:
                    images: pictures.
                    opacity: renamed to alpha.
                """


            def undocumented(x):
                return x


            def malformed(x):
                """An entry that is no entry.

                Args:
                    - x is the input
                """


            def unresolved(x: "NoSuchType") -> None:
                """An annotation that names nothing."""


            class Thing:
                """Documented class, undocumented method."""

                def method(self):
                    return 1
        ''',
    })
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    out = tmp_path / "out"
    with pytest.raises(build.DocsError) as raised:
        build.build(out, modules=["brokenpkg"])
    problems = raised.value.problems
    text = "\n".join(problems)
    assert "brokenpkg.bad.renamed: Args documents ['opacity']" in text
    assert "brokenpkg.bad.undocumented has no docstring" in text
    assert "brokenpkg.bad.malformed: the Args entry '- x is the input'" in text
    assert "brokenpkg.bad.Thing.method has no docstring" in text
    assert any(p.startswith("pdoc: ") and "NoSuchType" in p for p in problems)
    assert "good" not in text
    assert len(problems) == 5
    # Written all the same, and reported without raising when not strict.
    assert (out / "brokenpkg" / "bad.html").is_file()
    assert build.build(out, modules=["brokenpkg"], strict=False) == problems
    assert build.build(out, modules=["brokenpkg.good"]) == []


def test_a_module_that_does_not_import_fails_the_build(tmp_path, monkeypatch):
    _write_package(tmp_path / "src", {
        "failpkg/__init__.py": '"""A package."""\n',
        "failpkg/boom.py": '"""Fails."""\nraise RuntimeError("boom")\n',
    })
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    with pytest.raises(RuntimeError, match="failpkg.boom"):
        build.build(tmp_path / "out", modules=["failpkg"])


def test_args_entries_parses_google_sections():
    doc = """Summary.

    Args:
        a: first.
            continued: not an entry.
        b (int): second.
        c, d: two at once.
        *args: more.
        **kwargs: and more.

    Returns:
        x: not an argument.
    """
    assert build.args_entries(doc) == [("a",), ("b",), ("c", "d"), ("args",), ("kwargs",)]


def test_main_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "build", lambda out, strict: ["x has no docstring"])
    assert build.main(["--out", str(tmp_path)]) == 1
    assert build.main(["--out", str(tmp_path), "--no-strict"]) == 0
    assert "docs: x has no docstring" in capsys.readouterr().err


def test_the_front_page_says_what_the_package_is_and_links_its_entry_points(reference):
    import re

    out, _ = reference
    index = (out / "index.html").read_text(encoding="utf-8")
    front = index.split('<main class="pdoc">')[1].split("</main>")[0]
    assert "Sign-aware saliency maps for Keras classifiers" in front and "2309.12913" in front
    links = re.findall(r'href="([^"]+)"', front)
    for name in ("SignedSaliency", "AllegianceEvaluator", "AllegianceResult", "load_model",
                 "randomization_check"):
        assert f"tf_signsal.html#{name}" in links, name
    assert "../../examples/tutorial.ipynb" in links
    for link in links:  # every page and anchor exists (the tutorial and README: from docs/api)
        path, _, anchor = link.partition("#")
        if path.startswith("../../"):
            assert os.path.isfile(os.path.join(ROOT, path[len("../../"):])), link
            continue
        page = (out / path).read_text(encoding="utf-8")
        assert not anchor or f'id="{anchor}"' in page, link
