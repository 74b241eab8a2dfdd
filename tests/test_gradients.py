"""class_gradients and the private gradient engine against the per-class loop reference."""

import numpy as np
import pytest
import tensorflow as tf

import tf_signsal
from conftest import small_conv_net
from reference import reference_class_gradients
from tf_signsal.gradients import _GradientEngine as GradientEngine


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_class_gradients_match_loop(kind, images):
    model = small_conv_net(kind=kind)
    expected = reference_class_gradients(model, images)
    got = tf_signsal.class_gradients(model, images).numpy()
    assert got.shape == (6, 5, 8, 8, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_class_gradients_subset_of_classes(model, images):
    expected = reference_class_gradients(model, images)[:, [3, 0]]
    got = tf_signsal.class_gradients(model, images, classes=[3, 0]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_class_gradients_rejects_unknown_class(model, images):
    with pytest.raises(ValueError, match="`classes`"):
        tf_signsal.class_gradients(model, images, classes=[7])


@pytest.mark.parametrize("jacobian", ["loop", "batch_jacobian"])
@pytest.mark.parametrize("classes_per_chunk", [1, 2, 5, 16])
def test_engine_statistics_match_loop(jacobian, classes_per_chunk, images):
    model = small_conv_net(num_classes=5)
    gradients = reference_class_gradients(model, images)
    targets = np.array([0, 4, 2, 2, 1, 3], np.int32)
    engine = GradientEngine(model, classes_per_chunk=classes_per_chunk, jacobian=jacobian)
    stats = engine(tf.constant(images), targets, with_rivals=True)
    for b, target in enumerate(targets):
        others = np.delete(gradients[b], target, axis=0)
        np.testing.assert_allclose(stats.target_gradient[b], gradients[b, target], atol=1e-6)
        np.testing.assert_allclose(stats.rival_max[b], others.max(axis=0), atol=1e-6)
        np.testing.assert_allclose(stats.rival_min[b], others.min(axis=0), atol=1e-6)
    np.testing.assert_array_equal(stats.targets, targets)


@pytest.mark.parametrize("jacobian", ["loop", "batch_jacobian"])
@pytest.mark.parametrize("rivals, classes_per_chunk", [(1, 16), (2, 1), (3, 2), (4, 3), (9, 2)])
def test_top_k_rivals_match_loop(jacobian, rivals, classes_per_chunk, images):
    model = small_conv_net(num_classes=6)
    gradients = reference_class_gradients(model, images)
    logits = np.asarray(model(images, training=False))
    targets = np.array([0, 5, 2, 2, 1, 3], np.int32)
    engine = GradientEngine(model, classes_per_chunk, jacobian, rivals=rivals)
    stats = engine(tf.constant(images), targets, with_rivals=True)
    for b, target in enumerate(targets):
        # The k highest-scoring classes other than the target, found by a plain sort.
        order = [c for c in np.argsort(-logits[b], kind="stable") if c != target]
        chosen = gradients[b, order[:rivals]]
        np.testing.assert_allclose(stats.target_gradient[b], gradients[b, target], atol=1e-6)
        np.testing.assert_allclose(stats.rival_max[b], chosen.max(axis=0), atol=1e-6)
        np.testing.assert_allclose(stats.rival_min[b], chosen.min(axis=0), atol=1e-6)
    if rivals >= 5:  # every other class: the exact statistics
        exact = GradientEngine(model, jacobian=jacobian)(tf.constant(images), targets, True)
        for got, expected in zip(stats, exact):
            np.testing.assert_allclose(got, expected, atol=1e-6)


def test_top_k_rivals_with_predicted_targets(images):
    model = small_conv_net(num_classes=6)
    gradients = reference_class_gradients(model, images)
    logits = np.asarray(model(images, training=False))
    stats = GradientEngine(model, rivals=2)(tf.constant(images), None, with_rivals=True)
    np.testing.assert_array_equal(stats.targets, logits.argmax(axis=1))
    for b, target in enumerate(logits.argmax(axis=1)):
        runners_up = np.argsort(-logits[b], kind="stable")[1:3]
        np.testing.assert_allclose(stats.target_gradient[b], gradients[b, target], atol=1e-6)
        np.testing.assert_allclose(stats.rival_max[b], gradients[b, runners_up].max(0), atol=1e-6)
    np.testing.assert_allclose(stats.logits, logits, rtol=1e-5, atol=1e-6)


def test_engine_predicted_targets_are_first_argmax(model, images):
    engine = GradientEngine(model)
    stats = engine(tf.constant(images), None, with_rivals=False)
    expected = np.asarray(model(images, training=False)).argmax(axis=1)
    np.testing.assert_array_equal(stats.targets, expected)
    np.testing.assert_allclose(stats.logits, model(images, training=False), rtol=1e-5, atol=1e-6)


def test_no_retracing_when_batch_size_changes(model, rng):
    engine = GradientEngine(model)
    for batch in (1, 3, 7):
        engine(tf.constant(rng.random((batch, 8, 8, 3), np.float32)), None, with_rivals=True)
    function = engine._functions[("rivals", (8, 8, 3))]
    assert function.experimental_get_tracing_count() == 1


def test_single_class_model_keeps_every_gradient_active(images):
    model = small_conv_net(num_classes=1)
    stats = GradientEngine(model)(tf.constant(images), None, with_rivals=True)
    assert np.all(np.isneginf(stats.rival_max)) and np.all(np.isposinf(stats.rival_min))


def test_output_independent_of_input_is_rejected(images):
    import keras

    inputs = keras.Input((8, 8, 3))
    constant = keras.layers.Lambda(lambda x: tf.zeros((tf.shape(x)[0], 4)))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(constant))
    with pytest.raises(ValueError, match="does not depend on its input"):
        tf_signsal.class_gradients(model, images)


def test_bad_engine_arguments(model):
    with pytest.raises(ValueError, match="classes_per_chunk"):
        GradientEngine(model, classes_per_chunk=0)
    with pytest.raises(ValueError, match="jacobian"):
        GradientEngine(model, jacobian="fast")
    with pytest.raises(ValueError, match="`rivals` must be a positive integer, received 0"):
        GradientEngine(model, rivals=0)


def test_class_gradients_of_a_signed_saliency_trace_once(model, images):
    saliency = tf_signsal.SignedSaliency(model)
    expected = reference_class_gradients(model, images)
    for size in (6, 2, 5):  # the batch size may change without a new trace
        np.testing.assert_allclose(
            tf_signsal.class_gradients(saliency, images[:size]).numpy(), expected[:size],
            rtol=1e-5, atol=1e-6,
        )
    function = saliency._engine._functions[("jacobian", (8, 8, 3))]
    assert function.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(
        tf_signsal.class_gradients(saliency, images, classes=[4, 1]).numpy(),
        expected[:, [4, 1]], rtol=1e-5, atol=1e-6,
    )


def test_the_engine_is_private_and_its_old_name_warns(model):
    assert "GradientEngine" not in tf_signsal.__all__
    with pytest.warns(DeprecationWarning, match="GradientEngine is deprecated") as caught:
        engine_class = tf_signsal.GradientEngine
    assert caught[0].filename == __file__
    assert engine_class is GradientEngine
    assert engine_class(model, jacobian="loop").jacobian_mode == "loop"


def test_class_gradients_of_an_empty_batch(model, images):
    assert tf_signsal.class_gradients(model, images[:0]).shape == (0, 5, 8, 8, 3)


def test_empty_classes_are_refused(model, images):
    with pytest.raises(ValueError, match="`classes` must name at least one class"):
        tf_signsal.class_gradients(model, images, classes=[])
