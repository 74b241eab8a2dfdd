"""The tf-signsal command line: each command on tiny inputs, exit codes and messages."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import METHODS, SignedSaliency, data
from tf_signsal._io import read_json
from tf_signsal.cli import CommandError, main
from tf_signsal.cli.evaluate import evaluation_pairs
from tf_signsal.cli.explain import MANIFEST as EXPLAIN_MANIFEST
from tf_signsal.data import files
from tf_signsal.evaluation import (
    ALL_PAIRS,
    PAPER_PAIRS,
    RANDOM_PAIRS,
    AllegianceEvaluator,
    pair_name,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.mark.slow
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


@pytest.mark.parametrize("command", ["demo", "explain", "evaluate", "sanity", "export"])
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
    maps = SignedSaliency(model).explain(data["images"], methods=["positive", "active"])
    logits = maps.logits
    for method in ("positive", "active"):
        np.testing.assert_allclose(data[method], maps[method], atol=1e-6)
    assert "standard" not in data.files
    np.testing.assert_array_equal(data["predictions"], np.argmax(logits, axis=1))
    assert os.path.isfile(out / "maps_000.png") and os.path.isfile(out / "overlays_000.png")

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
    names = tmp_path / "classes.txt"
    names.write_text("class_0\nclass_1\nclass_2\nclass_3\n")
    status, stdout, _ = _run(capsys, "evaluate", "--model", model_file, "--data", folder,
                             "--out", out, "--limit", "5", "--batch-size", "4",
                             "--class-names", names)
    assert status == 0
    assert f"evaluating 5 images: 2 to 3 per class, seeded subset (seed 0) of {folder}" in stdout
    record = json.loads((out / "results.json").read_text())
    assert record["n_images"] == 5 and os.path.isfile(out / "curves_morf.png")
    # Folder order (class folders sorted, then files), then the seeded balanced subset.
    sorted_paths = np.argsort(paths)
    groups = np.array([int(os.path.basename(os.path.dirname(paths[i]))[-1])
                       for i in sorted_paths])
    order = sorted_paths[data.balanced_subset(groups, 5, seed=0)]
    labels = np.array([int(os.path.basename(os.path.dirname(paths[i]))[-1]) for i in order])
    assert sorted(np.bincount(labels)) == [2, 3]
    assert record["data"] == {
        "source": str(folder), "split": None, "limit": 5, "seed": 0,
        "images_per_class": {"class_0": int((labels == 0).sum()),
                             "class_1": int((labels == 1).sum())},
        "labels": "class folders matched by name",
    }
    run = record["run"]
    assert run["model"]["path"] == os.path.abspath(model_file)
    assert len(run["model"]["sha256"]) == 64 and run["num_classes"] == 4
    assert run["parameters"]["pairs"] == [pair_name(p) for p in PAPER_PAIRS]
    assert run["parameters"]["orders"] == ["morf"] and run["parameters"]["batch_size"] == 4
    assert run["parameters"]["attribution"] == "gradient"
    assert {"tf_signsal", "tensorflow", "keras", "python"} <= set(run["versions"])
    assert run["date"][:2] == "20" and run["seconds"] > 0
    model = keras.saving.load_model(model_file)
    expected = AllegianceEvaluator(model).evaluate((images[order], labels), verbose=0)
    for pair in PAPER_PAIRS:
        assert record["auc"][pair_name(pair)] == pytest.approx(expected.auc[pair], abs=1e-12)
        assert pair_name(pair) in stdout
    assert record["accuracy"] == expected.to_dict()["accuracy"]


@pytest.mark.slow
def test_export_then_refuse_to_overwrite(capsys, tmp_path, model_file):
    out = tmp_path / "models" / "signsal" / "1"
    status, stdout, _ = _run(capsys, "export", "--model", model_file, "--out", out)
    assert status == 0 and str(out) in stdout
    loaded = tf.saved_model.load(str(out))
    assert {"serving_default", "explain"} <= set(loaded.signatures)
    status, _, err = _run(capsys, "export", "--model", model_file, "--out", out)
    _assert_one_line_error(status, err, "already exists")


@pytest.mark.slow
def test_tiny_demo(capsys, tmp_path):
    """The whole demo on a tiny setting (its report: maps, training, tables, versions)."""
    out = tmp_path / "demo"
    status, stdout, _ = _run(capsys, "demo", "--out", out, "--epochs", "1", "--train-size", "48",
                             "--test-size", "16", "--image-size", "16", "--seed", "2")
    assert status == 0 and str(out / "report.html") in stdout
    for name in ("report.html", "results.json", "history.json", "model.keras", "maps_grid.png",
                 "history.png", "curves.png", "overlays.png", "signed.png",
                 "maps_over_training_positive.png", "maps_over_training_negative.png"):
        assert os.path.isfile(out / name), name
    page = (out / "report.html").read_text()
    # maps grid, training history, two maps over training, the curves
    assert page.count("data:image/png;base64,") == 7 and "Pointing game" in page
    for text in ("The five maps", "relu(-g)", "Training", "Configuration and versions",
                 "train_size", "tensorflow", "keras", "tf_signsal", "python"):
        assert text in page, text
    record = read_json(out / "results.json")
    assert record["versions"]["tf_signsal"] and record["notes"] == []

    # The recorded pointing scores are those of the saved model on the same test images.
    images, labels, masks = data.synthetic_signs(16, 16, seed=3)  # the demo's seed + 1
    model = keras.saving.load_model(out / "model.keras")
    maps = SignedSaliency(model).explain(images)
    bright = np.array(data.SYNTHETIC_CLASS_IS_BRIGHT)[labels]
    scores = record["pointing_game"]["scores"]
    for method in METHODS:
        per_image = data.pointing_score(maps[method].numpy(), masks, reduce=False)
        assert scores[method]["bright classes"] == pytest.approx(per_image[bright].mean())
        assert scores[method]["dark classes"] == pytest.approx(per_image[~bright].mean())
        assert scores[method]["all"] == pytest.approx(per_image.mean())
    assert scores["chance (shape area)"]["all"] == pytest.approx(masks.mean())
    assert record["allegiance"]["n_images"] == 16
    assert set(record["allegiance"]["auc"]) >= {pair_name(p) for p in PAPER_PAIRS}


# ----------------------------------------------------------------------------- hardening


@pytest.mark.slow
def test_export_overwrite_refuses_user_folders_and_deletes_nothing(
    capsys, tmp_path, model_file, monkeypatch
):
    user = tmp_path / "work"
    (user / "notes").mkdir(parents=True)
    (user / "thesis.tex").write_text("months of work")
    (user / "notes" / "a.txt").write_text("a")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status, _, err = _run(capsys, "export", "--model", model_file, "--out", user, "--overwrite")
    _assert_one_line_error(status, err, str(user))
    monkeypatch.chdir(user)
    status, _, err = _run(capsys, "export", "--model", model_file, "--out", ".", "--overwrite")
    _assert_one_line_error(status, err, "current")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (user / "thesis.tex").read_text() == "months of work"
    # The model file being exported kept inside the SavedModel it would replace: refused
    # (serving.export's `protect`), the file kept.
    saved = tmp_path / "models" / "1"
    assert _run(capsys, "export", "--model", model_file, "--out", saved)[0] == 0
    own = saved / "assets" / "net.keras"
    own.parent.mkdir(exist_ok=True)
    own.write_bytes(open(model_file, "rb").read())
    status, _, err = _run(capsys, "export", "--model", own, "--out", saved, "--overwrite")
    _assert_one_line_error(status, err, "the model being exported")
    assert own.is_file()


@pytest.mark.parametrize("command", ["demo", "explain", "evaluate", "export"])
def test_out_is_checked_before_any_work(capsys, tmp_path, command):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    missing_model = tmp_path / "absent.keras"  # would be the error if --out came later
    argv = {
        "demo": ["demo", "--out", existing],
        "explain": ["explain", "--model", missing_model, "--images", tmp_path, "--out", existing],
        "evaluate": ["evaluate", "--model", missing_model, "--data", "cifar10", "--out",
                     existing],
        "export": ["export", "--model", missing_model, "--out", existing],
    }[command]
    started = time.perf_counter()
    status, _, err = _run(capsys, *argv)
    _assert_one_line_error(status, err, f"--out {existing} exists and is not a folder")
    assert time.perf_counter() - started < 5 and existing.read_text() == "keep me"
    status, _, err = _run(capsys, *[a if a != existing else existing / "sub" for a in argv])
    _assert_one_line_error(status, err, "is a file, not a folder")


def test_corrupt_and_missing_model_files(capsys, tmp_path, pictures):
    out = tmp_path / "o"
    for name, content in [("bad.keras", b"not a zip"), ("bad.h5", b"not hdf5 at all"),
                          ("empty.keras", b"")]:
        path = tmp_path / name
        path.write_bytes(content)
        status, _, err = _run(capsys, "explain", "--model", path, "--images", pictures[0],
                              "--out", out)
        _assert_one_line_error(status, err, f"--model {path} is not a")
        assert "not found" not in err
    zipped = tmp_path / "foreign.keras"  # a zip archive, but not a Keras one
    import zipfile

    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "hello")
    status, _, err = _run(capsys, "export", "--model", zipped, "--out", tmp_path / "e")
    _assert_one_line_error(status, err, f"cannot load the model {zipped}: ")
    status, _, err = _run(capsys, "evaluate", "--model", tmp_path / "gone.keras", "--data",
                          pictures[0], "--out", out)
    _assert_one_line_error(status, err, "model file not found")
    assert not out.exists()


def test_single_output_model(capsys, tmp_path, pictures):
    path = str(tmp_path / "binary.keras")
    small_conv_net(num_classes=1, seed=2).save(path)
    folder = pictures[0]
    status, _, err = _run(capsys, "evaluate", "--model", path, "--data", folder,
                          "--out", tmp_path / "ev")
    _assert_one_line_error(status, err, "`model` has a single output")
    assert not (tmp_path / "ev" / "results.json").exists()
    status, stdout, _ = _run(capsys, "explain", "--model", path, "--images", folder,
                             "--out", tmp_path / "ex")
    assert status == 0 and "single output" in stdout
    saved = np.load(tmp_path / "ex" / "maps.npz")
    assert {"standard", "positive", "negative"} <= set(saved.files)
    assert "active" not in saved.files and "inactive" not in saved.files
    for method in ("active", "inactive"):
        status, _, err = _run(capsys, "explain", "--model", path, "--images", folder,
                              "--out", tmp_path / "ex", "--methods", "positive", method)
        _assert_one_line_error(status, err, "`model` has a single output")


def test_explain_skips_special_and_oversized_files(capsys, tmp_path, model_file, pictures,
                                                   monkeypatch):
    folder, paths, _ = pictures
    fifo = folder / "class_0" / "pipe.jpg"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    large = folder / "large.png"
    _write_png(str(large), np.zeros((30, 20, 3), np.uint8))
    monkeypatch.setattr(files, "MAX_IMAGE_PIXELS", 599)  # 30x20 = 600: one too many
    status, stdout, err = _run(capsys, "explain", "--model", model_file, "--images", folder,
                               "/dev/null", "--out", tmp_path / "o")
    assert status == 0, err
    assert f"tf-signsal: skipped {fifo}: not a regular file (a FIFO)" in err
    assert f"tf-signsal: skipped {large}: 30x20 pixels, more than MAX_IMAGE_PIXELS" in err
    assert "tf-signsal: skipped /dev/null: not a regular file (a character device)" in err
    assert list(np.load(tmp_path / "o" / "maps.npz")["files"]) == sorted(paths)
    assert "explained 6 images" in stdout
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", fifo,
                          "--out", tmp_path / "o")
    assert status == 1 and "no image file to read: all 1 were passed over" in err


def test_explain_replaces_only_the_files_it_wrote(capsys, tmp_path, model_file, rng):
    many = [str(tmp_path / "in" / f"{i:02d}.png") for i in range(10)]
    for path in many:
        _write_png(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    out = tmp_path / "maps"
    out.mkdir()
    status, _, _ = _run(capsys, "explain", "--model", model_file, "--images", *many,
                        "--out", out)
    assert status == 0
    assert read_json(out / EXPLAIN_MANIFEST)["files"] == [
        "maps.npz", "maps_000.png", "overlays_000.png", "maps_001.png", "overlays_001.png"
    ]
    # The user's files put in the folder since are left alone.
    (out / "mine.txt").write_text("the user's")
    (out / "maps_007.png").write_bytes(b"the user's figure")  # a name explain could use
    status, stdout, _ = _run(capsys, "explain", "--model", model_file, "--images", many[0],
                             "--out", out)
    assert status == 0 and "removed the earlier explain's maps_001.png" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [EXPLAIN_MANIFEST, "maps.npz", "maps_000.png", "maps_007.png", "mine.txt",
         "overlays_000.png"]
    )
    assert (out / "maps_007.png").read_bytes() == b"the user's figure"
    assert len(np.load(out / "maps.npz")["files"]) == 1
    # A maps.npz that explain did not write is never replaced.
    other = tmp_path / "other"
    other.mkdir()
    (other / "maps.npz").write_bytes(b"someone else's")
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", many[0],
                          "--out", other)
    _assert_one_line_error(status, err, "holds maps.npz, which explain did not write there")
    assert (other / "maps.npz").read_bytes() == b"someone else's"
    # Nor is a folder of the user's files written in, whatever their names.
    (other / "maps.npz").rename(other / "thesis.tex")
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", many[0],
                          "--out", other)
    _assert_one_line_error(status, err, f"--out {other} is a folder that tf-signsal did not")
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


# ----------------------------------------------------------------------------- newcomers


def _python(code, env=None, timeout=300):
    env = {k: v for k, v in (env or os.environ).items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_help_does_not_import_tensorflow():
    code = (
        "import sys, time\n"
        "started = time.perf_counter()\n"
        "from tf_signsal import cli\n"
        "for argv in ([], ['--help'], ['explain', '--help'], ['evaluate', '--help'],\n"
        "             ['demo', '--help'], ['sanity', '--help'], ['export', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
        "print('seconds', time.perf_counter() - started)\n"
    )
    result = _python(code, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--attribution" in result.stdout and "seconds" in result.stdout
    assert float(result.stdout.split("seconds")[-1]) < 2.0


@pytest.mark.slow
def test_no_tensorflow_log_lines_unless_debug(tmp_path, model_file, pictures):
    image = pictures[1][0]
    code = (
        "import sys; from tf_signsal.cli import main\n"
        f"sys.exit(main(['explain', '--model', {model_file!r}, '--images', {image!r},"
        f" '--out', {str(tmp_path / 'o')!r}] + sys.argv[1:]))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    noise = ("I0000", "W0000", "E0000", "WARNING: All log messages")
    lines = result.stderr.splitlines()
    assert not [line for line in lines if line.startswith(noise)], result.stderr[-2000:]
    assert "explained 1 images" in result.stdout


def test_evaluate_without_class_names_leaves_accuracy_out(capsys, tmp_path, model_file,
                                                          pictures):
    out = tmp_path / "eval"
    status, stdout, _ = _run(capsys, "evaluate", "--model", model_file, "--data", pictures[0],
                             "--out", out, "--limit", "2", "--seed", "3",
                             "--orders", "morf", "lerf", "--fills", "black", "0.5",
                             "--pairs", "all", "--attribution", "gradient_x_input")
    assert status == 0
    record = read_json(out / "results.json")
    assert record["accuracy"] is None and "accuracy at 0% deleted" not in stdout
    assert "accuracy not measured" in stdout and "2 class folders for a model of 4" in stdout
    assert record["data"]["labels"].startswith("none: 2 class folders for a model of 4")
    assert record["data"]["images_per_class"] == {"class_0": 1, "class_1": 1}
    assert "seeded subset (seed 3)" in stdout
    assert set(record["orders"]) == {"morf", "lerf"}
    assert record["run"]["parameters"]["pairs"] == [
        pair_name(p) for p in evaluation_pairs("all", ["black", 0.5])
    ]
    assert record["run"]["parameters"]["attribution"] == "gradient_x_input"
    assert "random/0.5" in record["auc"] and "inactive/0.5" in record["auc"]


def test_evaluation_pairs():
    assert evaluation_pairs("paper", ["black", "white"]) == list(PAPER_PAIRS)
    assert evaluation_pairs("all", ["black", "white"]) == list(ALL_PAIRS + RANDOM_PAIRS)
    assert evaluation_pairs("paper", ["white"]) == [p for p in PAPER_PAIRS if p[1] == "white"]
    assert evaluation_pairs("paper", ["black", 0.5]) == [
        *(p for p in PAPER_PAIRS if p[1] == "black"), *((m, 0.5) for m in METHODS)
    ]


def test_explain_shows_class_names(capsys, tmp_path, pictures):
    path = str(tmp_path / "ten.keras")
    small_conv_net(num_classes=10, seed=4).save(path)
    image = pictures[1][0]
    status, stdout, _ = _run(capsys, "explain", "--model", path, "--images", image,
                             "--out", tmp_path / "o", "--data", "cifar10")
    assert status == 0
    predicted = int(np.load(tmp_path / "o" / "maps.npz")["predictions"][0])
    assert f"{image}: predicted {data.class_names('cifar10')[predicted]} ({predicted})" in stdout
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"thing{i}" for i in range(10)))
    status, stdout, _ = _run(capsys, "explain", "--model", path, "--images", image,
                             "--out", tmp_path / "o", "--class-names", names)
    assert status == 0 and f"predicted thing{predicted} ({predicted})" in stdout
    names.write_text("a\nb\n")
    status, _, err = _run(capsys, "explain", "--model", path, "--images", image,
                          "--out", tmp_path / "o", "--class-names", names)
    _assert_one_line_error(status, err, "holds 2 class names, but the model has 10 classes")


def test_demo_default_out_is_git_ignored():
    from tf_signsal.cli import build_parser
    from tf_signsal.cli.demo import DEMO_OUT

    assert build_parser().parse_args(["demo"]).out == DEMO_OUT
    ignored = subprocess.run(["git", "check-ignore", "-q", os.path.join(DEMO_OUT, "report.html")],
                             cwd=REPO)
    assert ignored.returncode == 0


def test_sanity_writes_the_checks_of_a_seeded_subset(capsys, tmp_path, model_file, pictures):
    from tf_signsal.evaluation import RandomizationResult, random_logit_check, randomization_check

    folder, paths, images = pictures
    out = tmp_path / "sanity"
    status, stdout, _ = _run(capsys, "sanity", "--model", model_file, "--data", folder,
                             "--limit", "4", "--methods", "positive", "active", "--out", out)
    assert status == 0, stdout
    record = json.loads((out / "sanity.json").read_text())
    assert os.path.isfile(out / "randomization.png") and record["data"]["limit"] == 4
    check = RandomizationResult.from_dict(record["randomization"])
    assert check.n_images == 4 and list(check.spearman) == ["positive", "active"]
    # The same subset and seed in-process give the same numbers.
    model = keras.saving.load_model(model_file)
    sorted_paths = np.argsort(paths)
    groups = np.array([int(os.path.basename(os.path.dirname(paths[i]))[-1])
                       for i in sorted_paths])
    chosen = images[sorted_paths[data.balanced_subset(groups, 4, seed=0)]]
    expected = randomization_check(model, chosen, methods=["positive", "active"], seed=0)
    assert check == expected
    assert record["random_logit"] == pytest.approx(
        random_logit_check(model, chosen, methods=["positive", "active"], seed=0), abs=1e-12
    )
    assert "random-logit check" in stdout


def test_sanity_of_another_attribution(capsys, tmp_path, model_file, pictures):
    """--attribution reaches both checks: the record holds the in-process checks of the
    integrated-gradients maps, which differ from the gradient's."""
    from tf_signsal.evaluation import RandomizationResult, random_logit_check, randomization_check

    folder, paths, images = pictures
    out = tmp_path / "sanity"
    status, _, err = _run(capsys, "sanity", "--model", model_file, "--data", folder,
                          "--limit", "2", "--methods", "positive", "--out", out,
                          "--attribution", "integrated_gradients")
    assert status == 0, err
    record = read_json(out / "sanity.json")
    assert record["run"]["attribution"] == "integrated_gradients"
    model = keras.saving.load_model(model_file)
    sorted_paths = np.argsort(paths)
    groups = np.array([int(os.path.basename(os.path.dirname(paths[i]))[-1])
                       for i in sorted_paths])
    chosen = images[sorted_paths[data.balanced_subset(groups, 2, seed=0)]]
    options = {"methods": ["positive"], "seed": 0}
    expected = randomization_check(model, chosen, attribution="integrated_gradients", **options)
    assert RandomizationResult.from_dict(record["randomization"]) == expected
    assert expected != randomization_check(model, chosen, **options)
    assert record["random_logit"] == pytest.approx(
        random_logit_check(model, chosen, attribution="integrated_gradients", **options),
        abs=1e-12,
    )
    with pytest.raises(SystemExit) as exit_info:  # a name of vocabulary.ATTRIBUTIONS only
        main(["sanity", "--model", "m", "--data", "d", "--out", "o", "--attribution", "lrp"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_evaluate_fills_with_parameters(capsys, tmp_path, model_file, pictures):
    """--fills takes a fill's parameter (blur:2.0, road:0.02, parsed by parse_fill): the
    record holds the in-process result of those fills."""
    from tf_signsal.evaluation import Blur, Road

    folder, paths, images = pictures
    out = tmp_path / "eval"
    status, stdout, err = _run(capsys, "evaluate", "--model", model_file, "--data", folder,
                               "--out", out, "--fills", "black", "blur:2.0", "road:0.02")
    assert status == 0, err
    record = read_json(out / "results.json")
    fills = ["black", Blur(2.0), Road(0.02)]
    pairs = evaluation_pairs("paper", fills)
    assert record["run"]["parameters"]["pairs"] == [pair_name(p) for p in pairs]
    assert "positive/blur(2.0)" in record["auc"] and "inactive/road(0.02)" in record["auc"]
    model = keras.saving.load_model(model_file)
    expected = AllegianceEvaluator(model, pairs=pairs, seed=0).evaluate(
        images[np.argsort(paths)], verbose=0
    )
    assert record["auc"] == pytest.approx(expected.to_dict()["auc"], abs=1e-12)
    for bad in ("blur:x", "mean:2", "purple"):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "--model", "m", "--data", "d", "--out", "o", "--fills", bad])
        assert exit_info.value.code == 2 and "argument --fills" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs and data


