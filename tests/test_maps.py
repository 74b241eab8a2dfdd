"""SignedSaliency against the plain loop reference, properties and input checks."""

from collections.abc import Mapping

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tf_signsal
from conftest import any_size_model, small_conv_net
from reference import reference_class_gradients, reference_maps
from tf_signsal import METHODS, SignedSaliency


def assert_maps_close(got, expected):
    assert set(got) == set(expected)
    for method in expected:
        np.testing.assert_allclose(got[method], expected[method], atol=2e-5, err_msg=method)


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_maps_match_reference_for_predicted_class(kind, images):
    model = small_conv_net(kind=kind)
    assert_maps_close(SignedSaliency(model).explain(images), reference_maps(model, images))


@pytest.mark.parametrize("classes_per_chunk", [1, 3, 16])
def test_maps_match_reference_for_given_targets(classes_per_chunk, images):
    model = small_conv_net(num_classes=7)
    targets = np.array([6, 0, 3, 3, 1, 5])
    saliency = SignedSaliency(model, classes_per_chunk=classes_per_chunk)
    assert_maps_close(
        saliency.explain(images, targets=targets), reference_maps(model, images, targets)
    )


def test_raw_maps_match_reference(model, images):
    got = SignedSaliency(model).explain(images, normalize=False)
    assert_maps_close(got, reference_maps(model, images, normalize=False))


def test_any_size_and_channel_count(rng):
    model = small_conv_net(input_shape=(11, 5, 1), num_classes=3)
    images = rng.random((4, 11, 5, 1), dtype=np.float32)
    assert_maps_close(SignedSaliency(model).explain(images), reference_maps(model, images))


def test_methods_subset_and_one_pass(model, images):
    maps = SignedSaliency(model).explain(images, methods=["negative", "active"])
    assert list(maps) == ["negative", "active"]
    assert maps["active"].shape == (6, 8, 8) and maps["active"].dtype == tf.float32


def test_softmax_model_is_explained_on_its_logits(images):
    logits_model = small_conv_net(kind="functional")
    softmax_dense = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            *logits_model.layers[1:-1],
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    softmax_dense.layers[-1].set_weights(logits_model.layers[-1].get_weights())
    softmax_layer = keras.Model(
        logits_model.inputs, keras.layers.Softmax()(logits_model.outputs[0])
    )
    expected = SignedSaliency(logits_model).explain(images)
    for model in (softmax_dense, softmax_layer):
        with pytest.warns(UserWarning, match="softmax"):
            saliency = SignedSaliency(model)
        assert_maps_close(saliency.explain(images), expected)
    assert softmax_dense.layers[-1].activation is keras.activations.softmax


def test_batchnorm_statistics_do_not_move(images):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    before = [w.numpy().copy() for w in model.weights]
    SignedSaliency(model).explain(images * 5.0 + 3.0)
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_dataset_input_returns_all_images_in_order(model, images):
    labels = np.arange(6)
    expected = SignedSaliency(model).explain(images)
    for dataset in (
        tf.data.Dataset.from_tensor_slices(images).batch(4),
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(4),
    ):
        assert_maps_close(SignedSaliency(model).explain(dataset), expected)


def test_constant_map_becomes_zeros_not_nan():
    # A linear model: its gradient is the same for every image, and with one
    # input pixel every map is constant over H x W.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1, 1, 3)), keras.layers.Flatten(), keras.layers.Dense(4)]
    )
    maps = SignedSaliency(model).explain(np.full((2, 1, 1, 3), 0.5, np.float32))
    for m in maps.values():
        np.testing.assert_array_equal(m, np.zeros((2, 1, 1)))


def test_empty_batch_returns_empty_maps(model):
    maps = SignedSaliency(model).explain(np.zeros((0, 8, 8, 3), np.float32))
    assert all(m.shape == (0, 8, 8) for m in maps.values())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    height=st.integers(2, 9),
    width=st.integers(2, 9),
    channels=st.sampled_from([1, 3]),
    num_classes=st.integers(2, 6),
)
def test_properties_on_random_models(seed, height, width, channels, num_classes):
    model = small_conv_net((height, width, channels), num_classes, seed=seed, kind="functional")
    images = np.random.default_rng(seed).random((3, height, width, channels), dtype=np.float32)
    saliency = SignedSaliency(model)
    maps = saliency.explain(images)
    for m in maps.values():
        m = m.numpy()
        assert np.all(np.isfinite(m)) and m.min() >= 0.0 and m.max() <= 1.0
    # Active pixels only where the target's gradient beats every other class
    # in at least one channel (and inactive: loses to every other class).
    gradients = reference_class_gradients(model, images)
    predicted = np.asarray(model(images, training=False)).argmax(axis=1)
    raw = saliency.explain(images, methods=["active", "inactive"], normalize=False)
    for b, target in enumerate(predicted):
        others = np.delete(gradients[b], target, axis=0)
        beats = (gradients[b, target] > others.max(axis=0) + 1e-6).any(axis=-1)
        loses = (gradients[b, target] < others.min(axis=0) - 1e-6).any(axis=-1)
        ties = np.isclose(gradients[b, target], others.max(axis=0), atol=1e-6).any(axis=-1)
        assert np.all((raw["active"][b].numpy() > 0) <= (beats | ties))
        ties = np.isclose(gradients[b, target], others.min(axis=0), atol=1e-6).any(axis=-1)
        assert np.all((raw["inactive"][b].numpy() > 0) <= (loses | ties))
    # Reordering the batch reorders the maps and changes nothing else.
    order = np.array([2, 0, 1])
    shuffled = saliency.explain(images[order])
    for method in METHODS:
        np.testing.assert_allclose(shuffled[method], maps[method].numpy()[order], atol=1e-5)


