"""tf_signsal.load_model: .keras, .h5 and SavedModel directories, and its refusals.

Each saved format of one small CNN loads as a model whose logits and class gradients are
bit-identical to the original's (measured: max |difference| 0.0 for every format here).
"""

import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_signsal
from conftest import small_conv_net
from tf_signsal.loading import load_model

pytestmark = pytest.mark.slow  # SavedModel and Keras files written and loaded


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The small CNN, probe images, and its files in every format (written once)."""
    folder = tmp_path_factory.mktemp("saved")
    model = small_conv_net()
    paths = {name: str(folder / name) for name in ("model.keras", "model.h5", "export",
                                                   "saved_model", "signsal")}
    model.save(paths["model.keras"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's "HDF5 is legacy" warning
        model.save(paths["model.h5"])
    model.export(paths["export"], verbose=False)
    tf.saved_model.save(model, paths["saved_model"])
    tf_signsal.serving.export(model, paths["signsal"])
    images = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    return model, images, paths


@pytest.mark.parametrize(
    "name, options",
    [
        ("model.keras", {}),
        ("model.h5", {}),
        ("export", {}),
        ("export", {"signature": "serve"}),
        ("saved_model", {}),
        ("signsal", {}),
    ],
)
def test_loaded_model_is_the_original(saved, name, options):
    model, images, paths = saved
    loaded = load_model(paths[name], **options)
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())
    np.testing.assert_array_equal(
        tf_signsal.class_gradients(loaded, images).numpy(),
        tf_signsal.class_gradients(model, images).numpy(),
    )


def test_saved_model_maps_and_pathlib(saved):
    """The whole package accepts the loaded SavedModel: the five maps equal the original's."""
    model, images, paths = saved
    import pathlib

    loaded = load_model(pathlib.Path(paths["export"]))
    assert loaded.inputs[0].shape == (None, 8, 8, 3)
    maps = tf_signsal.SignedSaliency(loaded).explain(images)
    expected = tf_signsal.SignedSaliency(model).explain(images)
    for method in tf_signsal.METHODS:
        np.testing.assert_array_equal(maps[method], expected[method])


_ANY_SIZE = tf.TensorSpec((None, None, None, 3), tf.float32)
_FOUR = tf.TensorSpec((None, 4, 4, 3), tf.float32)


def _signature(*specs):
    # No autograph: the code is plain TensorFlow, and autograph's conversion cache once
    # called the wrong function here (a flaky TypeError in a converted __init__).
    return tf.function(input_signature=list(specs), autograph=False)


