"""The SavedModel explainer: loads with plain TensorFlow and gives the in-process maps."""

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import METHODS, SignedSaliency, serving
from tf_signsal.serving import export

pytestmark = pytest.mark.slow  # SavedModel exports and subprocesses


def _softmax_model():
    base = small_conv_net(kind="functional", seed=1)
    return keras.Model(base.input, keras.layers.Softmax()(base.output))


# Run in a fresh interpreter, away from the repository, without tf_signsal.
_LOAD_AND_EXPLAIN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    images = tf.constant(np.load(sys.argv[1]))
    outputs = {}
    for index, path in enumerate(sys.argv[3:]):
        loaded = tf.saved_model.load(path)
        explained = loaded.signatures["explain"](images=images)
        served = loaded.signatures["serving_default"](images)
        outputs.update({f"{index}/{k}": v.numpy() for k, v in explained.items()})
        outputs.update({f"{index}/served/{k}": v.numpy() for k, v in served.items()})
    assert "tf_signsal" not in sys.modules, "the SavedModel must not need tf_signsal"
    np.savez(sys.argv[2], **outputs)
    """
)


def _plain_environment():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_fresh_process_gets_the_in_process_maps(tmp_path, rng):
    images = rng.random((5, 8, 8, 3), dtype=np.float32)
    models = [small_conv_net(kind="functional"), _softmax_model()]
    paths = [str(tmp_path / "models" / f"m{i}" / "1") for i in range(len(models))]
    export(models[0], paths[0])
    with pytest.warns(UserWarning, match="softmax"):
        export(models[1], paths[1])
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_EXPLAIN, "images.npy", "out.npz", *paths],
        cwd=tmp_path,
        env=_plain_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    for index, model in enumerate(models):
        with pytest.warns(UserWarning) if index == 1 else contextlib.nullcontext():
            maps = SignedSaliency(model).explain(images)
            logits = maps.logits
        for method in METHODS:
            np.testing.assert_allclose(out[f"{index}/{method}"], maps[method], atol=1e-6, rtol=0)
        np.testing.assert_allclose(out[f"{index}/logits"], logits, atol=1e-6, rtol=1e-6)
        np.testing.assert_array_equal(out[f"{index}/predictions"], np.argmax(logits, axis=1))
        # serving_default is the model itself (the softmax model still serves probabilities).
        (served,) = [k for k in out.files if k.startswith(f"{index}/served/")]
        np.testing.assert_allclose(out[served], model(images), atol=1e-6, rtol=1e-6)


def _saved_model_cli():
    """TensorFlow's saved_model_cli: beside this Python (a virtual environment that is
    not activated), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return beside if os.path.exists(beside) else shutil.which("saved_model_cli") or beside


def test_saved_model_cli_lists_both_signatures(tmp_path):
    path = export(small_conv_net(), tmp_path / "signsal" / "1")
    result = subprocess.run(
        [_saved_model_cli(), "show", "--all", "--dir", path],
        env=_plain_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "signature_def['serving_default']" in text
    assert "signature_def['explain']" in text
    explain = text.split("signature_def['explain']")[1].split("signature_def[")[0]
    assert "inputs['images']" in explain
    # The runtime shape check of `explain` keeps the listed shape.
    assert "shape: (-1, 8, 8, 3)" in explain.split("outputs")[0]
    for name in (*METHODS, "logits", "predictions"):
        assert f"outputs['{name}']" in explain


def test_subclassed_model_needs_image_shape(tmp_path, rng):
    model = small_conv_net(kind="subclassed")
    images = rng.random((3, 8, 8, 3), dtype=np.float32)
    model(images)
    with pytest.raises(ValueError, match="pass `image_shape`"):
        export(model, tmp_path / "a")
    loaded = tf.saved_model.load(export(model, tmp_path / "b", image_shape=(8, 8, 3)))
    out = loaded.signatures["explain"](images=tf.constant(images))
    maps = SignedSaliency(model).explain(images)
    for method in METHODS:
        np.testing.assert_allclose(out[method], maps[method], atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(8, 8), (8, 0, 3), (8.0, 8, 3)])
def test_bad_image_shape(tmp_path, shape):
    with pytest.raises(ValueError, match="`image_shape` must be"):
        export(small_conv_net(), tmp_path / "m", image_shape=shape)
    assert os.listdir(tmp_path) == []


