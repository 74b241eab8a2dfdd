"""tf_signsal.beam on Beam's DirectRunner: equal to one process, bit for bit.

One multi-process pipeline (2 worker processes) holds every branch, since each pipeline
pays the workers' start-up (TensorFlow's import, the model's load): two evaluations
(orders, fills, labels, a non-gradient attribution) against `AllegianceEvaluator.evaluate`
in this process, and the maps written with `WriteMaps` against `SignedSaliency.explain`.
The command line's --engine beam runs on the in-process DirectRunner. Runs in the beam
extra's own environment (.ci/run).
"""

import os
import re

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")

import tf_signsal  # noqa: E402
from conftest import (  # noqa: E402
    SHARED_DATA,
    assert_stored_maps_equal,
    small_conv_net,
    write_image_tree,
)
from tf_signsal import beam as signsal_beam  # noqa: E402
from tf_signsal._io import read_json  # noqa: E402
from tf_signsal.cli import main  # noqa: E402
from tf_signsal.evaluation import Blur, DeletionCounts, Mean  # noqa: E402

pytestmark = pytest.mark.beam

MULTI_PROCESS = [
    "--direct_num_workers=2", "--direct_running_mode=multi_processing",
]

# Two evaluator configurations: the paper's pairs with MoRF and LeRF, labelled; other
# fills (a user-parameterised blur, the mean, the random control) with the insertion order,
# a seed and gradient x input maps. Four fractions keep it short.
FRACTIONS = [0.0, 0.05, 0.2, 0.5]
CONFIGURATIONS = {
    "paper": dict(orders=["morf", "lerf"]),
    "fills_and_attribution": dict(
        pairs=[("positive", Mean()), ("active", Blur(1.0)), ("random", "black")],
        orders=["morf", "insertion"], seed=3, attribution="gradient_x_input",
    ),
}
NUM_IMAGES = 192  # a multiple of the maps' batch size (see test_maps_read_back_equal_explain)


