"""The user's own models: a softmax anywhere at the end is stripped.

Pretrained-architecture networks (`keras.applications`, random weights, small inputs)
nested in a model with their preprocessing, and softmaxes written every way at any depth
of nesting, are explained on their logits: their gradients equal a plain eager
`tf.GradientTape` computation on a logits model built by hand (`reference.py`).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_signsal
from conftest import small_conv_net
from reference import reference_attributions, reference_class_gradients, reference_maps
from tf_signsal import METHODS, SignedSaliency
from tf_signsal.attributions import IntegratedGradients, SmoothGrad

SIZE = 32  # the smallest input keras.applications accepts


class _HandBuiltLogits:
    """The logits of `Sequential([Input, Rescaling, application])`, by hand: the
    preprocessing, the application up to its `predictions` layer, and that layer's kernel
    and bias without its softmax."""

    def __init__(self, model, application):
        self.preprocessing = model.layers[:-1]
        self.features = keras.Model(application.inputs,
                                    application.get_layer("predictions").input)
        self.dense = application.get_layer("predictions")

    def __call__(self, images, training=False):
        for layer in self.preprocessing:
            images = layer(images)
        features = self.features(images, training=training)
        return keras.ops.add(keras.ops.matmul(features, self.dense.kernel), self.dense.bias)


def _nested_application(name, classes):
    keras.utils.set_random_seed(0)
    options = {"weights": None, "input_shape": (SIZE, SIZE, 3), "classes": classes}
    if name == "MobileNetV2":
        options["alpha"] = 0.35
    application = getattr(keras.applications, name)(**options)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)),
                              keras.layers.Rescaling(1 / 127.5, offset=-1), application])
    return model, application


@pytest.fixture(scope="module")
def photos():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)


def _tape_gradients(logits, images, classes):
    """(B, len(classes), H, W, ch): one eager tape.gradient per image and class."""
    gradients = []
    for image in images:
        x = tf.constant(image[None])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            scores = logits(x)[0]
            picked = [scores[c] for c in classes]
        gradients.append([tape.gradient(score, x)[0] for score in picked])
    return np.asarray(gradients)


def _assert_gradients_equal(actual, expected):
    # Graph (tf.function, batch_jacobian) against eager per-image passes: float32 rounding
    # of the same arithmetic, relative to the largest gradient (measured: at most 7e-7).
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)


def test_the_issue_example_mobilenetv2_with_1000_classes(photos):
    """The README's contract on the issue's own example: MobileNetV2 with its default
    softmax, after a Rescaling, in a Sequential (was "Output with path '' is not
    connected to 'inputs'")."""
    model, application = _nested_application("MobileNetV2", 1000)
    classes = [0, 7, 999]
    with pytest.warns(UserWarning, match=r"\(mobilenetv2_0.35_32/predictions\) applies a softmax"):
        actual = tf_signsal.class_gradients(model, photos, classes=classes)
    _assert_gradients_equal(actual, _tape_gradients(_HandBuiltLogits(model, application),
                                                    photos, classes))


@pytest.mark.parametrize("name", [
    "MobileNetV2",
    pytest.param("EfficientNetB0", marks=pytest.mark.slow),
    pytest.param("ResNet50", marks=pytest.mark.slow),
])
def test_nested_application_maps_are_of_the_logits(name, photos):
    model, application = _nested_application(name, 6)
    logits = _HandBuiltLogits(model, application)
    with pytest.warns(UserWarning, match="applies a softmax"):
        saliency = SignedSaliency(model)
    actual = tf_signsal.class_gradients(saliency, photos).numpy()
    # The same compiled path on the hand-built logits: bit-identical (measured for all three).
    np.testing.assert_array_equal(actual, tf_signsal.class_gradients(logits, photos))
    gradients = reference_class_gradients(logits, photos)
    _assert_gradients_equal(actual, gradients)
    maps = saliency.explain(photos)
    expected = reference_maps(logits, photos, attributions=gradients)
    for method in METHODS:
        np.testing.assert_allclose(maps[method].numpy(), expected[method], atol=1e-5,
                                   err_msg=method)


# ----------------------------------------------------------------------------- small models

def _body(seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="tanh")(inputs)
    return inputs, keras.layers.GlobalAveragePooling2D()(x)


def _softmax_endings():
    """name -> (model ending in a softmax, its logits model), the softmax written each way."""
    inputs, features = _body()
    head = keras.layers.Dense(5)
    scores = head(features)
    logits = keras.Model(inputs, scores)
    endings = {
        "Softmax layer": keras.layers.Softmax()(scores),
        "Activation('softmax')": keras.layers.Activation("softmax")(scores),
        "Activation(keras.activations.softmax)":
            keras.layers.Activation(keras.activations.softmax)(scores),
        "keras.ops.softmax on the graph": keras.ops.softmax(scores),
        "keras.activations.softmax on the graph": keras.activations.softmax(scores),
    }
    models = {name: (keras.Model(inputs, out), logits) for name, out in endings.items()}
    for name, activation in (("Dense(activation='softmax')", "softmax"),
                             ("Dense(activation=keras.activations.softmax)",
                              keras.activations.softmax)):
        dense = keras.layers.Dense(5, activation=activation)
        models[name] = (keras.Model(inputs, dense(features)), logits)
        dense.set_weights(head.get_weights())
    return models


def _nested(depth):
    """A Sequential whose last layer is a model whose last layer is ... (alternating
    Sequential and Functional, `depth` levels) a Functional model ending in
    Dense(activation="softmax"); its logits function, built by hand; and that Dense."""
    keras.utils.set_random_seed(2)
    hidden, dense = keras.layers.Dense(6, activation="relu"), keras.layers.Dense(5, "softmax")
    innermost = keras.Input((6,))
    model = keras.Model(innermost, dense(hidden(innermost)))
    steps = [hidden]  # the layers before the softmax's Dense, in the order they run
    for level in range(depth):
        before = keras.layers.Dense(6)
        if level % 2:
            level_inputs = keras.Input((6,))
            model = keras.Model(level_inputs, model(before(level_inputs)))
        else:
            model = keras.Sequential([keras.Input((6,)), before, model])
        steps.insert(0, before)
    inputs, features = _body()
    stem = keras.Model(inputs, keras.layers.Dense(6)(features))
    model = keras.Sequential([keras.Input((8, 8, 3)), stem, model])

    def logits(images, training=False):
        x = stem(images)
        for layer in steps:
            x = layer(x)
        return keras.ops.add(keras.ops.matmul(x, dense.kernel), dense.bias)

    return model, logits, dense


@pytest.mark.parametrize("name", sorted(_softmax_endings()))
def test_softmax_written_any_way_is_stripped(name, images):
    model, logits = _softmax_endings()[name]
    with pytest.warns(UserWarning, match="applies a softmax"):
        actual = tf_signsal.class_gradients(model, images)
    np.testing.assert_array_equal(actual, tf_signsal.class_gradients(logits, images))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_softmax_at_the_end_of_nested_models_at_any_depth(depth, images):
    model, logits, _ = _nested(depth)
    with pytest.warns(UserWarning, match="applies a softmax"):
        actual = tf_signsal.class_gradients(model, images).numpy()
    np.testing.assert_array_equal(actual, tf_signsal.class_gradients(logits, images))
    _assert_gradients_equal(actual, reference_class_gradients(logits, images))


def test_shared_softmax_layer_and_shared_nested_model(images):
    """A softmax layer called twice and a classifier reused by a second model: the node of
    the model's own call is the one stripped (a layer's `.input` is ambiguous there)."""
    inputs, features = _body(3)
    softmax = keras.layers.Softmax()
    head = keras.layers.Dense(5)
    softmax(keras.Input((5,)))  # another call of the same layer, outside the model
    model = keras.Model(inputs, softmax(head(features)))
    logits = keras.Model(inputs, head(features))
    with pytest.warns(UserWarning, match="applies a softmax"):
        np.testing.assert_array_equal(tf_signsal.class_gradients(model, images),
                                      tf_signsal.class_gradients(logits, images))

    classifier = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                   keras.layers.Dense(4, activation="softmax")])
    keras.layers.Average()([classifier(inputs), classifier(inputs * 0.5)])  # two more calls
    preprocessed = keras.Input((8, 8, 3))
    wrapped = keras.Model(preprocessed, classifier(keras.layers.Rescaling(2.0)(preprocessed)))
    dense = classifier.layers[-1]

    def wrapped_logits(x, training=False):
        flat = classifier.layers[0](keras.layers.Rescaling(2.0)(x))
        return keras.ops.add(keras.ops.matmul(flat, dense.kernel), dense.bias)

    with pytest.warns(UserWarning, match="applies a softmax"):
        actual = tf_signsal.class_gradients(wrapped, images)
    _assert_gradients_equal(actual, reference_class_gradients(wrapped_logits, images))