@pytest.mark.parametrize("command, names", [("evaluate", ["results.json", "curves_morf.png"]),
                                            ("sanity", ["sanity.json", "randomization.png"])])
def test_evaluate_and_sanity_replace_only_the_files_they_wrote(capsys, tmp_path, model_file,
                                                               pictures, command, names):
    out = tmp_path / "out"
    out.mkdir()
    for name in names:
        (out / name).write_text("the user's notes")
    argv = [command, "--model", tmp_path / "absent.keras", "--data", pictures[0],
            "--limit", "2", "--out", out]
    status, _, err = _run(capsys, *argv)  # refused before the model is even looked for
    _assert_one_line_error(
        status, err, f"--out {out} holds {', '.join(names)}, which {command} did not write"
    )
    assert "choose another --out, or move or remove them" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all((out / name).read_text() == "the user's notes" for name in names)
    # Nor does it write in a folder of the user's files of other names.
    (out / names[1]).unlink()
    (out / names[0]).rename(out / "notes.json")
    argv[2] = model_file
    status, _, err = _run(capsys, *argv)
    _assert_one_line_error(status, err, f"--out {out} is a folder that tf-signsal did not write")
    # Its own files it replaces on a rerun; the user's others it leaves alone.
    (out / "notes.json").rename(tmp_path / "notes.json")
    for _ in range(2):
        status, _, err = _run(capsys, *argv)
        assert status == 0, err
        if not (out / "notes.json").exists():  # put in the folder once tf-signsal wrote it
            (tmp_path / "notes.json").rename(out / "notes.json")
    assert read_json(out / f".tf-signsal-{command}.json") == {"command": command,
                                                              "files": names}
    assert (out / "notes.json").read_text() == "the user's notes"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f".tf-signsal-{command}.json", "notes.json", *names]
    )


