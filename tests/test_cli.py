"""The tf-signsal command line: each command on tiny inputs, exit codes and messages."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import METHODS, SignedSaliency, datasets
from tf_signsal.cli import CommandError, main
from tf_signsal.evaluation import PAPER_PAIRS, AllegianceEvaluator, pair_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "net.keras")
    small_conv_net(num_classes=4, seed=1).save(path)
    return path


def _write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(array))


@pytest.fixture
def pictures(tmp_path):
    """8x8 RGB PNGs in two class folders, and their exact [0, 1] values."""
    rng = np.random.default_rng(3)
    arrays = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    paths = []
    for index, array in enumerate(arrays):
        paths.append(str(tmp_path / "pictures" / f"class_{index % 2}" / f"p{index}.png"))
        _write_png(paths[-1], array)
    return tmp_path / "pictures", paths, arrays.astype(np.float32) / 255.0


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assert_one_line_error(status, err, fragment):
    assert status == 1
    assert err.startswith("tf-signsal: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


# ----------------------------------------------------------------------------- usage


def test_module_help_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "tf_signsal", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for command in ("demo", "explain", "evaluate", "export", "example:"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["demo", "explain", "evaluate", "export"])
def test_each_command_help_shows_an_example(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"tf-signsal {command} --" in out.split("example:")[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required"),
        (["paint"], "invalid choice"),
        (["demo", "--epochs", "0"], "must be a positive integer"),
        (["explain", "--model", "m.keras", "--out", "o"], "--images"),
        (["explain", "--model", "m", "--images", "x", "--out", "o", "--methods", "sideways"],
         "invalid choice"),
        (["evaluate", "--model", "m", "--data", "d", "--out", "o", "--pairs", "some"],
         "invalid choice"),
        (["export", "--model", "m"], "--out"),
        (["export", "--model", "m", "--out", "o", "--jacobian", "sideways"], "invalid choice"),
        (["explain", "--model", "m", "--images", "x", "--out", "o", "--targets", "-1"],
         "must be a non-negative integer, received '-1'"),
        (["explain", "--model", "m", "--images", "x", "--out", "o", "--batch-size", "2.5"],
         "must be a positive integer, received '2.5'"),
    ],
)
def test_bad_usage_exits_2_with_argparse_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: tf-signsal" in err and message in err


# ----------------------------------------------------------------------------- errors


def test_missing_model_file(capsys, tmp_path, pictures):
    missing = tmp_path / "nowhere.keras"
    status, _, err = _run(capsys, "explain", "--model", missing, "--images", pictures[0],
                          "--out", tmp_path / "o")
    _assert_one_line_error(status, err, f"model file not found: {missing}")
    status, _, err = _run(capsys, "export", "--model", missing, "--out", tmp_path / "e")
    _assert_one_line_error(status, err, "model file not found")


def test_model_that_is_not_a_classifier(capsys, tmp_path, pictures):
    inputs = keras.Input((8, 8, 3))
    path = str(tmp_path / "segmenter.keras")
    keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs)).save(path)
    status, _, err = _run(capsys, "explain", "--model", path, "--images", pictures[0],
                          "--out", tmp_path / "o")
    _assert_one_line_error(status, err, "is not a classifier")
    assert not (tmp_path / "o").exists()


def test_unreadable_image_and_debug(capsys, tmp_path, model_file):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    argv = ["explain", "--model", model_file, "--images", broken, "--out", tmp_path / "o"]
    status, _, err = _run(capsys, *argv)
    _assert_one_line_error(status, err, f"cannot read image {broken}")
    with pytest.raises(CommandError, match="cannot read image"):
        main([str(a) for a in [*argv, "--debug"]])
    with pytest.raises(CommandError, match="cannot read image"):
        main([str(a) for a in ["--debug", *argv]])


def test_missing_image_path_and_bad_targets(capsys, tmp_path, model_file, pictures):
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images",
                          tmp_path / "nope.png", "--out", tmp_path / "o")
    _assert_one_line_error(status, err, "image file or folder not found")
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", pictures[0],
                          "--out", tmp_path / "o", "--targets", "1", "2")
    _assert_one_line_error(status, err, "--targets takes one class for all images or one per")
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", pictures[0],
                          "--out", tmp_path / "o", "--targets", "9")
    _assert_one_line_error(status, err, "`targets` must be class indices in [0, 4)")


def test_evaluate_data_that_is_neither(capsys, tmp_path, model_file):
    status, _, err = _run(capsys, "evaluate", "--model", model_file, "--data",
                          tmp_path / "absent", "--out", tmp_path / "o")
    _assert_one_line_error(status, err, "--data must be cifar10, imagenette or an image folder")


# ----------------------------------------------------------------------------- commands


def test_explain_writes_the_maps_of_each_image(capsys, tmp_path, model_file, pictures):
    folder, paths, expected_images = pictures
    other = str(tmp_path / "odd.png")  # another size and grey: resized, made RGB
    _write_png(other, np.full((12, 10, 1), 200, np.uint8))
    out = tmp_path / "out"
    status, stdout, _ = _run(capsys, "explain", "--model", model_file, "--images", folder, other,
                             "--out", out, "--methods", "positive", "active")
    assert status == 0 and "maps.npz" in stdout
    data = np.load(out / "maps.npz")
    assert list(data["files"]) == sorted(paths) + [other]
    np.testing.assert_allclose(data["images"][:6], expected_images[np.argsort(paths)], atol=1e-7)
    np.testing.assert_allclose(data["images"][6], np.full((8, 8, 3), 200 / 255), atol=1e-6)
    model = keras.saving.load_model(model_file)
    maps, logits = SignedSaliency(model).explain_with_logits(data["images"],
                                                             methods=["positive", "active"])
    for method in ("positive", "active"):
        np.testing.assert_allclose(data[method], maps[method], atol=1e-6)
    assert "standard" not in data.files
    np.testing.assert_array_equal(data["predictions"], np.argmax(logits, axis=1))
    assert os.path.isfile(out / "maps_000.png")

    status, _, _ = _run(capsys, "explain", "--model", model_file, "--images", *paths[:2],
                        "--out", out, "--targets", "3", "--batch-size", "1")
    data = np.load(out / "maps.npz")
    np.testing.assert_array_equal(data["targets"], [3, 3])
    maps = SignedSaliency(model).explain(data["images"], targets=[3, 3])
    for method in METHODS:
        np.testing.assert_allclose(data[method], maps[method], atol=1e-6)


def test_evaluate_on_an_image_folder(capsys, tmp_path, model_file, pictures):
    folder, paths, images = pictures
    out = tmp_path / "eval"
    status, stdout, _ = _run(capsys, "evaluate", "--model", model_file, "--data", folder,
                             "--out", out, "--limit", "5", "--batch-size", "4")
    assert status == 0
    record = json.loads((out / "results.json").read_text())
    assert record["n_images"] == 5 and os.path.isfile(out / "curves.png")
    # Folder order: class folders sorted, then files: the first five files.
    order = np.argsort(paths)[:5]
    labels = np.array([int(os.path.basename(os.path.dirname(paths[i]))[-1]) for i in order])
    model = keras.saving.load_model(model_file)
    expected = AllegianceEvaluator(model).evaluate((images[order], labels), verbose=0)
    for pair in PAPER_PAIRS:
        assert record["auc"][pair_name(pair)] == pytest.approx(expected.auc[pair], abs=1e-12)
        assert pair_name(pair) in stdout
    assert record["accuracy"] == expected.to_dict()["accuracy"]


def test_export_then_refuse_to_overwrite(capsys, tmp_path, model_file):
    out = tmp_path / "models" / "signsal" / "1"
    status, stdout, _ = _run(capsys, "export", "--model", model_file, "--out", out)
    assert status == 0 and str(out) in stdout
    loaded = tf.saved_model.load(str(out))
    assert {"serving_default", "explain"} <= set(loaded.signatures)
    status, _, err = _run(capsys, "export", "--model", model_file, "--out", out)
    _assert_one_line_error(status, err, "already exists")


def test_tiny_demo(capsys, tmp_path):
    out = tmp_path / "demo"
    status, stdout, _ = _run(capsys, "demo", "--out", out, "--epochs", "1", "--train-size", "48",
                             "--test-size", "16", "--image-size", "16", "--seed", "2")
    assert status == 0 and str(out / "report.html") in stdout
    for name in ("report.html", "results.json", "history.json", "model.keras", "maps_grid.png",
                 "curves.png", "maps_over_training_positive.png",
                 "maps_over_training_negative.png"):
        assert os.path.isfile(out / name), name
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Pointing game" in page
    record = json.loads((out / "results.json").read_text())

    # The recorded pointing scores are those of the saved model on the same test images.
    images, labels, masks = datasets.synthetic_signs(16, 16, seed=3)  # the demo's seed + 1
    model = keras.saving.load_model(out / "model.keras")
    maps = SignedSaliency(model).explain(images)
    bright = np.array(datasets.SYNTHETIC_CLASS_IS_BRIGHT)[labels]
    scores = record["pointing_game"]["scores"]
    for method in METHODS:
        per_image = datasets.pointing_score(maps[method].numpy(), masks, reduce=False)
        assert scores[method]["bright classes"] == pytest.approx(per_image[bright].mean())
        assert scores[method]["dark classes"] == pytest.approx(per_image[~bright].mean())
        assert scores[method]["all"] == pytest.approx(per_image.mean())
    assert scores["chance (shape area)"]["all"] == pytest.approx(masks.mean())
    assert record["allegiance"]["n_images"] == 16
    assert set(record["allegiance"]["auc"]) >= {pair_name(p) for p in PAPER_PAIRS}