def test_softmax_model_is_left_as_it_was(images):
    model, _, dense = _nested(2)
    with pytest.warns(UserWarning, match="applies a softmax"):
        SignedSaliency(model).explain(images)
    assert dense.activation is keras.activations.softmax
    np.testing.assert_allclose(model(images).numpy().sum(-1), 1, rtol=1e-6)


def test_unreachable_logits_are_refused_with_what_to_do(photos):
    keras.utils.set_random_seed(4)
    application = keras.applications.MobileNetV2(
        weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35, classes=3)

    class Wrapper(keras.Model):  # a subclassed model: no graph to walk
        def __init__(self):
            super().__init__()
            self.rescale = keras.layers.Rescaling(1 / 127.5, offset=-1)
            self.application = application

        def call(self, x):
            return self.application(self.rescale(x))

    no_input = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3),
                                 keras.layers.Softmax(name="probabilities")])
    for model, name in ((Wrapper(), "mobilenetv2_0.35_32/predictions"),
                        (no_input, "probabilities")):
        with pytest.raises(ValueError, match=rf"\({name}\) applies a softmax, but the "
                                             r"logits.*classifier_activation=None"):
            SignedSaliency(model).explain(photos)


# ----------------------------------------------------------------------------- one-point paths

@pytest.mark.parametrize("attribution", [IntegratedGradients(steps=1, baseline=0.2),
                                         SmoothGrad(samples=1, noise=0.1, seed=5)], ids=repr)
@pytest.mark.parametrize("jacobian", ["loop", "batch_jacobian"])
def test_one_point_attributions_compare_the_classes(attribution, jacobian, images):
    """IntegratedGradients(steps=1) and SmoothGrad(samples=1) take their one point away from
    the image: the predicted classes must still come from the image itself (the maps were
    all zero: no class was the target)."""
    model = small_conv_net()
    saliency = SignedSaliency(model, attribution=attribution, jacobian=jacobian,
                              classes_per_chunk=2)
    expected = reference_maps(model, images,
                              attributions=reference_attributions(model, images, attribution))
    maps = saliency.explain(images)
    np.testing.assert_array_equal(maps.targets, model(images).numpy().argmax(-1))
    for method in METHODS:
        assert np.asarray(maps[method]).max() == 1, method  # normalised, not all zero
        np.testing.assert_allclose(maps[method].numpy(), expected[method], atol=1e-5,
                                   err_msg=method)