def test_not_a_classifier_leaves_nothing(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))  # (B, 6, 6, 2): no classes
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\)"):
        export(model, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_existing_path_and_overwrite(tmp_path, rng):
    path = tmp_path / "m"
    export(small_conv_net(seed=0), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export(small_conv_net(seed=0), path)
    replacement = small_conv_net(seed=3)
    export(replacement, path, overwrite=True)
    images = rng.random((2, 8, 8, 3), dtype=np.float32)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](tf.constant(images))
    np.testing.assert_allclose(next(iter(served.values())), replacement(images), atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_failed_write_keeps_the_old_model_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "m"
    export(small_conv_net(), path)
    before = sorted(os.listdir(path))

    def fail(obj, export_dir, **kwargs):
        open(os.path.join(export_dir, "saved_model.pb"), "wb").close()  # half-written
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export(small_conv_net(seed=2), path, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        export(small_conv_net(seed=2), tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["m"]
    assert sorted(os.listdir(path)) == before


def test_batch_jacobian_export_gives_the_same_maps(tmp_path, rng):
    # The mode recommended for GPU servers, exported from this CPU machine.
    model = small_conv_net(num_classes=7, seed=4)
    images = rng.random((3, 8, 8, 3), dtype=np.float32)
    path = export(model, tmp_path / "m", jacobian="batch_jacobian", classes_per_chunk=3)
    out = tf.saved_model.load(path).signatures["explain"](images=tf.constant(images))
    maps = SignedSaliency(model, jacobian="loop").explain(images)
    for method in METHODS:
        np.testing.assert_allclose(out[method], maps[method], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- hardening


def _refuse_any_work(monkeypatch):
    """Make any work past the path checks (maps, tracing) fail the test."""

    def work(*args, **kwargs):
        raise AssertionError("export did work before refusing the path")

    monkeypatch.setattr(serving, "SignedSaliency", work)
    monkeypatch.setattr(keras.export, "ExportArchive", work)


def _tree(folder):
    """Every path under `folder` with its content (files) or None (folders)."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in folders:
            found[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                found[os.path.relpath(os.path.join(root, name), folder)] = file.read()
    return found


def _write(path, data=b"the user's"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def _fake_saved_model(folder):
    _write(os.path.join(folder, "saved_model.pb"), b"pb")
    _write(os.path.join(folder, "fingerprint.pb"), b"fp")
    _write(os.path.join(folder, "variables", "variables.index"), b"index")
    os.makedirs(os.path.join(folder, "assets"))


@pytest.mark.parametrize(
    "layout",
    ["user files", "versions folder", "foreign variables", "warmup requests", "file"],
)
def test_overwrite_never_replaces_what_is_not_a_saved_model(tmp_path, monkeypatch, layout):
    # A user's folder, `models/signsal` instead of `models/signsal/1`, a SavedModel with
    # something of the user's in it, a file: refused even with overwrite=True, untouched.
    path = tmp_path / "target"
    if layout == "user files":
        _write(str(path / "model.keras"))
        _write(str(path / "notes" / "todo.txt"))
    elif layout == "versions folder":
        _fake_saved_model(str(path / "1"))
        _fake_saved_model(str(path / "2"))
    elif layout == "foreign variables":
        _fake_saved_model(str(path))
        _write(str(path / "variables" / "backup.zip"))
    elif layout == "warmup requests":
        _fake_saved_model(str(path))
        _write(str(path / "assets.extra" / "tf_serving_warmup_requests"))
    else:
        _write(str(path))
    before = _tree(tmp_path)
    model = small_conv_net()
    _refuse_any_work(monkeypatch)
    with pytest.raises(FileExistsError, match=r"`path` .*target is .*replaces only"):
        export(model, path, overwrite=True)
    assert _tree(tmp_path) == before


def test_overwrite_never_replaces_the_current_directory_or_the_model_file(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # an empty folder, replaceable if it were not the current one
    model = small_conv_net()
    _refuse_any_work(monkeypatch)
    for path, where in [(".", "the current directory"), ("..", "a parent of the current")]:
        with pytest.raises(ValueError, match=f"`path` .* is {where}"):
            export(model, path, overwrite=True)
    # A SavedModel folder that holds the file the model was loaded from (the CLI passes it).
    saved = tmp_path / "saved"
    _fake_saved_model(str(saved))
    _write(str(saved / "assets" / "model.keras"))
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=r"holds .*model\.keras, the model being exported"):
        export(model, saved, overwrite=True, protect=[saved / "assets" / "model.keras"])
    assert _tree(tmp_path) == before


def test_overwrite_replaces_a_saved_model_or_an_empty_folder(tmp_path, rng):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileExistsError, match="empty folder.*overwrite=True"):
        export(small_conv_net(), empty)
    model = small_conv_net(seed=5)
    export(model, empty, overwrite=True)
    images = rng.random((2, 8, 8, 3), dtype=np.float32)
    served = tf.saved_model.load(str(empty)).signatures["serving_default"](tf.constant(images))
    np.testing.assert_allclose(next(iter(served.values())), model(images), atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_failed_export_leaves_no_new_folders(tmp_path, monkeypatch):
    def fail(obj, export_dir, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export(small_conv_net(), tmp_path / "models" / "signsal" / "1")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_permissions_follow_the_umask(tmp_path, mask):
    # Not mkdtemp's private 0700: TF Serving often runs as another user.
    previous = os.umask(mask)
    try:
        path = export(small_conv_net(), tmp_path / "signsal" / "1")
    finally:
        os.umask(previous)
    modes = {".": stat.S_IMODE(os.stat(path).st_mode)}
    for name in _tree(path):
        modes[name] = stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode)
    assert {"saved_model.pb", "variables", "variables/variables.index"} <= set(modes)
    for name, mode in modes.items():
        folder = os.path.isdir(os.path.join(path, name))
        assert mode == (0o777 if folder else 0o666) & ~mask, (name, oct(mode))
    # The version's parent, created by `export`, too.
    assert stat.S_IMODE(os.stat(tmp_path / "signsal").st_mode) == 0o777 & ~mask


def test_dynamic_height_and_width(tmp_path, rng):
    model = small_conv_net(input_shape=(None, None, 3), seed=6)
    explain = tf.saved_model.load(export(model, tmp_path / "m")).signatures["explain"]
    saliency = SignedSaliency(model)
    for size in [(8, 8), (12, 10)]:
        images = rng.random((3, *size, 3), dtype=np.float32)
        out = explain(images=tf.constant(images))
        maps = saliency.explain(images)
        logits = maps.logits
        for method in METHODS:
            assert out[method].shape == (3, *size)
            np.testing.assert_allclose(out[method], maps[method], atol=1e-6, rtol=0)
        np.testing.assert_allclose(out["logits"], logits, atol=1e-6, rtol=1e-6)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An exported small classifier: (model, path)."""
    model = small_conv_net(seed=7)
    return model, export(model, tmp_path_factory.mktemp("served") / "1")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_explain_signature_refuses_non_finite_pixels(served, rng, bad):
    images = rng.random((2, 8, 8, 3), dtype=np.float32)
    images[1, 3, 4, 2] = bad
    explain = tf.saved_model.load(served[1]).signatures["explain"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="images contain NaN or Inf pixels"):
        explain(images=tf.constant(images))


@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (2, 16, 16, 3), (2, 8, 9, 3)])
def test_explain_signature_refuses_other_shapes(served, shape):
    # The in-process API refuses these; the served signature used to answer a raw graph
    # error (channels) or maps of images the model was not made for (height, width).
    explain = tf.saved_model.load(served[1]).signatures["explain"]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"images \[2,\d+,\d+,\d\] is not compatible with expected shape \[\?,8,8,3\]",
    ):
        explain(images=tf.zeros(shape))


def test_explain_signature_refuses_another_rank(served):
    # A rank-3 batch used to abort the whole process (a failed check in the convolution):
    # run it in a fresh interpreter.
    code = textwrap.dedent(
        """
        import sys
        import tensorflow as tf

        explain = tf.saved_model.load(sys.argv[1]).signatures["explain"]
        try:
            explain(images=tf.zeros((2, 8, 8)))
        except tf.errors.InvalidArgumentError as error:
            print(error.message)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, served[1]],
        env=_plain_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "images [2,8,8] is not compatible with expected shape [?,8,8,3]" in result.stdout


def test_explain_signature_of_an_empty_batch(served):
    model, path = served
    out = tf.saved_model.load(path).signatures["explain"](images=tf.zeros((0, 8, 8, 3)))
    expected = SignedSaliency(model).explain(np.zeros((0, 8, 8, 3), np.float32))
    for method in METHODS:
        assert out[method].shape == expected[method].shape == (0, 8, 8)
    assert out["logits"].shape == expected.logits.shape == (0, 5)
    assert out["predictions"].shape == (0,) and out["predictions"].dtype == tf.int32


@pytest.mark.parametrize("input_shape", [(8, 8, 3), (None, None, 3)])
def test_single_output_model_is_refused(tmp_path, monkeypatch, input_shape):
    model = small_conv_net(input_shape=input_shape, num_classes=1)

    def trace(*args, **kwargs):
        raise AssertionError("export traced before refusing the model")

    monkeypatch.setattr(keras.export, "ExportArchive", trace)
    with pytest.raises(ValueError, match="`model` has a single output"):
        export(model, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_image_shape_must_match_the_model(tmp_path):
    with pytest.raises(ValueError, match="`image_shape`"):
        export(small_conv_net(), tmp_path / "m", image_shape=(16, 16, 3))
    assert not (tmp_path / "m").exists()