@pytest.mark.parametrize(
    "images, error, message",
    [
        (np.zeros((8, 8, 3), np.float32), ValueError, "rank 4"),
        (np.zeros((2, 8, 8, 3), np.uint8), TypeError, "images / 255"),
        (np.full((2, 8, 8, 3), np.nan, np.float32), ValueError, "NaN or Inf"),
        (np.zeros((2, 9, 8, 3), np.float32), ValueError, r"\(9, 8, 3\).*\(8, 8, 3\)"),
        (np.zeros((2, 8, 8, 1), np.float32), ValueError, "model takes"),
    ],
)
def test_bad_images(model, images, error, message):
    with pytest.raises(error, match=message):
        SignedSaliency(model).explain(images)


def test_bad_targets_and_methods(model, images):
    saliency = SignedSaliency(model)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        saliency.explain(images, targets=[0, 1])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        saliency.explain(images, targets=[0, 1, 2, 3, 4, 5])
    with pytest.raises(TypeError, match="integer"):
        saliency.explain(images, targets=np.zeros(6))
    with pytest.raises(ValueError, match="sharpest"):
        saliency.explain(images, methods=["sharpest"])


def test_bad_models(images):
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D()(inputs)
    two_outputs = keras.Model(
        inputs, [keras.layers.Dense(3)(features), keras.layers.Dense(2)(features)]
    )
    with pytest.raises(ValueError, match="single output"):
        SignedSaliency(two_outputs).explain(images)
    not_a_classifier = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(ValueError, match=r"shape \(batch, classes\)"):
        SignedSaliency(not_a_classifier).explain(images)


def test_version():
    assert tf_signsal.__version__


@pytest.mark.parametrize("batch_size", [1, 4, 6, 50])
def test_explain_in_batches_gives_the_same_maps(model, rng, batch_size):
    images = rng.random((13, 8, 8, 3), dtype=np.float32)
    targets = rng.integers(0, 5, 13)
    saliency = SignedSaliency(model)
    for chosen in (None, targets):
        whole = saliency.explain(images, targets=chosen)
        parts = saliency.explain(images, targets=chosen, batch_size=batch_size)
        for method in METHODS:
            np.testing.assert_array_equal(parts[method].numpy(), whole[method].numpy())
        np.testing.assert_array_equal(parts.logits.numpy(), whole.logits.numpy())
        np.testing.assert_array_equal(parts.targets.numpy(), whole.targets.numpy())


