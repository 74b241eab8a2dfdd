"""examples/tutorial.ipynb runs from start to end on the committed CNN and real CIFAR-10 images,
and is committed without outputs."""

import os

import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.slow  # runs the tutorial notebook

nbformat = pytest.importorskip("nbformat", reason="the tutorial test needs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the tutorial test needs nbclient")
pytest.importorskip("ipykernel", reason="the tutorial test needs ipykernel (the notebook's kernel)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "tutorial.ipynb")
MODEL = os.path.join(ROOT, "results", "cifar10_cnn", "model.keras")
CIFAR10 = os.path.join(SHARED_DATA, "cifar10")


def _read():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_committed_notebook_has_no_outputs():
    notebook = _read()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), (
        "clear the outputs before committing: "
        "jupyter nbconvert --clear-output --inplace examples/tutorial.ipynb"
    )
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.skipif(
    not os.path.isdir(CIFAR10), reason=f"CIFAR-10 image folders are absent ({CIFAR10})"
)
@pytest.mark.skipif(not os.path.isfile(MODEL), reason=f"the committed CNN is absent ({MODEL})")
@pytest.mark.parametrize("folder", ["examples", "."])
def test_the_tutorial_runs(folder, tmp_path, monkeypatch):
    notebook = _read()
    if folder == ".":
        # From the root only what depends on the folder: finding the repository, the model
        # and the data (the first three code cells); the rest runs from examples/.
        code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        notebook.cells = notebook.cells[: code[2] + 1]
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's temporary log folder goes here
    # Executed in memory, in examples/ (where Jupyter opens it) or in the repository root;
    # the repository's file is left untouched.
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.normpath(os.path.join(ROOT, folder))}},
    )
    before = os.path.getmtime(NOTEBOOK)
    client.execute()
    assert os.path.getmtime(NOTEBOOK) == before

    outputs = [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in outputs for o in cell if o.output_type == "error"]
    assert not errors
    text = "\n".join(
        o.get("text", "") for cell in outputs for o in cell if o.output_type == "stream"
    )
    assert "accuracy on these 200 images" in text
    if folder == ".":
        return
    for pair in ["positive/black", "active/black", "negative/white", "inactive/white"]:
        assert pair in text  # the evaluator's summary
    assert "epoch_0001.png" in text and "epoch_0001.npz" in text  # the callback's files
    logged = [p.name for p in tmp_path.glob("tf_signsal_tutorial_*/*")]
    assert sorted(logged) == [f"epoch_000{e}.{x}" for e in (0, 1) for x in ("npz", "png")]
    figures = sum(
        1 for cell in outputs for o in cell if "image/png" in o.get("data", {})
    )
    assert figures == 5  # maps grid, overlays, signed view, deletion curves, map evolution
