"""The command line's model: --model forms (.keras, .h5, SavedModel directory), --signature,
--output, --custom-objects, --value-range, and the run record's fingerprint.

The in-process tests call `tf_signsal.cli.main` as tests/test_cli.py does; those that write
SavedModels are slow.
"""

import hashlib
import importlib.util
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import METHODS, SignedSaliency
from tf_signsal.cli import main
from tf_signsal.cli._common import sha256, to_value_range
from tf_signsal.evaluation import PAPER_PAIRS, AllegianceEvaluator, pair_name


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(status, err, fragment):
    assert status == 1
    assert err.startswith("tf-signsal: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err, err


def _usage_error(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tf-signsal" in err and fragment in err, err


@pytest.fixture
def pictures(tmp_path):
    """6 RGB 8x8 PNGs in two class folders (sorted paths) and their exact [0, 1] values."""
    arrays = np.random.default_rng(5).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    paths = []
    for index, array in enumerate(arrays):
        paths.append(str(tmp_path / "pictures" / f"class_{index // 3}" / f"p{index}.png"))
        os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
        tf.io.write_file(paths[-1], tf.io.encode_png(array))
    return tmp_path / "pictures", paths, arrays.astype(np.float32) / 255.0


def _rescaled_net(seed=2):
    """A classifier of [0, 255] pixels: Rescaling(1/255) first, as EfficientNet has."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(6, 3, padding="same", activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4),
    ])


@pytest.fixture(scope="module")
def rescaled_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("rescaled") / "rescaled.keras")
    _rescaled_net().save(path)
    return path


# ----------------------------------------------------------------------------- --value-range


def test_a_model_of_255_pixels_is_refused_without_value_range(capsys, tmp_path, rescaled_file,
                                                               pictures):
    folder = pictures[0]
    for argv in (["explain", "--images", folder], ["evaluate", "--data", folder],
                 ["sanity", "--data", folder], ["export"]):
        out = tmp_path / argv[0]
        status, _, err = _run(capsys, argv[0], "--model", rescaled_file, *argv[1:], "--out", out)
        _one_line_error(status, err, "the model expects pixels in [0, 255] (its layer "
                                     "'rescaling': Rescaling(scale=0.003922, offset=0) maps "
                                     "[0, 255] to [0, 1]")
        assert "pass --value-range 0 255" in err
        assert not os.path.exists(out / "maps.npz") and not os.path.exists(out / "results.json")


def test_value_range_explain_gives_the_api_maps_of_scaled_images(capsys, tmp_path,
                                                                 rescaled_file, pictures):
    folder, paths, images = pictures
    out = tmp_path / "maps"
    status, _, _ = _run(capsys, "explain", "--model", rescaled_file, "--images", folder,
                        "--out", out, "--value-range", "0", "255")
    assert status == 0
    saved = np.load(out / "maps.npz")
    np.testing.assert_allclose(saved["images"], images, atol=1e-7)  # as read: [0, 1]
    np.testing.assert_array_equal(saved["value_range"], [0.0, 255.0])
    model = keras.saving.load_model(rescaled_file)
    images = saved["images"]  # the decoder's rounding, to compare bit for bit
    expected = SignedSaliency(model, value_range=(0, 255)).explain(images * 255)
    np.testing.assert_array_equal(saved["logits"], expected.logits)
    for method in METHODS:
        np.testing.assert_array_equal(saved[method], expected[method])
    # The [0, 1] images the default feeds would be near-black to this model: other maps.
    near_black = SignedSaliency(model).explain(images)
    assert not np.allclose(near_black["positive"], expected["positive"], atol=1e-3)


def test_value_range_evaluate_is_recorded_and_matches_the_api(capsys, tmp_path, rescaled_file,
                                                              pictures):
    folder, _, images = pictures
    out = tmp_path / "eval"
    status, _, err = _run(capsys, "evaluate", "--model", rescaled_file, "--data", folder,
                          "--out", out, "--value-range", "0", "255")
    assert status == 0, err
    record = json.loads((out / "results.json").read_text())
    assert record["run"]["value_range"] == [0.0, 255.0]
    assert record["run"]["model"]["format"] == "Keras"
    assert record["run"]["model"]["sha256"] == hashlib.sha256(
        open(rescaled_file, "rb").read()).hexdigest()
    model = keras.saving.load_model(rescaled_file)
    expected = AllegianceEvaluator(model, value_range=(0, 255)).evaluate(images * 255, verbose=0)
    for pair in PAPER_PAIRS:
        assert record["auc"][pair_name(pair)] == pytest.approx(expected.auc[pair], abs=1e-12)


def test_value_range_sanity_matches_the_api(capsys, tmp_path, rescaled_file, pictures):
    from tf_signsal import data
    from tf_signsal.evaluation import RandomizationResult, random_logit_check, randomization_check

    folder, _, images = pictures
    out = tmp_path / "sanity"
    status, _, err = _run(capsys, "sanity", "--model", rescaled_file, "--data", folder,
                          "--limit", "4", "--methods", "positive", "--out", out,
                          "--value-range", "0", "255")
    assert status == 0, err
    record = json.loads((out / "sanity.json").read_text())
    assert record["run"]["value_range"] == [0.0, 255.0]
    # The fixture's sorted paths are its order: class_0 holds images 0-2, class_1 3-5.
    chosen = images[data.balanced_subset(np.array([0, 0, 0, 1, 1, 1]), 4, seed=0)] * 255
    model = keras.saving.load_model(rescaled_file)
    assert RandomizationResult.from_dict(record["randomization"]) == randomization_check(
        model, chosen, methods=["positive"], value_range=(0, 255))
    assert record["random_logit"] == pytest.approx(random_logit_check(
        model, chosen, methods=["positive"], value_range=(0, 255)), abs=1e-12)


def test_an_explicit_contradicting_value_range_warns_and_runs(capsys, tmp_path, rescaled_file,
                                                              pictures):
    with pytest.warns(UserWarning, match=r"value_range \(0, 1\) is not what `model` expects.*"
                                         r"--value-range 0 255"):
        status, _, _ = _run(capsys, "explain", "--model", rescaled_file, "--images",
                            pictures[0], "--out", tmp_path / "o", "--value-range", "0", "1")
    assert status == 0


@pytest.mark.parametrize("values, fragment", [
    (["1", "0"], "must be finite with low < high"),
    (["0", "nan"], "must be finite with low < high"),
    (["0", "white"], "invalid float value"),
    (["0"], "expected 2 arguments"),
])
def test_bad_value_range_is_a_usage_error(capsys, values, fragment):
    _usage_error(capsys, ["explain", "--model", "m.keras", "--images", "x", "--out", "o",
                          "--value-range", *values], fragment)


def test_to_value_range_scales_arrays_and_datasets():
    images = np.random.default_rng(0).random((3, 2, 2, 3), dtype=np.float32)
    assert to_value_range(images, (0.0, 1.0)) is images
    np.testing.assert_array_equal(to_value_range(images, (-1.0, 1.0)), images * 2 - 1)
    labels = np.arange(3)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    got = list(to_value_range(dataset, (0.0, 255.0)))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images * 255)
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels)
    alone = to_value_range(tf.data.Dataset.from_tensor_slices(images).batch(3), (0.0, 255.0))
    np.testing.assert_array_equal(next(iter(alone)), images * 255)


# ----------------------------------------------------------------------------- --model


def test_model_path_refusals(capsys, tmp_path, rescaled_file, pictures):
    argv = ["--images", pictures[0], "--out", tmp_path / "o"]
    missing = tmp_path / "gone"
    status, _, err = _run(capsys, "explain", "--model", missing, *argv)
    _one_line_error(status, err, f"model file not found: {missing} (expected a .keras file, "
                                 "an .h5 file, or a SavedModel directory")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    status, _, err = _run(capsys, "explain", "--model", empty, *argv)
    _one_line_error(status, err, f"--model {empty} is a directory without saved_model.pb")
    status, _, err = _run(capsys, "explain", "--model", rescaled_file, *argv,
                          "--signature", "serve", "--value-range", "0", "255")
    _one_line_error(status, err, "--signature applies to SavedModel directories; --model "
                                 f"{rescaled_file} is a Keras file: do not pass --signature "
                                 "(received 'serve')")
    status, _, err = _run(capsys, "explain", "--model", rescaled_file, *argv,
                          "--outputs", "log_probabilities", "--value-range", "0", "255")
    _one_line_error(status, err, "is not probabilities (it has negative values or rows that do "
                                 "not sum to 1): pass --outputs logits")
    assert not (tmp_path / "o").exists()


def test_a_lambda_layer_is_refused_in_safe_mode_with_what_to_do(capsys, tmp_path, pictures):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda x: 2 * x),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    status, _, err = _run(capsys, "explain", "--model", path, "--images", pictures[0],
                          "--out", tmp_path / "o")
    _one_line_error(status, err, f"cannot load the model {path}: ")
    assert "safe_mode" in err and "the command line keeps safe mode on" in err


_CUSTOM_LAYERS = '''
import keras


class Doubling(keras.layers.Layer):
    """x -> 2x: a custom layer that is not registered with Keras."""

    def call(self, inputs):
        return 2.0 * inputs
'''


@pytest.fixture
def custom_layers(tmp_path, monkeypatch):
    """A module of a custom layer in a folder that is the current folder (not on sys.path),
    and the class itself (loaded under another name, as only the test needs it)."""
    name = "signsal_test_custom_layers"
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / f"{name}.py").write_text(_CUSTOM_LAYERS)
    monkeypatch.chdir(folder)
    spec = importlib.util.spec_from_file_location("for_the_test", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield name, module.Doubling
    sys.modules.pop(name, None)


def test_custom_objects_from_a_module_of_the_current_folder(capsys, tmp_path, pictures,
                                                            custom_layers):
    name, doubling = custom_layers
    folder, _, images = pictures
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 3)), doubling(), keras.layers.Conv2D(4, 3, activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    path = tmp_path / "custom.keras"
    model.save(path)
    out = tmp_path / "maps"
    status, _, err = _run(capsys, "explain", "--model", path, "--images", folder, "--out", out)
    _one_line_error(status, err, f"cannot load the model {path}: ")
    assert "Doubling" in err and name not in sys.modules
    status, _, err = _run(capsys, "explain", "--model", path, "--images", folder, "--out", out,
                          "--custom-objects", f"{name}:Doubling")
    assert status == 0, err
    saved = np.load(out / "maps.npz")
    expected = SignedSaliency(model).explain(images)
    for method in METHODS:
        np.testing.assert_array_equal(saved[method], expected[method])
    sys.modules.pop(name, None)
    status, _, err = _run(capsys, "explain", "--model", path, "--images", folder, "--out", out,
                          "--custom-objects", f"{name}:Tripling")
    _one_line_error(status, err, f"--custom-objects {name}:Tripling: {name} has no Tripling")
    status, _, err = _run(capsys, "explain", "--model", path, "--images", folder, "--out", out,
                          "--custom-objects", "no_such_module_here:Doubling")
    _one_line_error(status, err, "--custom-objects no_such_module_here:Doubling: cannot import "
                                 "no_such_module_here: No module named 'no_such_module_here'")


@pytest.mark.parametrize("text", ["Doubling", "module:", ":Name", "a..b:C", "a:B.", "a:b:c"])
def test_custom_objects_form_is_a_usage_error(capsys, text):
    _usage_error(capsys, ["explain", "--model", "m.keras", "--images", "x", "--out", "o",
                          "--custom-objects", text], "must be MODULE:NAME")


def test_help_names_the_forms_and_the_security_guidance(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for fragment in ("a .keras file, an .h5 file, or a SavedModel directory",
                     "a SavedModel is a program", "--signature NAME", "--output NAME",
                     "--custom-objects MODULE:NAME", "importing runs the module's code",
                     "safe mode stays on", "--value-range LOW HIGH", "images are read as [0, 1]"):
        assert fragment in help_text


# ----------------------------------------------------------------------------- fingerprint


def test_the_fingerprint_of_a_folder_is_of_its_files_in_path_order(tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    files = {"saved_model.pb": b"graph", "variables/variables.index": b"index",
             "variables/variables.data-00000-of-00001": b"\x00" * 3000, "b": b"", "a b": b"x"}
    for relative, content in files.items():
        (folder / relative).write_bytes(content)
    expected = hashlib.sha256()
    for relative in sorted(files):
        content = files[relative]
        expected.update(relative.encode() + b"\0" + len(content).to_bytes(8, "big") + content)
    assert sha256(str(folder)) == expected.hexdigest()
    # A file moved, or a byte moved from one file to the next, is another fingerprint.
    before = sha256(str(folder))
    os.rename(folder / "b", folder / "c")
    assert sha256(str(folder)) != before
    os.rename(folder / "c", folder / "b")
    (folder / "a b").write_bytes(b"")
    (folder / "b").write_bytes(b"x")
    assert sha256(str(folder)) != before
    single = tmp_path / "model.keras"
    single.write_bytes(b"zip bytes")
    assert sha256(str(single)) == hashlib.sha256(b"zip bytes").hexdigest()


# ----------------------------------------------------------------------------- SavedModels


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small CNN as a .keras file and as the SavedModel of `model.export`."""
    folder = tmp_path_factory.mktemp("saved")
    model = small_conv_net(num_classes=4, seed=4)
    paths = {"keras": str(folder / "net.keras"), "export": str(folder / "exported")}
    model.save(paths["keras"])
    model.export(paths["export"], verbose=False)
    return model, paths


@pytest.mark.slow
def test_a_saved_model_folder_is_explained_and_evaluated(capsys, tmp_path, saved, pictures):
    model, paths = saved
    folder, _, images = pictures
    out = tmp_path / "maps"
    status, _, err = _run(capsys, "explain", "--model", paths["export"], "--images", folder,
                          "--out", out)
    assert status == 0, err
    saved_maps = np.load(out / "maps.npz")
    expected = SignedSaliency(model).explain(images)
    for method in METHODS:
        np.testing.assert_array_equal(saved_maps[method], expected[method])
    status, _, err = _run(capsys, "evaluate", "--model", paths["export"], "--data", folder,
                          "--out", tmp_path / "eval", "--signature", "serve")
    assert status == 0, err
    run = json.loads((tmp_path / "eval" / "results.json").read_text())["run"]
    assert run["model"] == {
        "path": os.path.abspath(paths["export"]), "sha256": sha256(paths["export"]),
        "format": "SavedModel", "signature": "serve", "output": None, "outputs": "logits",
        "custom_objects": [],
    }
    assert run["value_range"] == [0.0, 1.0]


@pytest.mark.slow
def test_saved_model_signature_and_output_refusals(capsys, tmp_path, saved, pictures):
    _, paths = saved
    argv = ["--images", pictures[0], "--out", tmp_path / "o"]
    status, _, err = _run(capsys, "explain", "--model", paths["export"], *argv,
                          "--signature", "predict")
    _one_line_error(status, err, "--signature 'predict' is not a signature of the SavedModel "
                                 f"{paths['export']}; its signatures: 'serve', 'serving_default'")
    status, _, err = _run(capsys, "explain", "--model", paths["export"], *argv,
                          "--output", "probabilities")
    _one_line_error(status, err, "--output 'probabilities' is not an output of signature "
                                 "'serving_default'")
    status, _, err = _run(capsys, "explain", "--model", paths["export"], *argv,
                          "--custom-objects", "json:JSONDecoder")
    _one_line_error(status, err, "--custom-objects applies to .keras and .h5 files")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_folder_export_writes_is_a_model_again(capsys, tmp_path, saved, pictures):
    model, paths = saved
    folder, _, images = pictures
    exported = tmp_path / "models" / "signsal" / "1"
    status, _, err = _run(capsys, "export", "--model", paths["keras"], "--out", exported)
    assert status == 0, err
    status, _, err = _run(capsys, "explain", "--model", exported, "--images", folder,
                          "--out", tmp_path / "maps")
    assert status == 0, err
    saved_maps = np.load(tmp_path / "maps" / "maps.npz")
    expected = SignedSaliency(model).explain(images)
    for method in METHODS:
        np.testing.assert_array_equal(saved_maps[method], expected[method])


@pytest.mark.slow
def test_sanity_refuses_a_saved_model_before_reading_the_data(capsys, tmp_path, saved,
                                                              pictures):
    _, paths = saved
    out = tmp_path / "sanity"
    status, _, err = _run(capsys, "sanity", "--model", paths["export"], "--data", pictures[0],
                          "--out", out)
    _one_line_error(status, err, f"cannot run the randomisation check of {paths['export']}: "
                                 "the model runs a SavedModel's graph")
    assert "Run it on the Keras model the SavedModel was exported from" in err
    assert not os.path.exists(out / "sanity.json")