def test_explain_returns_the_logits_and_the_explained_classes(model, images):
    saliency = SignedSaliency(model)
    predicted = saliency.explain(images, batch_size=4)
    logits = np.asarray(model(images, training=False))
    np.testing.assert_allclose(predicted.logits.numpy(), logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(predicted.targets.numpy(), logits.argmax(axis=1))
    assert predicted.targets.dtype == tf.int32 and predicted.logits.dtype == tf.float32
    given = saliency.explain(images, targets=[4, 3, 2, 1, 0, 0])
    np.testing.assert_array_equal(given.targets.numpy(), [4, 3, 2, 1, 0, 0])


def test_explanation_is_a_read_only_mapping(model, images):
    explanation = SignedSaliency(model).explain(images, methods=["positive", "active"])
    assert isinstance(explanation, Mapping) and isinstance(explanation, tf_signsal.Explanation)
    assert list(explanation) == list(explanation.keys()) == ["positive", "active"]
    assert len(explanation) == 2 and "active" in explanation and "standard" not in explanation
    plain = dict(explanation)
    assert list(plain) == ["positive", "active"]
    assert {**explanation}.keys() == plain.keys() == explanation.maps.keys()
    for method in plain:
        assert explanation[method] is plain[method] is explanation.maps[method]
    with pytest.raises(TypeError):
        explanation["positive"] = plain["active"]
    with pytest.raises(AttributeError):
        explanation.logits = None
    explanation.maps.clear()  # a copy: the explanation keeps its maps
    assert len(explanation) == 2
    assert "positive" in repr(explanation) and "(6, 5)" in repr(explanation)


def test_tuples_are_read_as_keras_reads_them(model, images):
    saliency = SignedSaliency(model)
    expected = saliency.explain(images)
    labels, weights = np.arange(6) % 5, np.ones(6)
    for data in ((images,), (images, labels), (images, labels, weights)):
        got = saliency.explain(data, batch_size=4)
        for method in METHODS:  # labels are not explained: the predicted classes are
            np.testing.assert_array_equal(got[method].numpy(), expected[method].numpy())
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        saliency.explain((images, labels[:5]))


def test_deprecated_methods_warn_and_still_work(model, images):
    saliency = SignedSaliency(model)
    expected = saliency.explain(images, targets=[1, 2, 3, 4, 0, 1])
    with pytest.warns(DeprecationWarning, match=r"explain\(") as caught:
        maps, logits = saliency.explain_with_logits(images, [1, 2, 3, 4, 0, 1])
        checked = saliency.explain_checked(images, [1, 2, 3, 4, 0, 1])
    assert all(w.filename == __file__ for w in caught)
    maps_, logits_, targets_ = checked  # the named tuple, as before
    assert isinstance(maps, dict) and maps_.keys() == maps.keys() == expected.keys()
    with pytest.warns(DeprecationWarning, match=r"explain_step\("):
        batch = saliency.explain_batch(tf.constant(images), tf.constant([1, 2, 3, 4, 0, 1]))
    for method in METHODS:
        for got in (maps, checked.maps, batch.maps):
            np.testing.assert_array_equal(got[method].numpy(), expected[method].numpy())
    for got in (logits, logits_, batch.logits):
        np.testing.assert_array_equal(got.numpy(), expected.logits.numpy())
    np.testing.assert_array_equal(targets_.numpy(), [1, 2, 3, 4, 0, 1])
    with pytest.warns(DeprecationWarning, match=r"tf_signsal.class_gradients\(saliency"):
        gradients = saliency.class_gradients(images, classes=[2])
    np.testing.assert_array_equal(
        gradients.numpy(), tf_signsal.class_gradients(saliency, images, classes=[2]).numpy()
    )


def test_public_methods_are_the_clear_set():
    public = {name for name in vars(SignedSaliency) if not name.startswith("_")}
    deprecated = {"explain_with_logits", "explain_checked", "explain_batch", "class_gradients"}
    methods = {"explain", "explain_step", "logits", "num_classes"}
    assert public - deprecated == methods | {"jacobian_mode"}  # jacobian_mode: a property
    assert isinstance(vars(SignedSaliency)["jacobian_mode"], property)
    for name in deprecated:
        assert "Deprecated" in getattr(SignedSaliency, name).__doc__


def test_bad_batch_size(model, images):
    with pytest.raises(ValueError, match="batch_size"):
        SignedSaliency(model).explain(images, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        SignedSaliency(model).explain(images, batch_size=2.5)


def test_calling_gives_the_five_maps(model, images):
    saliency = SignedSaliency(model)
    called, explained = saliency(images), saliency.explain(images)
    assert list(called) == list(METHODS)
    for method in METHODS:
        np.testing.assert_array_equal(called[method].numpy(), explained[method].numpy())


def test_traceable_methods_inside_a_tf_function(model, images):
    saliency = SignedSaliency(model)

    @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 3), tf.float32)])
    def traced(x):
        explanation = saliency.explain_step(x, methods=["positive", "active"])
        return explanation["positive"], explanation["active"], saliency.logits(x), (
            explanation.targets
        )

    positive, active, logits, targets = traced(tf.constant(images))
    eager = saliency.explain(images, methods=["positive", "active"])
    np.testing.assert_array_equal(positive.numpy(), eager["positive"].numpy())
    np.testing.assert_array_equal(active.numpy(), eager["active"].numpy())
    np.testing.assert_allclose(logits.numpy(), np.asarray(model(images, training=False)),
                               rtol=1e-6, atol=1e-6)
    assert saliency.num_classes(images) == 5 and targets.shape == (6,)


@pytest.mark.parametrize(
    "bad",
    [None, "images.png", {"images": np.zeros((1, 8, 8, 3))}, (x for x in range(3))],
    ids=["none", "string", "dict", "generator"],
)
def test_non_array_images_are_named(model, bad):
    with pytest.raises(TypeError, match="`images` must be a float array"):
        SignedSaliency(model).explain(bad)