def _images() -> tuple[np.ndarray, np.ndarray]:
    """NUM_IMAGES CIFAR-10 test images and labels (19 or 20 per class), or synthetic ones."""
    if os.path.isdir(os.path.join(SHARED_DATA, "cifar10")):
        from tf_signsal import data

        labels = data.split_labels("cifar10", "test", SHARED_DATA)
        chosen = data.balanced_subset(labels, NUM_IMAGES, seed=0)
        batches = data.split_subset(
            "cifar10", "test", chosen, labels[chosen], (32, 32, 3), SHARED_DATA, NUM_IMAGES
        )
        images, labels = next(iter(batches))
        return images.numpy(), labels.numpy()
    rng = np.random.default_rng(0)  # ../shared/data absent: the same checks, synthetic images
    return rng.random((NUM_IMAGES, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, NUM_IMAGES)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The one pipeline's outputs: the images, the model, the counts of each
    configuration and the maps' folder."""
    folder = tmp_path_factory.mktemp("beam")
    model = small_conv_net((32, 32, 3), 10, seed=1)
    model_path = str(folder / "model.keras")
    model.save(model_path)
    images, labels = _images()
    maps_path = str(folder / "maps")
    with beam.Pipeline(options=signsal_beam._pipeline_options(MULTI_PROCESS)) as pipeline:
        keyed = pipeline | beam.Create(
            [(i, images[i], labels[i]) for i in range(len(images))], reshuffle=True
        )
        for name, options in CONFIGURATIONS.items():
            # batches of at most 24 here, of 128 in one process: cut differently
            _ = (
                keyed
                | f"Count {name}" >> signsal_beam.CountAllegiance(
                    model_path, batch_size=24, fractions=FRACTIONS, **options
                )
                | f"Save {name}" >> beam.Map(DeletionCounts.save, str(folder / f"{name}.npz"))
            )
        # (functions of this module cannot be sent to the workers, which cannot import it)
        _ = (
            pipeline
            | "Indexed" >> beam.Create(list(enumerate(images)), reshuffle=True)
            | signsal_beam.WriteMaps(model_path, maps_path, batch_size=32)
        )
    counts = {name: DeletionCounts.load(folder / f"{name}.npz") for name in CONFIGURATIONS}
    return images, labels, model, counts, maps_path


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_counts_equal_one_process(run, name):
    images, labels, model, counts, _ = run
    evaluator = tf_signsal.AllegianceEvaluator(model, fractions=FRACTIONS, **CONFIGURATIONS[name])
    expected = evaluator.evaluate((images, labels), verbose=0)
    assert counts[name].images == len(images)
    assert evaluator.result(counts[name]).to_dict() == expected.to_dict()


def test_maps_read_back_equal_explain(run):
    """Each worker batch is padded to 32 images: the maps are those of explain's batches
    of 32 (a model's float rounding may vary with the batch size)."""
    images, _, model, _, maps_path = run
    stored = tf_signsal.read_maps(maps_path)
    expected = tf_signsal.SignedSaliency(model).explain(images, batch_size=32)
    np.testing.assert_array_equal(stored.index, np.arange(len(images)))
    np.testing.assert_array_equal(stored.targets, expected.targets.numpy())
    np.testing.assert_array_equal(stored.logits, expected.logits.numpy())
    assert sorted(stored.maps) == sorted(expected)
    for method in expected:
        np.testing.assert_array_equal(stored.maps[method], expected[method].numpy())


def test_write_maps_refuses_a_folder_holding_maps(run):
    _, _, _, _, maps_path = run
    model_path = os.path.join(os.path.dirname(maps_path), "model.keras")
    with pytest.raises(FileExistsError, match="holds maps already"):
        signsal_beam.WriteMaps(model_path, maps_path)


# ----------------------------------------------------------------------------- in-process


def _zeros(model, **options):
    """The neutral counts of an evaluator's protocol (no image needed)."""
    return DeletionCounts.zeros(tf_signsal.AllegianceEvaluator(model, **options).protocol)


def test_counts_of_another_protocol_are_refused():
    model = small_conv_net()
    right = _zeros(model)
    wrong = _zeros(model, fractions=[0.0, 0.5])  # a mis-configured worker
    assert right.fingerprint != wrong.fingerprint
    with pytest.raises(ValueError, match="another protocol"):
        SumCountsHarness(right.fingerprint).add(right, wrong)
    # without an expected fingerprint, the first counts' protocol rules
    with pytest.raises(ValueError, match="different protocols"):
        SumCountsHarness(None).add(right, wrong)
    with pytest.raises(Exception, match="another protocol"):  # in a pipeline, too
        with beam.Pipeline() as pipeline:
            _ = (
                pipeline | beam.Create([right, wrong, right])
                | beam.CombineGlobally(signsal_beam.SumCounts(right.fingerprint))
            )
    total = SumCountsHarness(right.fingerprint).add(right, right)
    assert total.fingerprint == right.fingerprint and total.images == 0


class SumCountsHarness:
    """Drives a `SumCounts` as a runner does: inputs in two accumulators, merged."""

    def __init__(self, fingerprint):
        self.combine = signsal_beam.SumCounts(fingerprint)

    def add(self, *counts):
        accumulators = []
        for c in counts:
            accumulators.append(self.combine.add_input(self.combine.create_accumulator(), c))
        return self.combine.extract_output(self.combine.merge_accumulators(accumulators))


def test_transforms_refuse_bad_options_before_any_work(tmp_path):
    model_path = str(tmp_path / "model.keras")
    small_conv_net().save(model_path)
    with pytest.raises(ValueError, match="batch_size"):
        signsal_beam.EvaluateAllegiance(model_path, batch_size=0)
    with pytest.raises(ValueError, match="fractions"):
        signsal_beam.EvaluateAllegiance(model_path, fractions=[0.5, 0.1])
    with pytest.raises(ValueError, match="methods"):
        signsal_beam.SaliencyModelHandler(model_path, methods=["sideways"])
    with pytest.raises(ValueError, match="methods"):
        signsal_beam.WriteMaps(model_path, tmp_path / "maps", methods="positive")
    with pytest.raises((OSError, ValueError), match="absent.keras"):
        signsal_beam.EvaluateAllegiance(str(tmp_path / "absent.keras"))
    assert not (tmp_path / "maps").exists()


# ----------------------------------------------------------------------------- command line


def _cli(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def test_command_line_evaluate_and_explain_on_beam_equal_local(capsys, tmp_path):
    """tf-signsal evaluate/explain --engine beam (Beam's DirectRunner, in this process) give
    the local command's results and maps."""
    model_path = tmp_path / "model.keras"
    small_conv_net(num_classes=10, seed=2).save(model_path)
    write_image_tree(str(tmp_path), "photos", (8, 8), np.random.default_rng(4))
    photos = tmp_path / "photos"
    common = ["--model", model_path, "--data", photos, "--batch-size", 6, "--orders", "morf",
              "lerf"]
    _cli(capsys, "evaluate", *common, "--out", tmp_path / "local")
    _cli(capsys, "evaluate", *common, "--out", tmp_path / "beam", "--engine", "beam",
         "--beam-option", "direct_num_workers=1")
    local, engine = (read_json(tmp_path / out / "results.json") for out in ("local", "beam"))
    assert engine["run"]["parameters"]["engine"] == "beam"
    for record in (local, engine):
        del record["run"]
    assert engine == local

    explain = ["explain", "--model", model_path, "--images", photos, "--batch-size", 4]
    _cli(capsys, *explain, "--out", tmp_path / "maps_local")
    out = _cli(capsys, *explain, "--out", tmp_path / "maps_beam", "--engine", "beam")
    assert "tf_signsal.read_maps" in out
    expected = np.load(tmp_path / "maps_local" / "maps.npz")
    stored = tf_signsal.read_maps(tmp_path / "maps_beam")
    assert_stored_maps_equal(stored, expected)
    status = main([str(a) for a in (*explain, "--out", tmp_path / "maps_beam", "--engine",
                                    "beam")])
    assert status == 1 and "not empty" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "cifar10")),
                    reason="the README's Beam snippet reads CIFAR-10 from ../shared/data")
def test_readme_beam_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    # The README's ```python beam block, in the scratch layout it assumes: results/ and
    # ../shared/data.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as file:
        text = file.read()
    snippets = [(text[: m.start()].count("\n") + 1, m.group(1))
                for m in re.finditer(r"```python beam\n(.*?)```", text, re.S)]
    assert len(snippets) == 1
    repository = tmp_path / "repository"
    repository.mkdir()
    os.symlink(os.path.join(root, "results"), repository / "results")
    os.symlink(os.path.abspath(os.path.join(SHARED_DATA, "..")), tmp_path / "shared")
    monkeypatch.chdir(repository)
    (line, code), = snippets
    namespace: dict = {}
    exec(compile(code, f"README.md, line {line}", "exec"), namespace)
    assert "AUC" in capsys.readouterr().out  # the printed summary
    stored = namespace["stored"]
    assert sorted(stored.maps) == ["active", "positive"] and len(stored) == 64
