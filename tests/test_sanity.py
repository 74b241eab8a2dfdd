"""Sanity checks (Adebayo et al. 2018): model-parameter randomisation and random logit.

Spearman is checked against scipy.stats.spearmanr; the randomisation against two
models whose outcome can be argued: an untrained conv net whose every layer is
re-drawn (an independent network: its maps share little with the intact ones) and
a one-feature bottleneck, whose top layer only rescales the explained gradient. The
checks of other explainers (integrated gradients, SmoothGrad, a user's) are compared
with the check done by hand: a cloned model re-drawn layer by layer, its maps, and
scipy's Spearman averaged over the images.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from conftest import small_conv_net
from tf_signsal.attributions import IntegratedGradients, SmoothGrad
from tf_signsal.evaluation.sanity import (
    RandomizationResult,
    _fresh_values,
    _signed_function,
    random_logit_check,
    randomization_check,
    rank_correlations,
)
from tf_signsal.maps import METHODS, SignedSaliency


def bottleneck_net(seed=0, num_classes=5):
    """conv -> flatten -> Dense(1) -> Dense(C): every logit is w_c * f(x) + b_c, so the
    gradient of the explained class is w_t * grad f. Re-drawing the top Dense layer
    rescales it (and may flip its sign): the standard map |g| keeps its ranking exactly,
    while the maps that compare classes (active/inactive) may change."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="tanh"),
        keras.layers.Flatten(),
        keras.layers.Dense(1),
        keras.layers.Dense(num_classes),
    ])


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).random((6, 8, 8, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def conv_net():
    return small_conv_net()


@pytest.fixture(scope="module")
def cascading(conv_net, batch):
    return randomization_check(conv_net, batch, seed=0)


@pytest.fixture(scope="module")
def independent(conv_net, batch):
    methods = ("standard", "negative", "active")
    return randomization_check(conv_net, batch, methods=methods, cascade=False, seed=0)


def _weights(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def scipy_mean_spearman(maps, reference):
    """The mean over images of scipy's Spearman correlation of each map with its
    reference; a constant map has no ranking and counts as 0.0, as in the checks."""
    values = [
        0.0 if np.ptp(a) == 0 or np.ptp(b) == 0 else stats.spearmanr(a.ravel(), b.ravel()).statistic
        for a, b in zip(np.asarray(maps), np.asarray(reference))
    ]
    return float(np.mean(values))


def gradient_x_input(model):
    """A user's explainer factory: max over channels of |g * x| and of |g|, g the input
    gradient of the explained class's logit (the predicted class without targets)."""

    def explain(images, targets=None):
        images = tf.convert_to_tensor(images)
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = model(images, training=False)
            if targets is None:
                targets = tf.argmax(logits, axis=1)
            picked = tf.gather(logits, targets, axis=1, batch_dims=1)
        g = tape.gradient(picked, images)
        return {
            "gxi": tf.reduce_max(tf.abs(g * images), axis=-1),
            "gradient": tf.reduce_max(tf.abs(g), axis=-1),
        }

    return explain


def signed_integrated_gradients(model, images, targets, steps=32):
    """The signed IG map by a plain loop over the path: a = x * mean_k g(a_k x), a_k =
    (k + 0.5) / steps (baseline 0), then at each pixel a's channel of largest |a|."""
    total = np.zeros(images.shape, np.float64)
    for k in range(steps):
        point = tf.constant(images * np.float32((k + 0.5) / steps))
        with tf.GradientTape() as tape:
            tape.watch(point)
            picked = tf.gather(model(point, training=False), targets, axis=1, batch_dims=1)
        total += tape.gradient(picked, point).numpy()
    attribution = images * total / steps
    channel = np.abs(attribution).argmax(-1)[..., None]
    return np.take_along_axis(attribution, channel, axis=-1)[..., 0]


def randomization_by_hand(model, images, maps_of, cascade=True, seed=0):
    """The randomisation check done by hand: a clone re-drawn top layer first with the
    check's seeded draws (`_fresh_values`, tested on its own below), and the mean scipy
    Spearman of `maps_of(clone, images, targets)` with the intact clone's, the targets
    fixed to the intact model's predictions."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    targets = np.argmax(model(images, training=False).numpy(), axis=1).astype(np.int32)
    intact = maps_of(clone, images, targets)
    curves = {name: [1.0] for name in intact}
    layers = [layer for layer in clone.layers if layer.trainable_weights][::-1]
    for step, layer in enumerate(layers, start=1):
        if not cascade:
            clone.set_weights(model.get_weights())
        for variable, value in _fresh_values(layer, step, seed):
            variable.assign(value)
        maps = maps_of(clone, images, targets)
        for name in intact:
            curves[name].append(scipy_mean_spearman(maps[name], intact[name]))
    return {name: np.array(values) for name, values in curves.items()}, targets


# ----------------------------------------------------------------------------- Spearman


def test_rank_correlations_match_scipy(rng):
    maps = rng.random((4, 6, 7))
    reference = rng.random((4, 6, 7))
    maps[1] = np.round(maps[1] * 3) / 3  # many ties
    reference[2] = np.round(reference[2] * 2)
    reference[3] = maps[3] ** 3  # same ranking
    correlations, defined = rank_correlations(maps, reference)
    expected = [stats.spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(maps, reference)]
    np.testing.assert_allclose(correlations, expected, atol=1e-12)
    assert defined.all() and correlations[3] == pytest.approx(1.0)
    np.testing.assert_allclose(rank_correlations(maps, -reference)[0], -np.asarray(expected))


def test_rank_correlation_of_a_constant_map_is_zero_and_undefined(rng):
    maps = rng.random((3, 5, 5)).astype(np.float32)
    reference = maps.copy()
    maps[0] = 0.0
    reference[2] = 0.5
    correlations, defined = rank_correlations(tf.constant(maps), reference)
    assert correlations.tolist() == [0.0, 1.0, 0.0]
    assert defined.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="one shape"):
        rank_correlations(maps, reference[:2])


@pytest.mark.parametrize(
    "attribution", ["gradient", IntegratedGradients(steps=8), SmoothGrad(samples=4)]
)
def test_signed_map_is_the_standard_map_with_its_sign(conv_net, batch, attribution):
    saliency = SignedSaliency(conv_net, attribution=attribution)
    classes = np.argmax(conv_net(batch).numpy(), axis=1).astype(np.int32)
    standard = saliency.explain(batch, classes, methods=["standard"], normalize=False)["standard"]
    signed = _signed_function(saliency)(tf.constant(batch), tf.constant(classes)).numpy()
    np.testing.assert_array_equal(np.abs(signed), standard.numpy())
    assert (signed < 0).any() and (signed > 0).any()


def test_signed_integrated_gradients_against_a_plain_loop(conv_net, batch):
    saliency = SignedSaliency(conv_net, attribution="integrated_gradients")
    classes = np.argmax(conv_net(batch).numpy(), axis=1).astype(np.int32)
    signed = _signed_function(saliency)(tf.constant(batch), tf.constant(classes)).numpy()
    expected = signed_integrated_gradients(conv_net, batch, classes)
    np.testing.assert_allclose(signed, expected, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- randomisation


def test_model_is_untouched_and_result_is_deterministic(conv_net, batch, cascading):
    before = _weights(conv_net)
    again = randomization_check(conv_net, batch, methods=["standard", "negative"], seed=0)
    after = _weights(conv_net)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    # The signed map has its own pass: bit-identical whatever the methods asked for.
    np.testing.assert_array_equal(again.spearman_signed, cascading.spearman_signed)
    for method in again.methods:
        np.testing.assert_allclose(again.spearman[method], cascading.spearman[method], atol=1e-9)
    other_seed = randomization_check(conv_net, batch, methods="standard", seed=1)
    assert other_seed.seed == 1
    assert other_seed.spearman["standard"].tolist() != cascading.spearman["standard"].tolist()


def test_layers_top_first_and_intact_step(cascading, conv_net, batch):
    names = tuple(layer.name for layer in conv_net.layers[::-1] if layer.weights)
    assert len(names) == 3 and cascading.layers == names
    assert cascading.steps == ("intact", *names)
    assert cascading.methods == METHODS and cascading.n_images == 6 and cascading.cascade
    predicted = np.argmax(conv_net(batch).numpy(), axis=1)
    np.testing.assert_array_equal(cascading.targets, predicted)
    for values in (*cascading.spearman.values(), cascading.spearman_signed):
        assert values.dtype == np.float64 and values.shape == (4,)
        assert values[0] == 1.0 and np.all(np.abs(values) <= 1.0)


def test_randomising_every_layer_destroys_the_maps(cascading):
    # The conv net is untrained: with every layer re-drawn it is an independent random
    # network, whose maps share with the intact ones little more than the border
    # effects of "same" padding (measured: 0.26 standard, under 0.36 for every map).
    for method, values in cascading.spearman.items():
        assert values[-1] < 0.6, method
    assert np.mean([v[-1] for v in cascading.spearman.values()]) < 0.4
    assert cascading.spearman_signed[-1] < 0.6


def test_a_top_layer_that_only_rescales_the_gradient_keeps_the_standard_map(batch):
    model = bottleneck_net()
    before = _weights(model)
    for cascade, methods in ((True, METHODS), (False, ("standard", "positive", "negative"))):
        result = randomization_check(model, batch, methods=methods, cascade=cascade, seed=0)
        assert result.layers == tuple(layer.name for layer in model.layers[::-1] if layer.weights)
        # Step 1 re-draws only the top Dense: g becomes (w'_t / w_t) g, same |g| ranking.
        assert result.spearman["standard"][1] == pytest.approx(1.0, abs=1e-6)
        # Every image explains the same class here, so one scale w'_t / w_t serves them
        # all: the signed map's correlation is +1 or -1, and when the sign is kept the
        # positive and negative maps keep their ranking too.
        assert len(set(result.targets.tolist())) == 1
        assert abs(result.spearman_signed[1]) == pytest.approx(1.0, abs=1e-6)
        if result.spearman_signed[1] > 0:
            assert result.spearman["positive"][1] == pytest.approx(1.0, abs=1e-6)
            assert result.spearman["negative"][1] == pytest.approx(1.0, abs=1e-6)
        # Re-drawing the bottleneck's features changes grad f itself.
        assert result.spearman["standard"][2] < 0.7
        for method, counts in result.undefined.items():
            assert np.all((counts >= 0) & (counts <= result.n_images))
            assert np.all(result.spearman[method][counts == result.n_images] == 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_cascading_and_independent_share_step_one_only(cascading, independent):
    assert not independent.cascade
    assert independent.layers == cascading.layers
    for method in independent.methods:
        assert independent.spearman[method][1] == cascading.spearman[method][1]
    assert independent.spearman_signed[1] == cascading.spearman_signed[1]
    later = np.stack([cascading.spearman[m][2:] for m in independent.methods])
    later_independent = np.stack([v[2:] for v in independent.spearman.values()])
    assert not np.allclose(later, later_independent, atol=1e-3)


def test_nested_and_frozen_layers_are_randomised_and_untouched(batch):
    inner = small_conv_net(seed=3)
    inner.trainable = False  # a frozen backbone is randomised too
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(inputs)
    outputs = keras.layers.Dense(3)(inner(x))
    model = keras.Model(inputs, outputs)
    before = _weights(model)
    result = randomization_check(
        model, batch, methods=["standard", "positive"], cascade=False, seed=2
    )
    inside = [f"{inner.name}/{layer.name}" for layer in inner.layers[::-1] if layer.weights]
    assert result.layers == (model.layers[-1].name, *inside, model.layers[1].name)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))
    assert not inner.trainable
    # The frozen backbone's layers were really re-drawn...
    assert all(result.spearman[m][2:-1].max() < 0.9 for m in result.methods)
    # ...while an untrained BatchNormalization is re-initialised to what it holds
    # (gamma 1, beta 0; its moving statistics are kept): the maps stay exactly the same.
    for method in result.methods:
        assert result.spearman[method][-1] == 1.0
    assert result.spearman_signed[-1] == 1.0


def test_reinitialisation_uses_each_layer_initializer_seeded():
    dense = keras.layers.Dense(
        4,
        kernel_initializer=keras.initializers.RandomUniform(5.0, 6.0),
        bias_initializer=keras.initializers.Constant(0.5),
    )
    dense.build((None, 3))
    norm = keras.layers.BatchNormalization()
    norm.build((None, 4))
    kernel, bias = (np.asarray(v) for _, v in _fresh_values(dense, 1, seed=0))
    assert kernel.shape == (3, 4) and np.all(bias == 0.5)
    assert np.array_equal(kernel, np.asarray(_fresh_values(dense, 1, seed=0)[0][1]))
    assert not np.array_equal(kernel, np.asarray(_fresh_values(dense, 2, seed=0)[0][1]))
    assert not np.array_equal(kernel, np.asarray(_fresh_values(dense, 1, seed=1)[0][1]))
    assert not np.array_equal(kernel, dense.kernel.numpy())
    assert np.all((kernel >= 5.0) & (kernel < 6.0))  # the layer's own initializer
    fresh = _fresh_values(norm, 1, seed=0)
    assert [v.name for v, _ in fresh] == ["gamma", "beta"]
    assert np.all(np.asarray(fresh[0][1]) == 1.0) and np.all(np.asarray(fresh[1][1]) == 0.0)


def test_targets_are_kept_at_every_step(conv_net, batch):
    targets = np.arange(6) % 5
    result = randomization_check(conv_net, batch, methods=["standard"], targets=targets)
    np.testing.assert_array_equal(result.targets, targets)
    with pytest.raises(ValueError, match="targets"):
        randomization_check(conv_net, batch, methods=["standard"], targets=[7] * 6)


def test_images_are_read_as_explain_reads_them(conv_net, batch):
    expected = random_logit_check(conv_net, batch, methods=["standard"], seed=1)
    labels = np.zeros(6, np.int64)  # passed on, not explained
    dataset = tf.data.Dataset.from_tensor_slices((batch, labels)).batch(4)
    for images, steps in (((batch, labels), None), (dataset, None), (dataset.repeat(), 2)):
        assert random_logit_check(
            conv_net, images, methods=["standard"], seed=1, steps=steps
        ) == expected
    result = randomization_check(conv_net, dataset, methods=["standard"], seed=1)
    assert result.n_images == 6
    with pytest.raises(ValueError, match="steps"):
        randomization_check(conv_net, batch, steps=2)


def test_a_model_without_parameters_is_refused(batch):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="nothing to randomise"):
        randomization_check(model, batch, methods=["standard"])


def test_subclassed_model_without_config_is_refused(batch):
    model = small_conv_net(kind="subclassed")
    model(batch)
    with pytest.raises(ValueError, match="get_config"):
        randomization_check(model, batch)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"seed": 2**32}, ValueError, "seed"),
        ({"cascade": 1}, TypeError, "cascade"),
        ({"methods": ["gradcam"]}, ValueError, "methods"),
        ({"methods": []}, ValueError, "methods"),
        ({"images": np.zeros((2, 8, 8, 3), np.uint8)}, TypeError, "images"),
        ({"images": np.zeros((2, 8, 8), np.float32)}, ValueError, "images"),
        ({"images": np.zeros((2, 9, 9, 3), np.float32)}, ValueError, "images"),
        ({"images": np.zeros((0, 8, 8, 3), np.float32)}, ValueError, "images"),
        ({"model": lambda x: x}, TypeError, "model"),
    ],
)
def test_arguments_are_checked(conv_net, batch, kwargs, error, match):
    arguments = {"model": conv_net, "images": batch, **kwargs}
    with pytest.raises(error, match=match):
        randomization_check(**arguments)
    if "cascade" not in kwargs:
        with pytest.raises(error, match=match):
            random_logit_check(**arguments)


# ----------------------------------------------------------------------------- random logit


@pytest.mark.parametrize("attribution", ["gradient", "integrated_gradients", "smoothgrad"])
def test_random_logit_check_against_scipy(conv_net, batch, attribution):
    result = random_logit_check(conv_net, batch, seed=3, attribution=attribution)
    assert list(result) == list(METHODS)
    assert all(-1.0 <= v <= 1.0 for v in result.values())
    saliency = SignedSaliency(conv_net, attribution=attribution)
    classes = np.argmax(conv_net(batch).numpy(), axis=1)
    predicted = saliency.explain(batch, targets=classes)
    draw = np.random.default_rng(3).integers(0, 4, len(batch))
    others = draw + (draw >= classes)
    assert np.all(others != classes) and np.all(others < 5)
    other = saliency.explain(batch, targets=others)
    for method in METHODS:
        expected = scipy_mean_spearman(other[method], predicted[method])
        assert result[method] == pytest.approx(expected, abs=1e-9)


def test_random_logit_check_refuses_a_single_output(batch):
    model = small_conv_net(num_classes=1)
    with pytest.raises(ValueError, match="single output"):
        random_logit_check(model, batch, methods=["standard"])


# ----------------------------------------------------------------------------- any explainer


@pytest.mark.parametrize(
    "attribution, cascade", [(IntegratedGradients(steps=8), True), (SmoothGrad(samples=4), False)]
)
def test_randomization_of_ig_and_smoothgrad_against_the_check_by_hand(
    conv_net, batch, attribution, cascade
):
    result = randomization_check(conv_net, batch, cascade=cascade, seed=2, attribution=attribution)

    built = {}  # one explainer per clone, as the check builds it: traced once

    def maps_of(clone, images, targets):
        if clone not in built:
            saliency = SignedSaliency(clone, attribution=attribution)
            built[clone] = saliency, _signed_function(saliency)
        saliency, signed = built[clone]
        maps = {m: v.numpy() for m, v in saliency.explain(images, targets).items()}
        return {**maps, "signed": signed(tf.constant(images), tf.constant(targets)).numpy()}

    expected, targets = randomization_by_hand(conv_net, batch, maps_of, cascade, seed=2)
    np.testing.assert_array_equal(result.targets, targets)
    assert result.methods == METHODS and result.cascade == cascade
    for method in METHODS:
        np.testing.assert_allclose(result.spearman[method], expected[method], atol=1e-9)
    np.testing.assert_allclose(result.spearman_signed, expected["signed"], atol=1e-9)
    assert result.spearman["standard"][-1] < 0.9  # the maps do follow the weights


def test_randomization_of_a_users_explainer_against_the_check_by_hand(
    conv_net, batch, cascading
):
    before = _weights(conv_net)
    result = randomization_check(conv_net, batch, seed=0, explainer=gradient_x_input)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(conv_net)))

    def maps_of(clone, images, targets):
        maps = gradient_x_input(clone)(tf.constant(images), targets=tf.constant(targets))
        return {name: value.numpy() for name, value in maps.items()}

    expected, targets = randomization_by_hand(conv_net, batch, maps_of)
    np.testing.assert_array_equal(result.targets, targets)
    assert result.methods == ("gxi", "gradient") and result.layers == cascading.layers
    for name in result.methods:
        np.testing.assert_allclose(result.spearman[name], expected[name], atol=1e-9)
        assert result.undefined[name].tolist() == [0, 0, 0, 0]
    # No signed variant is known for a user's map; |g| ranks as the standard map does.
    assert result.spearman_signed is None and result.undefined_signed is None
    np.testing.assert_allclose(result.spearman["gradient"], cascading.spearman["standard"],
                               atol=1e-6)
    assert "signed" not in result.summary() and "gxi" in result.summary()
    import matplotlib

    matplotlib.use("Agg")
    ax = result.plot()  # no signed line
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gxi", "gradient"]
    ax.figure.clear()
    assert RandomizationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    only = randomization_check(conv_net, batch, "gxi", seed=0, explainer=gradient_x_input)
    assert only.methods == ("gxi",)
    np.testing.assert_array_equal(only.spearman["gxi"], result.spearman["gxi"])


def test_a_users_explainer_is_built_once_on_the_copy_and_told_the_targets(conv_net, batch):
    calls = []

    def factory(model):
        calls.append(model)
        inner = gradient_x_input(model)

        def explain(images, targets=None):
            calls.append(targets.numpy().tolist())
            return inner(images, targets)

        return explain

    targets = np.arange(6) % 5
    randomization_check(conv_net, batch, targets=targets, explainer=factory)
    assert isinstance(calls[0], keras.Model) and calls[0] is not conv_net
    assert calls[1:] == [targets.tolist()] * 4  # intact and three layers, the class fixed
    calls.clear()
    random_logit_check(conv_net, batch, seed=3, explainer=factory)
    assert calls[0] is conv_net and len(calls) == 3


def test_random_logit_check_of_a_users_explainer_against_scipy(conv_net, batch):
    result = random_logit_check(conv_net, batch, seed=3, explainer=gradient_x_input)
    assert list(result) == ["gxi", "gradient"]
    explain = gradient_x_input(conv_net)
    classes = np.argmax(conv_net(batch).numpy(), axis=1)
    draw = np.random.default_rng(3).integers(0, 4, len(batch))
    predicted = explain(tf.constant(batch), targets=tf.constant(classes))
    other = explain(tf.constant(batch), targets=tf.constant(draw + (draw >= classes)))
    for name in result:
        expected = scipy_mean_spearman(other[name].numpy(), predicted[name].numpy())
        assert result[name] == pytest.approx(expected, abs=1e-9)


def test_a_factory_of_signed_saliency_takes_the_default_path(conv_net, batch):
    ig = IntegratedGradients(steps=8)
    by_factory = randomization_check(
        conv_net, batch, ["positive"], explainer=lambda model: SignedSaliency(model, attribution=ig)
    )
    assert by_factory == randomization_check(conv_net, batch, ["positive"], attribution=ig)
    assert by_factory.spearman_signed is not None


def _no_targets(model):
    return lambda images: {"map": images[..., 0]}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"explainer": "gradient"}, TypeError, "factory"),
        ({"explainer": lambda model: 3}, TypeError, "callable explainer"),
        ({"explainer": _no_targets}, TypeError, "without a `targets` argument"),
        ({"explainer": gradient_x_input, "attribution": "smoothgrad"}, ValueError, "attribution"),
        ({"attribution": "gradcam"}, ValueError, "attribution"),
        ({"explainer": lambda m: SignedSaliency(small_conv_net())}, ValueError, "model it is"),
        ({"explainer": lambda m: lambda images, targets: [images]}, TypeError, "mapping"),
        ({"explainer": lambda m: lambda images, targets: {}}, ValueError, "at least one map"),
        ({"explainer": lambda m: lambda images, **kw: {"m": images}}, ValueError, "shape"),
        ({"explainer": lambda m: lambda x, targets: {"m": x[..., 0] * np.nan}}, ValueError, "NaN"),
        ({"explainer": lambda m: lambda x, targets: {"m": x[..., 0] > 0}}, TypeError, "numbers"),
        ({"explainer": gradient_x_input, "methods": ["standard"]}, ValueError, "methods"),
        ({"explainer": gradient_x_input, "targets": [7] * 6}, ValueError, "targets"),
    ],
)
def test_explainers_are_checked(conv_net, batch, kwargs, error, match):
    for check in (randomization_check, random_logit_check):
        if check is random_logit_check and "targets" in kwargs:
            continue
        with pytest.raises(error, match=match):
            check(conv_net, batch, **kwargs)


# ----------------------------------------------------------------------------- result


def test_round_trip_json_summary_and_plot(cascading, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    data = cascading.to_dict()
    json.dumps(data, allow_nan=False)
    again = RandomizationResult.from_dict(json.loads(json.dumps(data)))
    assert again == cascading
    np.testing.assert_array_equal(again.spearman["active"], cascading.spearman["active"])
    path = tmp_path / "sanity.json"
    cascading.save_json(path)
    assert RandomizationResult.load_json(path) == cascading
    text = cascading.summary()
    assert "intact" in text and cascading.layers[1] in text and "signed" in text
    ax = cascading.plot(title="cascading")
    assert ax.get_title() == "cascading"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(cascading.steps)
    assert len(ax.get_lines()) >= len(METHODS) + 1
    ax.figure.clear()


def test_reading_the_command_lines_record_and_refusing_broken_ones(cascading):
    data = cascading.to_dict()
    # `tf-signsal sanity` writes the record under "randomization", beside the others.
    assert RandomizationResult.from_dict({"randomization": data, "random_logit": {}}) == cascading
    short = {**data, "spearman": {m: v[:-1] for m, v in data["spearman"].items()}}
    broken = [
        ({k: v for k, v in data.items() if k != "layers"}, r"missing \['layers'\]"),
        ([1, 2], "missing"),
        (short, "one value per step"),
        ({**data, "targets": data["targets"][:-1]}, "targets"),
        ({**data, "spearman": [0.5]}, "not a RandomizationResult"),
    ]
    for record, match in broken:
        with pytest.raises(ValueError, match=match):
            RandomizationResult.from_dict(record)


def test_checks_in_a_row_log_no_retracing_warning():
    # Each check builds its own explainer (and gradient engine), traced once for its images;
    # TensorFlow counted those first traces as retraces of one function and warned.
    import logging

    messages = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Keep()
    tf.get_logger().addHandler(handler)
    try:
        model = small_conv_net(num_classes=4, seed=1)
        images = np.random.default_rng(0).random((6, 8, 8, 3)).astype(np.float32)
        for _ in range(3):
            assert randomization_check(model, images).spearman
            assert random_logit_check(model, images)
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]
