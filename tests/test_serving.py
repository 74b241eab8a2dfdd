"""The SavedModel explainer: loads with plain TensorFlow and gives the in-process maps."""

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from tf_signsal import METHODS, SignedSaliency
from tf_signsal.serving import export


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
            maps, logits = SignedSaliency(model).explain_with_logits(images)
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
