"""precision="bfloat16": the maps of a bfloat16 copy of the model, in float32, against the
float32 maps; the user's model untouched; the option on every way in."""

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import spearmanr

import tf_signsal
from conftest import SubclassedNet, small_conv_net
from tf_signsal import METHODS, SignedSaliency, precision
from tf_signsal.callbacks import AllegianceCallback, SaliencyMapsCallback
from tf_signsal.cli import CommandError, main
from tf_signsal.evaluation import AllegianceEvaluator

# bfloat16 keeps 8 significant bits: each product and sum in the model's passes is off by up
# to 2^-9 of its size, so the input gradient is a few tenths of a percent off where it is
# large, and relatively more where it nearly cancels. The order of the pixels of a map
# moves only among pixels whose values lie that close: a per-image rank correlation of at
# least 0.9 for the sign maps. Active and inactive keep a pixel only where the target's
# gradient beats every other class's, and a pixel whose gradients nearly tie flips: on
# this small untrained net (10 classes, many near-ties) 0.7.
MIN_SPEARMAN = {"standard": 0.9, "positive": 0.9, "negative": 0.9,
                "active": 0.7, "inactive": 0.7}


def cnn(seed=0, input_shape=(16, 16, 3), classes=10):
    """A small seeded Functional CNN with batch normalisation (in inference mode)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def spearman_per_image(a, b):
    """Spearman's rank correlation of each image's two maps, from numpy's ranks (ties
    averaged, as scipy's), checked against scipy's."""
    def ranks(values):
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        # ties: the mean rank of their group
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, ranked)
        return sums[inverse] / counts[inverse]

    found = []
    for x, y in zip(np.reshape(a, (len(a), -1)), np.reshape(b, (len(b), -1))):
        rx, ry = ranks(x), ranks(y)
        found.append(np.corrcoef(rx, ry)[0, 1])
        np.testing.assert_allclose(found[-1], spearmanr(x, y)[0], atol=1e-9)
    return np.array(found)


@pytest.fixture
def pictures():
    return np.random.default_rng(0).random((6, 16, 16, 3), dtype=np.float32)


def test_bfloat16_maps_agree_with_float32(pictures):
    model = cnn()
    exact = SignedSaliency(model).explain(pictures)
    saliency = SignedSaliency(model, precision="bfloat16")
    rounded = saliency.explain(pictures)
    np.testing.assert_array_equal(rounded.targets, exact.targets)  # no near-tie on top
    np.testing.assert_allclose(rounded.logits, exact.logits, rtol=0.05, atol=0.02)
    for method in METHODS:
        found = spearman_per_image(exact[method], rounded[method])
        assert found.min() >= MIN_SPEARMAN[method], (method, found)
    # Really rounded: bfloat16 maps differ from float32's.
    assert not np.array_equal(rounded["standard"], exact["standard"])


def test_the_passes_run_in_bfloat16_and_the_maps_in_float32(pictures):
    model = cnn()
    saliency = SignedSaliency(model, precision="bfloat16")
    copy = saliency.compute_model
    computing = [layer for layer in copy.layers if layer.weights]
    assert computing and all(layer.compute_dtype == "bfloat16" for layer in computing)
    assert all(v.dtype == "float32" for v in copy.weights)  # float32 variables
    explanation = saliency.explain(pictures)
    assert all(explanation[m].dtype == tf.float32 for m in METHODS)
    assert explanation.logits.dtype == tf.float32
    # The gradients the folds take: the copy's own input gradient, float32 through the
    # cast at its input.
    gradients = tf_signsal.class_gradients(saliency, pictures)
    assert gradients.dtype == tf.float32
    with tf.GradientTape() as tape:
        x = tf.constant(pictures)
        tape.watch(x)
        raw = copy(x, training=False)
        score = raw[:, 3]
    assert raw.dtype == tf.bfloat16  # the copy's own output: the engine casts it
    np.testing.assert_allclose(gradients[:, 3], tape.gradient(score, x), rtol=1e-6, atol=1e-7)
    # The unnormalised maps are the float32 folds of those gradients.
    raw_maps = saliency.explain(pictures, targets=[3] * 6, normalize=False)
    g = gradients.numpy()
    np.testing.assert_allclose(raw_maps["standard"], np.abs(g[:, 3]).max(-1), rtol=1e-6)
    others = np.delete(g, 3, axis=1)
    active = np.where(g[:, 3] > others.max(1), np.abs(g[:, 3]), 0).max(-1)
    np.testing.assert_allclose(raw_maps["active"], active, rtol=1e-6)


def test_the_users_model_is_untouched(pictures):
    model = cnn()
    policies = [layer.dtype_policy.name for layer in model.layers]
    weights = [w.copy() for w in model.get_weights()]
    before = model(pictures).numpy()
    saliency = SignedSaliency(model, precision="bfloat16")
    saliency.explain(pictures)
    assert saliency.model is model and saliency.compute_model is not model
    assert [layer.dtype_policy.name for layer in model.layers] == policies
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    after = model(pictures)
    assert after.dtype == tf.float32
    np.testing.assert_array_equal(after, before)
    # The default is the model itself: the float32 path is the one it always was.
    assert SignedSaliency(model).compute_model is model


def test_a_nested_model(pictures):
    inner = cnn(seed=2)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(2.0, -1.0),
                              inner])
    saliency = SignedSaliency(model, precision="bfloat16")
    nested = saliency.compute_model.layers[-1]
    assert isinstance(nested, keras.Model) and nested is not inner
    assert all(layer.compute_dtype == "bfloat16" for layer in nested.layers if layer.weights)
    assert all(layer.compute_dtype == "float32" for layer in inner.layers)
    exact, rounded = SignedSaliency(model).explain(pictures), saliency.explain(pictures)
    for method in METHODS:
        assert spearman_per_image(exact[method], rounded[method]).min() >= MIN_SPEARMAN[method]


@pytest.mark.parametrize("value, error", [("float16", ValueError), ("bf16", ValueError),
                                          (16, TypeError), (None, TypeError)])
def test_a_bad_precision_is_refused_naming_it(model, value, error, tmp_path):
    match = rf"`precision` must be one of \['float32', 'bfloat16'\], received {value!r}"
    with pytest.raises(error, match=match):
        SignedSaliency(model, precision=value)
    with pytest.raises(error, match=match):
        AllegianceEvaluator(model, precision=value)
    with pytest.raises(error, match=match):
        SaliencyMapsCallback(np.zeros((1, 8, 8, 3), np.float32), tmp_path, precision=value)
    with pytest.raises(error, match=match):
        AllegianceCallback(np.zeros((1, 8, 8, 3), np.float32), precision=value)
    with pytest.raises(error, match=match):
        tf_signsal.serving.export(model, tmp_path / "m", precision=value)
    assert not list(tmp_path.iterdir())  # nothing written


def _lambda_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    return keras.Model(inputs, small_conv_net()(x))


@pytest.mark.parametrize("make, why", [
    (lambda: SubclassedNet(5), "it is a subclassed model"),
    (lambda: keras.Sequential([keras.Input((8, 8, 3)), SubclassedNet(5)]),
     "it holds a subclassed model"),
    (_lambda_model, "it has a Lambda layer"),
])
def test_models_that_cannot_be_copied_are_refused(make, why, images):
    model = make()
    model(images)  # built
    with pytest.raises(ValueError, match=rf"`precision` 'bfloat16' .*{why}.*precision='float32'"):
        SignedSaliency(model, precision="bfloat16")
    SignedSaliency(model).explain(images)  # float32 takes it as ever


@pytest.mark.slow  # writes and loads a SavedModel
def test_a_saved_model_is_refused(tmp_path, model, images):
    model.export(str(tmp_path / "saved"), verbose=False)
    loaded = tf_signsal.load_model(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=r"`precision` 'bfloat16' .*runs a SavedModel's graph"):
        SignedSaliency(loaded, precision="bfloat16")


def test_emulated_bfloat16_is_said_once(monkeypatch, model):
    monkeypatch.setattr(precision, "_warned_emulated", False)
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda: False)
    with pytest.warns(precision.EmulatedPrecisionWarning, match="emulates it") as caught:
        SignedSaliency(model, precision="bfloat16")
        SignedSaliency(model, precision="bfloat16")
    assert sum(isinstance(w.message, precision.EmulatedPrecisionWarning) for w in caught) == 1
    monkeypatch.setattr(precision, "_warned_emulated", False)
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", precision.EmulatedPrecisionWarning)
        SignedSaliency(model, precision="bfloat16")


def test_the_evaluator_takes_it(pictures):
    model = cnn()
    evaluator = AllegianceEvaluator(model, precision="bfloat16", batch_size=3)
    assert evaluator.explainer.precision == "bfloat16" and evaluator.explainer.model is model
    result = evaluator.evaluate(pictures)
    assert result.n_images == 6
    assert "precision='bfloat16'" in evaluator.protocol.explainer
    default = AllegianceEvaluator(model)
    assert "precision" not in default.protocol.explainer  # float32 fingerprints as before
    assert default.protocol.fingerprint == AllegianceEvaluator(
        model, precision="float32").protocol.fingerprint != evaluator.protocol.fingerprint
    own = SignedSaliency(model, precision="bfloat16")
    assert AllegianceEvaluator(model, explainer=own).protocol.fingerprint == (
        evaluator.protocol.fingerprint
    )
    with pytest.raises(ValueError, match="`precision` configures the default explainer"):
        AllegianceEvaluator(model, explainer=SignedSaliency(model), precision="bfloat16")


def test_the_callbacks_follow_the_training_weights(tmp_path, pictures):
    model = cnn()
    callback = SaliencyMapsCallback(pictures, tmp_path, precision="bfloat16", formats=["npz"])
    callback.set_model(model)
    first = callback.compute()
    model.set_weights([w * 1.5 for w in model.get_weights()])  # as an epoch of training
    second = callback.compute()
    fresh = SignedSaliency(model, precision="bfloat16").explain(pictures)
    np.testing.assert_array_equal(second["logits"], fresh.logits)
    for method in METHODS:
        np.testing.assert_array_equal(second[method], fresh[method])
    assert not np.array_equal(first["logits"], second["logits"])

    allegiance = AllegianceCallback(pictures, precision="bfloat16", batch_size=3)
    allegiance.set_model(model)
    assert allegiance.evaluate().n_images == 6
    model.set_weights([w * 0.5 for w in model.get_weights()])
    copy = allegiance._evaluator.explainer.compute_model
    allegiance.evaluate()
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), model.get_weights()))


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _write_pictures(folder):
    from PIL import Image

    arrays = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    for index, array in enumerate(arrays):
        (folder / f"class_{index % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / f"class_{index % 2}" / f"p{index}.png")
    return folder


def test_the_command_line_flag(capsys, tmp_path, model_file):
    pictures = _write_pictures(tmp_path / "pictures")
    out = tmp_path / "maps"
    status, _, err = _run(capsys, "explain", "--model", model_file, "--images", pictures,
                          "--out", out, "--precision", "bfloat16")
    assert status == 0, err
    data = np.load(out / "maps.npz")
    model = keras.saving.load_model(model_file)
    expected = SignedSaliency(model, precision="bfloat16").explain(data["images"])
    for method in METHODS:
        np.testing.assert_allclose(data[method], expected[method], atol=1e-6)

    status, _, err = _run(capsys, "evaluate", "--model", model_file, "--data", pictures,
                          "--out", tmp_path / "eval", "--batch-size", "4",
                          "--precision", "bfloat16")
    assert status == 0, err
    record = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert record["run"]["parameters"]["precision"] == "bfloat16"

    with pytest.raises(SystemExit):
        main(["explain", "--model", model_file, "--images", str(pictures), "--out",
              str(tmp_path / "o"), "--precision", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err
    with pytest.raises(CommandError, match="--precision bfloat16 runs on --engine local only"):
        main(["--debug", "evaluate", "--model", model_file, "--data", str(pictures), "--out",
              str(tmp_path / "o"), "--engine", "beam", "--precision", "bfloat16"])


@pytest.mark.slow  # writes a SavedModel
def test_export_with_bfloat16(tmp_path, model, images):
    path = tf_signsal.serving.export(model, tmp_path / "m" / "1", precision="bfloat16")
    manifest = json.loads((tmp_path / "m" / "1" / ".tf-signsal-export.json").read_text())
    assert manifest["precision"] == "bfloat16"
    served = tf.saved_model.load(path).signatures["explain"](images=tf.constant(images))
    expected = SignedSaliency(model, precision="bfloat16").explain(images)
    for method in METHODS:
        np.testing.assert_allclose(served[method], expected[method], atol=1e-6)
    np.testing.assert_allclose(served["logits"], expected.logits, atol=1e-6)