def test_methods_none_is_all_five_and_a_bad_one_is_named(model, images):
    saliency = SignedSaliency(model)
    assert list(saliency.explain(images, methods=None)) == list(METHODS)
    assert list(saliency.explain_step(tf.constant(images))) == list(METHODS)
    with pytest.raises(TypeError, match="`methods`"):
        saliency.explain(images, methods=5)
    with pytest.raises(ValueError, match="`methods`"):
        saliency.explain_step(tf.constant(images), methods=["sharp"])


def test_endless_dataset_is_refused(model, images):
    endless = tf.data.Dataset.from_tensor_slices(images).batch(2).repeat()
    with pytest.raises(ValueError, match="endless"):
        SignedSaliency(model).explain(endless)


def test_single_output_model_has_no_active_or_inactive_map(images):
    keras.utils.set_random_seed(0)
    binary = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1),
    ])
    saliency = SignedSaliency(binary)
    for method in ("active", "inactive"):
        with pytest.raises(ValueError, match="single output"):
            saliency.explain(images, methods=[method])
    maps = saliency.explain(images, methods=["standard", "positive", "negative"])
    expected = reference_maps(binary, images)
    for method in ("standard", "positive", "negative"):
        np.testing.assert_allclose(maps[method].numpy(), expected[method], atol=1e-5)


def _softmax_variants():
    """The same network ending in a softmax written five ways, and its logits model."""
    keras.utils.set_random_seed(3)
    body = [keras.layers.Conv2D(4, 3, activation="tanh"), keras.layers.GlobalAveragePooling2D()]
    inputs = keras.Input((8, 8, 3))
    features = inputs
    for layer in body:
        features = layer(features)
    head = keras.layers.Dense(5)
    logits = keras.Model(inputs, head(features))
    variants = {}
    for name, activation in (("tf.nn", tf.nn.softmax), ("keras.ops", keras.ops.softmax),
                             ("log", tf.nn.log_softmax)):
        dense = keras.layers.Dense(5, activation=activation)
        variants[name] = keras.Model(inputs, dense(features))
        dense.set_weights(head.get_weights())
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Softmax()])
    variants["nested"] = keras.Model(inputs, inner(head(features)))
    return logits, variants


def test_softmax_in_any_form_is_stripped(images):
    logits, variants = _softmax_variants()
    expected = SignedSaliency(logits).explain(images)
    for name, model in variants.items():
        with pytest.warns(UserWarning, match="applies a softmax"):
            maps = SignedSaliency(model).explain(images)
        for method in METHODS:
            np.testing.assert_allclose(
                maps[method].numpy(), expected[method].numpy(), atol=1e-5, err_msg=name
            )


def test_probability_outputs_are_warned(images):
    class Probabilities(keras.Model):  # a softmax the package cannot strip
        def __init__(self):
            super().__init__()
            self.head = keras.layers.Dense(4)

        def call(self, x):
            return tf.nn.softmax(self.head(tf.reduce_mean(x, axis=(1, 2))))

    with pytest.warns(UserWarning, match="look like probabilities"):
        SignedSaliency(Probabilities()).explain(images)


def test_integer_input_model_is_named(images):
    inputs = keras.Input((8, 8, 3), dtype="int32")
    x = keras.layers.GlobalAveragePooling2D()(keras.ops.cast(inputs, "float32"))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(ValueError, match="int32 input"):
        SignedSaliency(model).explain(images)


def test_dataset_of_several_image_sizes_is_refused(rng):
    model = any_size_model()
    small = tf.data.Dataset.from_tensor_slices(rng.random((2, 8, 8, 3), dtype=np.float32))
    large = tf.data.Dataset.from_tensor_slices(rng.random((2, 10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="share one image shape"):
        SignedSaliency(model).explain(small.batch(2).concatenate(large.batch(2)))


def test_steps_bound_a_repeating_dataset_and_unknown_lengths_warn(model, images):
    saliency = SignedSaliency(model)
    repeating = tf.data.Dataset.from_tensor_slices(images[:4]).batch(2).repeat()
    bounded = saliency.explain(repeating, steps=3)  # 6 images: the 4, then the first 2
    expected = saliency.explain(np.concatenate([images[:4], images[:2]]))
    for method in METHODS:
        np.testing.assert_allclose(bounded[method], expected[method], atol=1e-6)
    unknown = tf.data.Dataset.from_tensor_slices(images).filter(lambda x: True).batch(2)
    with pytest.warns(UserWarning, match="steps=") as caught:
        saliency.explain(unknown)
    assert caught[0].filename == __file__  # the warning points at the user's call
    with pytest.raises(ValueError, match="`steps`"):
        saliency.explain(images, steps=2)
    with pytest.raises(ValueError, match="`steps`"):
        saliency.explain(repeating, steps=0)