def test_a_failed_write_leaves_no_partial_file(capsys, tmp_path, model_file, pictures,
                                              monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "out"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Figure, "savefig", fail)
        status, _, err = _run(capsys, "evaluate", "--model", model_file, "--data",
                              pictures[0], "--limit", "2", "--out", out)
    _assert_one_line_error(status, err, "disk full")
    # Nothing is moved into --out (nor created) unless complete, and nothing is left beside.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures"]
    status, _, err = _run(capsys, "evaluate", "--model", model_file, "--data", pictures[0],
                          "--limit", "2", "--out", out)
    assert status == 0, err
    assert (out / "curves_morf.png").is_file()


def test_out_inside_the_data_is_refused(capsys, tmp_path, pictures):
    folder = pictures[0]
    absent = tmp_path / "absent.keras"  # refused before the model is looked for
    (tmp_path / "link").symlink_to(folder / "class_0")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for argv, fragment in [
        (["evaluate", "--data", folder, "--out", folder],
         f"--out {folder} is the --data folder {folder}"),
        (["sanity", "--data", folder, "--out", folder / "class_1" / "runs"],
         f"lies inside the --data folder {folder}"),
        (["evaluate", "--data", folder, "--split", "class_0", "--out", tmp_path / "link" / "o"],
         f"lies inside the --data folder {folder}"),
        (["explain", "--images", folder / "class_0" / "p0.png", folder, "--out",
          folder / "maps"], f"lies inside the --images folder {folder}"),
        (["evaluate", "--data", "cifar10", "--data-dir", folder, "--out", folder / "o"],
         f"lies inside the --data-dir folder {folder}"),
    ]:
        status, _, err = _run(capsys, argv[0], "--model", absent, *argv[1:])
        _assert_one_line_error(status, err, fragment)
        assert "choose an --out outside" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_dataset_folder_of_splits_is_refused(capsys, tmp_path, model_file, rng):
    root = tmp_path / "cifar10"
    for split in ("train", "test"):
        for name in ("cat", "ship"):
            _write_png(str(root / split / name / "0.png"),
                       rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    for command in ("evaluate", "sanity"):
        status, _, err = _run(capsys, command, "--model", model_file, "--data", root,
                              "--limit", "2", "--out", tmp_path / "o")
        _assert_one_line_error(
            status, err, f"--data {root} holds the splits test, train of a dataset"
        )
        assert f"pass one split: --data {root / 'test'} (or --split test)" in err
        assert f"--data cifar10 --data-dir {root} --split test" in err
        assert not (tmp_path / "o").exists()
    # A split, named either way, is read as its classes.
    for argv in (["--data", root / "test"], ["--data", root, "--split", "test"]):
        status, stdout, err = _run(capsys, "evaluate", "--model", model_file, *argv,
                                   "--out", tmp_path / "o")
        assert status == 0, err
        assert "evaluating 2 images: 1 per class" in stdout


def test_an_unreadable_file_in_the_data_is_named(capsys, tmp_path, model_file, pictures):
    folder = pictures[0]
    junk = folder / "class_1" / "junk.png"
    junk.write_bytes(b"junk")
    for command in ("evaluate", "sanity"):
        status, _, err = _run(capsys, command, "--model", model_file, "--data", folder,
                              "--out", tmp_path / "o")
        _assert_one_line_error(status, err, f"cannot read image {junk}: not a JPEG, PNG")
    # A file that starts as a PNG but is not one is found only by decoding it, inside the
    # pipeline: the message is TensorFlow's reason, without its op names.
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    for command in ("evaluate", "sanity"):
        status, _, err = _run(capsys, command, "--model", model_file, "--data", folder,
                              "--out", tmp_path / "o")
        _assert_one_line_error(status, err, f"cannot read the data {folder}: Invalid PNG")
        assert "{{" not in err and "[Op:" not in err and "[[" not in err
    assert not (tmp_path / "o").exists()
