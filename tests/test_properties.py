"""Property-based tests: invariants of the maps and of the deletion benchmark over random
small Keras models (conv or dense bodies, 1-4 channels, 2-12 classes, with or without
BatchNormalization, with or without a final softmax, Sequential or Functional) and random
small image batches, and the refusal of every bad argument with a clear Python error.
"""

import functools
import math
import warnings
from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import tf_signsal
from tf_signsal.maps import METHODS

# The package strips a final softmax with a warning: expected here, the point is the maps.
pytestmark = pytest.mark.filterwarnings("ignore:tf_signsal.*softmax:UserWarning")

# No shrinking: each example builds and traces a model, and shrinking one took minutes.
SLOW = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


# ----------------------------------------------------------------------------- models


class ModelSpec(NamedTuple):
    body: str  # "conv" or "dense"
    side: int
    channels: int
    classes: int
    batch_norm: bool
    softmax: str  # "none", "dense" (Dense(..., activation="softmax")) or "layer" (Softmax())
    functional: bool
    seed: int


model_specs = st.builds(
    ModelSpec,
    body=st.sampled_from(["conv", "dense"]),
    side=st.integers(4, 10),
    channels=st.integers(1, 4),
    classes=st.integers(2, 12),
    batch_norm=st.booleans(),
    softmax=st.sampled_from(["none", "dense", "layer"]),
    functional=st.booleans(),
    seed=st.integers(0, 2**16),
)


def build_model(spec: ModelSpec) -> keras.Model:
    """A small seeded classifier; BatchNormalization gets random (non-trivial) statistics."""
    keras.utils.set_random_seed(spec.seed)
    if spec.body == "conv":
        layers = [keras.layers.Conv2D(4, 3, padding="same", activation="tanh")]
        if spec.batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers += [
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    else:
        layers = [keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh")]
        if spec.batch_norm:
            layers.append(keras.layers.BatchNormalization())
    if spec.softmax == "dense":
        layers.append(keras.layers.Dense(spec.classes, activation="softmax"))
    else:
        layers.append(keras.layers.Dense(spec.classes))
        if spec.softmax == "layer":
            layers.append(keras.layers.Softmax())
    inputs = keras.Input((spec.side, spec.side, spec.channels))
    if spec.functional:
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    else:
        model = keras.Sequential([inputs, *layers])
    rng = np.random.default_rng(spec.seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 2.0, n), rng.normal(0, 0.5, n),
                rng.normal(0, 0.5, n), rng.uniform(0.2, 3.0, n),
            ])
    return model