class _Served(tf.Module):
    """Signatures of every shape the refusals need, on a tiny linear classifier."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5)

    def _logits(self, images):
        return tf.reduce_mean(images, axis=[1, 2]) @ self.kernel

    @_signature(_ANY_SIZE)
    def both(self, images):
        logits = self._logits(images)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    @_signature(_ANY_SIZE)
    def scores(self, images):  # probabilities under a neutral name: found by the probe
        return {"scores": tf.nn.softmax(self._logits(images))}

    @_signature(_FOUR, _FOUR)
    def pair(self, first, second):
        return {"logits": self._logits(first + second)}

    @_signature(tf.TensorSpec((None, 3), tf.float32))
    def vector(self, features):
        return {"logits": features @ self.kernel}

    @_signature(tf.TensorSpec((None, 4, 4, 3), tf.uint8))
    def encoded(self, images):
        return {"logits": self._logits(tf.cast(images, tf.float32) / 255)}

    @_signature(_FOUR)
    def spatial(self, images):
        return {"maps": images @ self.kernel}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    module = _Served()
    path = str(tmp_path_factory.mktemp("served") / "1")
    names = ("scores", "pair", "vector", "encoded", "spatial")
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.both, **{name: getattr(module, name) for name in names}
    })
    return module, path


def test_output_choice_and_dynamic_size(served):
    module, path = served
    loaded = load_model(path, output="logits")
    assert loaded.inputs[0].shape == (None, None, None, 3)
    images = np.random.default_rng(1).random((2, 5, 6, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded(images).numpy(), module.both(images)["logits"].numpy())
    with tf.GradientTape() as tape:
        tensor = tf.constant(images)
        tape.watch(tensor)
        expected = tape.batch_jacobian(module.both(tensor)["logits"], tensor)
    np.testing.assert_array_equal(tf_signsal.class_gradients(loaded, images).numpy(),
                                  expected.numpy())


@pytest.mark.parametrize("signature, output", [("serving_default", "probabilities"),
                                               ("scores", None)])
def test_probabilities_refused_then_log_probabilities(served, signature, output):
    module, path = served
    with pytest.raises(ValueError, match="probabilities, not logits.*active and inactive"):
        load_model(path, signature=signature, output=output)
    with pytest.warns(UserWarning, match="log of the probabilities.*unchanged"):
        loaded = load_model(path, signature=signature, output=output,
                            outputs="log_probabilities")
    images = np.random.default_rng(2).random((2, 4, 4, 3), dtype=np.float32)
    logits = module.both(images)["logits"].numpy().astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loaded(images).numpy(), log_softmax, atol=1e-6)


def test_log_probabilities_of_logits_refused(served):
    _, path = served
    with pytest.raises(ValueError, match="is not probabilities.*outputs='logits'"):
        load_model(path, output="logits", outputs="log_probabilities")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"signature": "predict"}, r"`signature` 'predict' is not a signature.*'encoded', "
                                   r"'pair', 'scores', 'serving_default', 'spatial', 'vector'"),
        ({}, r"has 2 outputs: pass `output`, one of 'logits', 'probabilities'"),
        ({"output": "classes"}, r"`output` 'classes' is not an output.*'logits', 'probabilities'"),
        ({"signature": "pair"}, r"takes 2 inputs \('first', 'second'\).*one image input"),
        ({"signature": "vector"}, r"input 'features' of shape \(None, 3\) and type float32.*"
                                  r"\(batch, height, width, channels\)"),
        ({"signature": "encoded"}, r"shape \(None, 4, 4, 3\) and type uint8.*float images"),
        ({"signature": "spatial"}, r"output 'maps'.*shape \(None, 4, 4, 4\).*"
                                   r"\(batch, classes\)"),
        ({"custom_objects": {"Layer": keras.layers.Layer}}, "do not pass `custom_objects`"),
    ],
)
def test_saved_model_refusals(served, options, message):
    with pytest.raises(ValueError, match=message):
        load_model(served[1], **options)


def test_path_refusals(saved, tmp_path):
    _, _, paths = saved
    with pytest.raises(FileNotFoundError, match="does not exist: expected a .keras file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="directory without saved_model.pb"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="graph file of a SavedModel: pass its directory"):
        load_model(os.path.join(paths["export"], "saved_model.pb"))
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="model.onnx is not a .keras file, an .h5 file, or a"):
        load_model(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="`signature` applies to SavedModel directories"):
        load_model(paths["model.keras"], signature="serve")
    with pytest.raises(ValueError, match="`output` applies to SavedModel directories"):
        load_model(paths["model.keras"], output="logits")
    with pytest.raises(ValueError, match=r"`outputs` must be one of \['logits', 'log_prob"):
        load_model(paths["model.keras"], outputs="probabilities")
    with pytest.raises(TypeError, match="`path` must be a path"):
        load_model(3)


def test_keras_file_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Lambda(lambda x: 2 * x),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)
    images = np.random.default_rng(3).random((2, 4, 4, 3), dtype=np.float32)
    loaded = load_model(path, safe_mode=False)
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())


def test_keras_file_log_probabilities(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    path = str(tmp_path / "softmax.keras")
    model.save(path)
    assert isinstance(load_model(path).layers[-1], keras.layers.Dense)  # stripped later
    with pytest.warns(UserWarning, match="log of the probabilities"):
        loaded = load_model(path, outputs="log_probabilities")
    images = np.random.default_rng(4).random((2, 4, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(images).numpy(), np.log(model(images).numpy()), rtol=1e-6)


def test_keras_file_content_and_classifier_refusals(tmp_path):
    for name, content, message in [
        ("bad.keras", b"not a zip", "is not a .keras file (a .keras file is a zip archive"),
        ("bad.h5", b"not hdf5 at all", "is not an HDF5 file (no HDF5 signature)"),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"`path` .*{name} {re.escape(message)}"):
            load_model(tmp_path / name)
    os.mkfifo(tmp_path / "pipe.keras")  # would block a reader
    with pytest.raises(ValueError, match="pipe.keras is not a regular file"):
        load_model(tmp_path / "pipe.keras")
    inputs = keras.Input((8, 8, 3))
    segmenter = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    segmenter.save(tmp_path / "segmenter.keras")
    with pytest.raises(ValueError, match=r"segmenter.keras is not a classifier: its output must "
                                         r"be \(batch, classes\), it is \(None, 8, 8, 2\)"):
        load_model(tmp_path / "segmenter.keras")


def test_sanity_checks_of_a_saved_model(saved):
    """The randomisation check cannot reach a SavedModel's weights: refused, saying why;
    the random-logit check gives the original's correlations."""
    model, images, paths = saved
    loaded = load_model(paths["export"])
    with pytest.raises(ValueError, match=r"runs a SavedModel's graph \(layer "
                                         r"'saved_model_serving_default'\).*exported from"):
        tf_signsal.randomization_check(loaded, images)
    assert (tf_signsal.random_logit_check(loaded, images)
            == tf_signsal.random_logit_check(model, images))
    wrapped = keras.Sequential([keras.Input((8, 8, 3)),  # Keras's own SavedModel layer
                                keras.layers.TFSMLayer(paths["export"], call_endpoint="serve")])
    with pytest.raises(ValueError, match=r"runs a SavedModel's graph \(layer 'tfsm_layer"):
        tf_signsal.randomization_check(wrapped, images)