def draw_images(data, spec: ModelSpec, max_batch: int = 6) -> np.ndarray:
    """A float32 batch in [0, 1]; sometimes every image (or the whole batch) is constant."""
    batch = data.draw(st.integers(1, max_batch), label="batch")
    kind = data.draw(st.sampled_from(["random", "random", "constant", "mixed", "binary"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="image seed"))
    shape = (batch, spec.side, spec.side, spec.channels)
    images = rng.random(shape, dtype=np.float32)
    if kind == "constant":  # each image one value (0, 1 or anything between)
        values = rng.choice([0.0, 1.0, rng.random()], size=batch).astype(np.float32)
        images = np.broadcast_to(values[:, None, None, None], shape).copy()
    elif kind == "mixed":  # the first image constant
        images[0] = data.draw(st.sampled_from([0.0, 0.5, 1.0]))
    elif kind == "binary":
        images = (images > 0.5).astype(np.float32)
    return images


def assert_finite(value, what):
    array = np.asarray(value)
    assert np.isfinite(array).all(), f"{what} holds NaN or Inf: {array}"


def assert_maps_equal(expected, received, what):
    assert set(expected) == set(received), what
    for method in expected:
        a, b = np.asarray(expected[method]), np.asarray(received[method])
        assert a.shape == b.shape, f"{what}: {method} shape {a.shape} != {b.shape}"
        assert np.array_equal(a, b), (
            f"{what}: {method} differs, max |diff| {np.abs(a - b).max()}"
        )


# ----------------------------------------------------------------------------- maps


@settings(max_examples=8, **SLOW)
@given(spec=model_specs, data=st.data())
def test_maps_are_finite_bounded_and_independent_of_batching_and_input_type(spec, data):
    model = build_model(spec)
    saliency = tf_signsal.SignedSaliency(model)
    images = draw_images(data, spec)
    batch = images.shape[0]

    maps, logits = saliency.explain_with_logits(images)
    assert set(maps) == set(METHODS)
    assert tuple(logits.shape) == (batch, spec.classes)
    assert_finite(logits, "logits")
    for method, m in maps.items():
        assert tuple(m.shape) == (batch, spec.side, spec.side), method
        assert m.dtype == tf.float32
        assert_finite(m, method)
        assert float(tf.reduce_min(m)) >= 0.0 and float(tf.reduce_max(m)) <= 1.0, method

    raw = saliency.explain(images, normalize=False)
    for method, m in raw.items():
        assert_finite(m, f"raw {method}")
        assert float(tf.reduce_min(m)) >= 0.0, f"raw {method} < 0"
        # Normalisation is the per-image min-max of the raw map.
        r = np.asarray(m)
        low = r.min(axis=(1, 2), keepdims=True)
        span = r.max(axis=(1, 2), keepdims=True) - low
        expected = np.where(span > 0, (r - low) / np.where(span > 0, span, 1), 0)
        np.testing.assert_allclose(maps[method], expected, atol=1e-6, err_msg=method)

    # The explained class is the predicted one: with explicit targets = argmax, same maps.
    predicted = np.argmax(np.asarray(logits), axis=1)
    assert_maps_equal(maps, saliency.explain(images, targets=predicted), "targets=argmax")

    # Batch-size independence. `batch_size=k` is exactly the maps of the k-image slices...
    k = data.draw(st.integers(1, batch + 1), label="batch_size")
    by_k = saliency.explain(images, batch_size=k)
    slices = [saliency.explain(images[i : i + k]) for i in range(0, batch, k)]
    assert_maps_equal(
        {m: np.concatenate([s[m] for s in slices]) for m in METHODS}, by_k, f"slices of {k}"
    )
    # ...and equals the one-pass maps up to float rounding: the Keras model itself gives
    # batch-size dependent results in the last bit (Eigen/oneDNN kernels), so bitwise
    # equality across batch sizes is not something the package can promise.
    raw_by_k = saliency.explain(images, batch_size=k, normalize=False)
    for method in METHODS:
        scale = float(np.abs(raw[method]).max()) + 1e-30
        np.testing.assert_allclose(
            raw_by_k[method], raw[method], rtol=1e-5, atol=1e-5 * scale, err_msg=method
        )

    # Input-type independence: the same batches give bitwise the same maps.
    assert_maps_equal(maps, saliency.explain(tf.constant(images)), "tf.Tensor")
    assert_maps_equal(maps, saliency.explain(images.astype(np.float64)), "float64")
    assert_maps_equal(maps, saliency.explain(images.tolist()), "nested list")
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(k)
    assert_maps_equal(by_k, saliency.explain(dataset), f"dataset batch {k}")
    labelled = tf.data.Dataset.from_tensor_slices((images, np.zeros(batch, np.int64))).batch(k)
    assert_maps_equal(by_k, saliency.explain(labelled), f"(images, labels) dataset batch {k}")

    # The chunking of classes does not change the maps.
    chunk = data.draw(st.integers(1, spec.classes), label="classes_per_chunk")
    chunked = tf_signsal.SignedSaliency(model, classes_per_chunk=chunk).explain(images)
    assert_maps_equal(maps, chunked, f"classes_per_chunk={chunk}")


@settings(max_examples=4, **SLOW)
@given(spec=model_specs, data=st.data())
def test_class_gradients_are_finite_and_match_the_standard_map(spec, data):
    model = build_model(spec)
    saliency = tf_signsal.SignedSaliency(model)
    images = draw_images(data, spec, max_batch=3)
    jacobian = np.asarray(saliency.class_gradients(images))
    assert jacobian.shape == (images.shape[0], spec.classes, spec.side, spec.side, spec.channels)
    assert_finite(jacobian, "class_gradients")
    raw = saliency.explain(images, methods=["standard", "positive"], normalize=False)
    target = np.argmax(np.asarray(saliency.logits(tf.constant(images))), axis=1)
    g = jacobian[np.arange(len(target)), target]
    np.testing.assert_allclose(raw["standard"], np.abs(g).max(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(raw["positive"], np.maximum(g, 0).max(-1), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- evaluator


@st.composite
def fraction_lists(draw):
    values = draw(st.lists(st.sampled_from([0.03, 0.1, 0.25, 0.5, 0.75, 0.9]),
                           min_size=1, max_size=3, unique=True))
    start = [0.0] if draw(st.booleans()) or len(values) == 1 else []
    return tuple(start + sorted(values))


pair_lists = st.lists(
    st.tuples(
        st.sampled_from(["standard", "positive", "negative", "active", "inactive", "random"]),
        st.sampled_from(["black", "white", 0.5]),
    ),
    min_size=1, max_size=3, unique=True,
)


@settings(max_examples=6, **SLOW)
@given(spec=model_specs, fractions=fraction_lists(), pairs=pair_lists, data=st.data())
def test_allegiance_curves_are_bounded_and_independent_of_batching(spec, fractions, pairs, data):
    model = build_model(spec)
    images = draw_images(data, spec)
    batch = images.shape[0]
    labels = data.draw(
        st.lists(st.integers(0, spec.classes - 1), min_size=batch, max_size=batch), label="labels"
    )
    labels = np.array(labels, np.int64)
    size_a = data.draw(st.integers(1, batch), label="batch_size a")
    size_b = data.draw(st.integers(1, batch + 1), label="batch_size b")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")

    def evaluate(batch_size, evaluated, memory_budget=32 * 2**20):
        evaluator = tf_signsal.AllegianceEvaluator(
            model, fractions=fractions, pairs=pairs, batch_size=batch_size, seed=seed,
            memory_budget=memory_budget,
        )
        return evaluator.evaluate(evaluated, verbose=0)

    result = evaluate(size_a, (images, labels))
    assert result.n_images == batch
    np.testing.assert_array_equal(result.fractions, fractions)
    assert set(result.pairs) == set(pairs)
    for pair in pairs:
        curve, deleted, accuracy = result.curves[pair], result.deleted[pair], result.accuracy[pair]
        for name, values in (("curve", curve), ("deleted", deleted), ("accuracy", accuracy)):
            assert_finite(values, f"{name} {pair}")
            assert ((values >= 0) & (values <= 1)).all(), f"{name} {pair}: {values}"
        assert math.isfinite(result.auc[pair])
        assert 0.0 <= result.auc[pair] <= fractions[-1] - fractions[0] + 1e-12
        if fractions[0] == 0.0:
            assert curve[0] == 1.0, f"{pair}: {curve}"
            assert deleted[0] == 0.0, f"{pair}: {deleted}"
        assert (np.diff(deleted) >= -1e-12).all(), f"deleted not increasing {pair}: {deleted}"

    expected = result.to_dict()
    # Another batch size, given as a dataset's batches, with a tiny memory budget (one
    # occluded image per forward pass): the same curves.
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(size_b)
    assert evaluate(size_b, dataset, memory_budget=1).to_dict() == expected, (
        f"dataset batch {size_b}, memory_budget=1"
    )
    assert evaluate(size_b, (tf.constant(images), labels)).to_dict() == expected, (
        f"tf.Tensor, batch_size {size_b}"
    )


# ----------------------------------------------------------------------------- bad arguments

GRAPH_ERRORS = (tf.errors.OpError,)


@functools.cache
def shared_model(channels=3, classes=5):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(ModelSpec("conv", 6, channels, classes, True, "none", True, 0))


@functools.cache
def shared_saliency(channels=3, classes=5):
    return tf_signsal.SignedSaliency(shared_model(channels, classes))


def good_images(batch=3, side=6, channels=3):
    return np.random.default_rng(0).random((batch, side, side, channels), dtype=np.float32)


def assert_clear_error(call, *names):
    """`call()` raises TypeError or ValueError whose message names one of `names`."""
    try:
        call()
    except GRAPH_ERRORS as error:
        pytest.fail(f"a TensorFlow graph error instead of a clear one: {error!r}")
    except (TypeError, ValueError) as error:
        message = str(error)
        assert any(name in message for name in names), (
            f"the message does not name {names}: {type(error).__name__}: {message}"
        )
    except Exception as error:  # AttributeError, IndexError, KeyError, ...
        pytest.fail(f"{type(error).__name__} instead of a clear error: {error!r}")
    else:
        pytest.fail(f"no error for a bad {names[0]}")


nan = float("nan")
inf = float("inf")

bad_methods = st.one_of(
    st.sampled_from([[], (), "", "Positive", ["positive", "bogus"], [1, 2], 3, 1.5,
                     [None], ["standard", ["positive"]], b"positive", [b"positive"]]),
    st.text(min_size=1, max_size=8).filter(lambda s: s not in METHODS),
)
bad_targets = st.one_of(
    st.sampled_from([
        [0, 1, 5], [0, 1, 99], [-1, 0, 1], [0, 1], [0, 1, 2, 3], [1.7, 0.0, 1.0],
        np.array([0.0, 1.0, 2.0]), ["a", "b", "c"], [[0, 1], [1, 0], [2, 2]],
        np.zeros((3, 1, 1), np.int64), [None, None, None], "abc", 1.5, -2, 7, [True, False, True],
        np.array([0, 1, 2], np.complex64), {"a": 1},
    ]),
    st.lists(st.integers(), min_size=3, max_size=3).filter(
        lambda t: min(t) < 0 or max(t) >= 5
    ),
)
bad_batch_sizes = st.one_of(
    st.sampled_from([0, -1, 1.5, "2", True, False, [2], np.float32(2.0), nan, inf]),
    st.integers(max_value=0),
)
bad_normalize = st.sampled_from(["yes", None, 2, [True], 0.5])


@settings(max_examples=60, **SLOW)
@given(
    argument=st.sampled_from(["methods", "targets", "batch_size"]),
    data=st.data(),
)
def test_explain_rejects_bad_arguments(argument, data):
    saliency = shared_saliency()
    strategy = {"methods": bad_methods, "targets": bad_targets, "batch_size": bad_batch_sizes}
    value = data.draw(strategy[argument], label=argument)
    kwargs = {argument: value}
    assert_clear_error(lambda: saliency.explain(good_images(), **kwargs), argument)


@settings(max_examples=10, **SLOW)
@given(value=bad_normalize)
def test_explain_rejects_bad_normalize(value):
    assert_clear_error(
        lambda: shared_saliency().explain(good_images(), normalize=value), "normalize"
    )


BAD_IMAGES = [
    ("rank 3", lambda: good_images()[0]),
    ("rank 5", lambda: good_images()[None]),
    ("rank 2", lambda: good_images()[0, 0]),
    ("rank 0", lambda: np.float32(0.5)),
    ("uint8", lambda: (good_images() * 255).astype(np.uint8)),
    ("int64", lambda: np.zeros((2, 6, 6, 3), np.int64)),
    ("bool", lambda: good_images() > 0.5),
    ("strings", lambda: np.full((2, 6, 6, 3), "a")),
    ("object", lambda: np.empty((2, 6, 6, 3), object)),
    ("complex", lambda: good_images().astype(np.complex64)),
    ("1 channel", lambda: good_images(channels=1)),
    ("4 channels", lambda: good_images(channels=4)),
    ("wrong height", lambda: good_images(side=7)),
    ("wrong width", lambda: good_images()[:, :, :5]),
    ("NaN pixel", lambda: np.where(np.arange(108).reshape(1, 6, 6, 3) == 5, nan, good_images())),
    ("Inf pixel", lambda: np.full((1, 6, 6, 3), inf, np.float32)),
    ("None", lambda: None),
    ("string", lambda: "cat.png"),
    ("dict", lambda: {"images": good_images()}),
    ("int", lambda: 3),
    ("generator", lambda: (x for x in good_images())),
    ("int tensor", lambda: tf.zeros((2, 6, 6, 3), tf.int32)),
    ("string tensor", lambda: tf.fill((2, 6, 6, 3), "a")),
]


# Few enough to try every one with every entry point.
@pytest.mark.parametrize("api", ["explain", "class_gradients", "evaluate"])
@pytest.mark.parametrize("bad", BAD_IMAGES, ids=[name for name, _ in BAD_IMAGES])
def test_bad_images_are_refused_clearly(bad, api):
    _, make = bad
    saliency = shared_saliency()
    if api == "explain":
        assert_clear_error(lambda: saliency.explain(make()), "images")
    elif api == "class_gradients":
        assert_clear_error(lambda: saliency.class_gradients(make()), "images")
    else:
        evaluator = tf_signsal.AllegianceEvaluator(
            shared_model(), fractions=(0.0, 0.5), pairs=[("positive", "black")]
        )
        assert_clear_error(lambda: evaluator.evaluate(make(), verbose=0), "data", "images")


@pytest.mark.parametrize("api", ["explain", "class_gradients"])
def test_ragged_list_images_are_refused_clearly(api):
    ragged = [good_images()[0], good_images()[0, :3]]  # two images of different heights
    assert_clear_error(lambda: getattr(shared_saliency(), api)(ragged), "images")


bad_classes = st.sampled_from([
    [], [5], [-1], [0, 99], [1.5], ["a"], "abc", [None], 1.7,
])


@settings(max_examples=12, **SLOW)
@given(classes=bad_classes)
def test_class_gradients_rejects_bad_classes(classes):
    assert_clear_error(
        lambda: shared_saliency().class_gradients(good_images(), classes=classes), "classes"
    )


bad_evaluator_arguments = {
    "fractions": st.one_of(
        st.sampled_from([
            [], [0.0], [0.5], (0.5, 0.2), (0.0, 1.0), (-0.1, 0.2), (0.0, 0.0), "abc", None, 0.5,
            (0.0, nan), (0.0, inf), (0.0, "0.5"), (0.0, None), [[0.0, 0.1]], (0.0, True),
            np.array([0.3, 0.1]),
        ]),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=4).filter(
            lambda f: not (
                all(math.isfinite(p) and 0 <= p < 1 for p in f)
                and all(b > a for a, b in zip(f, f[1:]))
            )
        ),
    ),
    "pairs": st.sampled_from([
        [], "positive", None, 5, [("bogus", "black")], [("positive", "grey")], [("positive",)],
        [("positive", "black", "x")], [("positive", "black"), ("positive", "black")],
        [(1, "black")], [("positive", nan)], [("positive", inf)], [("positive", None)],
        [("positive", ())], [("positive", (0.1, "a"))], ["positive/black"], [("", "black")],
        [("positive", (0.1, 0.2))],  # 2 values for 3-channel images: refused at evaluate
        [("positive", True)], {("positive", "black")},
    ]),
    "value_range": st.sampled_from([
        (1.0, 0.0), (0.0, 0.0), (0.0,), (0.0, 1.0, 2.0), "ab", None, 5, (nan, 1.0), (0.0, inf),
        ("a", "b"), (None, 1.0), [[0.0], [1.0]],
    ]),
    "batch_size": bad_batch_sizes | st.just(None),
    "seed": st.one_of(
        st.sampled_from([-1, 2**70, 2**32, "abc", 1.5, True, None, [1], nan]),
        st.integers(max_value=-1),
        st.integers(min_value=2**32),
    ),
    "memory_budget": st.one_of(
        st.sampled_from([0, -5, 1.5, "1MB", None, True, nan, inf]),
        st.integers(max_value=0),
    ),
}
ERROR_NAMES = {"pairs": ("pair", "fill"), "value_range": ("value_range",)}


@settings(max_examples=80, **SLOW)
@given(argument=st.sampled_from(sorted(bad_evaluator_arguments)), data=st.data())
def test_evaluator_rejects_bad_arguments(argument, data):
    value = data.draw(bad_evaluator_arguments[argument], label=argument)
    if argument == "fractions":
        # A fraction that is out of range or out of order is bad; a valid list is not.
        assume(value is not None)
    names = ERROR_NAMES.get(argument, (argument,))

    def call():
        evaluator = tf_signsal.AllegianceEvaluator(
            shared_model(),
            **{"fractions": (0.0, 0.5), "pairs": [("positive", "black")], argument: value},
        )
        # Some values (a fill with the wrong number of channels) are refused only with data.
        evaluator.evaluate(good_images(), verbose=0)

    assert_clear_error(call, *names)


@settings(max_examples=20, **SLOW)
@given(
    labels=st.sampled_from([
        [0, 1, 9], [-1, 0, 1], [0, 1], [1.7, 0.0, 1.0], ["a", "b", "c"], np.zeros((3, 2, 2)),
        np.eye(3, 7), [None, None, None],
    ]),
)
def test_evaluator_rejects_bad_labels(labels):
    evaluator = tf_signsal.AllegianceEvaluator(
        shared_model(), fractions=(0.0, 0.5), pairs=[("positive", "black")]
    )
    assert_clear_error(lambda: evaluator.evaluate((good_images(), labels), verbose=0), "labels")
