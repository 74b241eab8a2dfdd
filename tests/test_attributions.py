"""Sign-aware attributions (gradient x input, integrated gradients, smoothgrad) against
plain loops over classes and points, and their defining properties."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_conv_net
from reference import reference_attributions, reference_class_gradients, reference_maps
from tf_signsal import METHODS, SignedSaliency
from tf_signsal.attributions import (
    ATTRIBUTIONS,
    MAX_POINTS,
    Gradient,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)

CONFIGURED = {
    "gradient": Gradient(),
    "gradient_x_input": GradientXInput(),
    "integrated_gradients": IntegratedGradients(steps=4, baseline=0.2),
    "smoothgrad": SmoothGrad(samples=3, noise=0.1, seed=5),
}


def assert_maps_equal(maps, expected, atol=1e-5):
    for method in METHODS:
        np.testing.assert_allclose(maps[method].numpy(), expected[method], atol=atol,
                                   err_msg=method)


@pytest.mark.parametrize("name", ATTRIBUTIONS)
@pytest.mark.parametrize("jacobian", ["loop", "batch_jacobian"])
def test_maps_match_the_loop_reference(name, jacobian, images):
    model = small_conv_net()
    attribution = CONFIGURED[name]
    saliency = SignedSaliency(model, attribution=attribution, jacobian=jacobian,
                              classes_per_chunk=2)
    attributions = reference_attributions(model, images, attribution)
    assert_maps_equal(saliency.explain(images),
                      reference_maps(model, images, attributions=attributions))
    targets = np.array([4, 0, 3, 1, 2, 2])
    assert_maps_equal(
        saliency.explain(images, targets=targets, normalize=False),
        reference_maps(model, images, targets, normalize=False, attributions=attributions),
    )


@pytest.mark.parametrize("name", ["integrated_gradients", "smoothgrad"])
def test_exact_rivals_and_target_only_paths_agree(name, images):
    model = small_conv_net()
    attribution = CONFIGURED[name]
    full = SignedSaliency(model, attribution=attribution).explain(images)
    rivals = SignedSaliency(model, attribution=attribution, rivals=4).explain(images)
    assert_maps_equal(rivals, {m: v.numpy() for m, v in full.items()}, atol=0)
    alone = SignedSaliency(model, attribution=attribution).explain(
        images, methods=["standard", "positive", "negative"]
    )
    for method in alone:
        np.testing.assert_allclose(alone[method].numpy(), full[method].numpy(), atol=1e-6)


def _one_channel_model():
    keras.utils.set_random_seed(2)
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
        keras.layers.Flatten(), keras.layers.Dense(3),
    ])


def test_integrated_gradients_completeness(rng):
    model = _one_channel_model()
    images = rng.random((4, 6, 6, 1), dtype=np.float32)
    baseline = 0.1
    logits = np.asarray(model(images, training=False))
    origin = np.asarray(model(np.full_like(images, baseline), training=False))
    targets = logits.argmax(axis=1)
    expected = logits[np.arange(4), targets] - origin[np.arange(4), targets]
    errors = []
    for steps in (2, 8, 32):
        saliency = SignedSaliency(
            model, attribution=IntegratedGradients(steps=steps, baseline=baseline)
        )
        maps = saliency.explain(images, methods=["positive", "negative"], normalize=False)
        total = (maps["positive"] - maps["negative"]).numpy().sum(axis=(1, 2))
        errors.append(np.abs(total - expected).max())
    assert errors[2] < 1e-3 * max(1.0, np.abs(expected).max())
    assert errors[0] > errors[1] > errors[2]  # the midpoint rule's error shrinks


def test_smoothgrad_without_noise_is_the_gradient(model, images):
    gradient = SignedSaliency(model).explain(images)
    smooth = SignedSaliency(model, attribution=SmoothGrad(samples=3, noise=0.0)).explain(images)
    assert_maps_equal(smooth, {m: v.numpy() for m, v in gradient.items()}, atol=1e-6)


def test_smoothgrad_is_seeded_and_batch_independent(model, images):
    saliency = SignedSaliency(model, attribution=SmoothGrad(samples=4, seed=3))
    whole = saliency.explain(images)
    one_by_one = saliency.explain(images, batch_size=1)
    reordered = saliency.explain(images[::-1])
    for method in METHODS:
        np.testing.assert_array_equal(one_by_one[method].numpy(), whole[method].numpy())
        np.testing.assert_allclose(reordered[method].numpy()[::-1], whole[method].numpy(),
                                   atol=1e-6)
    other = SignedSaliency(model, attribution=SmoothGrad(samples=4, seed=4)).explain(images)
    assert not np.allclose(other["standard"].numpy(), whole["standard"].numpy())


def test_smoothgrad_noise_statistics(images):
    attribution = SmoothGrad(samples=50, noise=0.2, value_range=(0.0, 2.0))
    points = attribution.points(tf.constant(images)).numpy().reshape(50, *images.shape)
    noise = points - images[None]
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.4) < 0.01


def test_named_attributions_use_the_value_range(model, images):
    white = SignedSaliency(model, attribution="integrated_gradients", value_range=(-1.0, 2.0))
    explicit = SignedSaliency(model, attribution=IntegratedGradients(baseline=0.0))
    assert white.attribution.steps == 32 and explicit.attribution.baseline == 0.0
    named = IntegratedGradients(baseline="white", value_range=(-1.0, 2.0))
    x0 = named.scale(tf.constant(images)).numpy() - images
    np.testing.assert_allclose(x0, -2.0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"attribution": "lime"}, ValueError, "`attribution`"),
        ({"attribution": 3}, TypeError, "`attribution`"),
        ({"attribution": IntegratedGradients(baseline=np.zeros((4, 4, 3)))}, ValueError,
         "`baseline`"),
    ],
)
def test_bad_attribution_arguments(model, images, kwargs, error, message):
    with pytest.raises(error, match=message):
        SignedSaliency(model, **kwargs).explain(images)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: IntegratedGradients(steps=0), ValueError, "`steps`"),
        (lambda: IntegratedGradients(baseline="grey"), ValueError, "`baseline`"),
        (lambda: IntegratedGradients(baseline=np.nan), ValueError, "`baseline`"),
        (lambda: SmoothGrad(noise=-0.1), ValueError, "`noise`"),
        (lambda: SmoothGrad(samples=2.5), TypeError, "`samples`"),
        (lambda: SmoothGrad(seed=-1), ValueError, "`seed`"),
        # What a typo would cost is named, before any work.
        (lambda: IntegratedGradients(steps=10**9), ValueError,
         r"`steps` must be at most 1024.*steps=1000000000 would take 1000000000 backward "
         r"passes per image"),
        (lambda: SmoothGrad(samples=MAX_POINTS + 1), ValueError,
         r"`samples` must be at most 1024.*1025 backward passes"),
        (lambda: SmoothGrad(noise=1.5), ValueError, r"`noise` must be at most 1 .*mostly noise"),
        (lambda: IntegratedGradients(steps=4, value_range=(1.0, 0.0)), ValueError,
         "`value_range`"),
    ],
)
def test_bad_attribution_parameters(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_bounds_themselves_are_accepted():
    assert IntegratedGradients(steps=MAX_POINTS).num_points == MAX_POINTS
    assert SmoothGrad(samples=MAX_POINTS, noise=1.0).num_points == MAX_POINTS


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("jacobian", ["loop", "batch_jacobian"])
def test_integrated_gradients_at_any_steps_against_an_eager_tape(steps, jacobian, images):
    """IG written out with numpy and an eager tape over every class: the midpoint path from
    "white", which is the high end of the explainer's value_range, not 1."""
    model = small_conv_net()
    low, high = 0.0, 2.0
    saliency = SignedSaliency(
        model, attribution=IntegratedGradients(steps=steps, baseline="white"),
        value_range=(low, high), jacobian=jacobian, classes_per_chunk=2,
    )
    x0 = np.full_like(images, high)
    path = [x0 + (k + 0.5) / steps * (images - x0) for k in range(steps)]
    gradients = np.mean([reference_class_gradients(model, p) for p in path], axis=0)
    attributions = gradients * (images - x0)[:, None]  # (B, C, H, W, ch)
    expected = reference_maps(model, images, attributions=attributions)
    maps = saliency.explain(images)
    np.testing.assert_array_equal(maps.targets, model(images).numpy().argmax(-1))
    for method in METHODS:
        assert np.asarray(maps[method]).max() == 1, method  # not all zero
    assert_maps_equal(maps, expected)


def test_attributions_follow_the_explainers_value_range(model, images):
    from tf_signsal import AllegianceEvaluator

    white, smooth = IntegratedGradients(baseline="white"), SmoothGrad(samples=2, seed=1)
    x = tf.constant(images)
    for bound in (
        SignedSaliency(model, attribution=white, value_range=(0, 255)).attribution,
        AllegianceEvaluator(model, value_range=(0, 255), attribution=white)._saliency.attribution,
    ):
        np.testing.assert_array_equal(bound.scale(x).numpy(), images - 255)
    np.testing.assert_array_equal(white.scale(x).numpy(), images - 1)  # the user's is kept
    assert white.config()["value_range"] is None
    noisy = SignedSaliency(model, attribution=smooth, value_range=(0, 255)).attribution
    explicit = SmoothGrad(samples=2, seed=1, value_range=(0, 255))
    np.testing.assert_array_equal(noisy.points(x).numpy(), explicit.points(x).numpy())
    assert noisy.config() == explicit.config()
    # Given its own range, the attribution keeps it; two different ranges given are refused.
    own = SignedSaliency(model, attribution=IntegratedGradients(baseline="white",
                                                                value_range=(0, 255)))
    np.testing.assert_array_equal(own.attribution.scale(x).numpy(), images - 255)
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\), but the explainer's "
                                         r"`value_range` is \(0, 255\)"):
        SignedSaliency(model, attribution=SmoothGrad(value_range=(0, 1)), value_range=(0, 255))


def test_a_long_run_shows_a_progress_bar(model, images, capsys):
    long = SignedSaliency(model, attribution=IntegratedGradients(steps=MAX_POINTS))
    few = images[:4]  # 1024 points x 4 images x 1 class = LONG_RUN_PASSES
    long.explain(few, methods=["positive"], batch_size=2)
    shown = capsys.readouterr().out
    assert "2/4" in shown and "4/4" in shown
    long.explain(few, methods=["positive"], verbose=0)
    SignedSaliency(model).explain(images)  # 6 images x 5 classes: short, quiet
    many = np.concatenate([images] * 200)  # 1,200 images x 5 classes: one-point gradients
    SignedSaliency(model).explain(many, batch_size=600)  # are quiet however many
    assert capsys.readouterr().out == ""
    SignedSaliency(model).explain(images, verbose=1)
    assert "6/6" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`verbose`"):
        SignedSaliency(model).explain(images, verbose=3)


def test_evaluator_callbacks_and_export_use_the_attribution(model, images, tmp_path):
    from tf_signsal import AllegianceEvaluator, callbacks
    from tf_signsal.evaluation import PAPER_PAIRS
    from tf_signsal.serving import export

    attribution = IntegratedGradients(steps=3)
    saliency = SignedSaliency(model, attribution=attribution)
    expected = saliency.explain(images)
    # The evaluator's default explainer, and an explicit one, give the same curves.
    by_name = AllegianceEvaluator(model, attribution=attribution).evaluate(images, verbose=0)
    explicit = AllegianceEvaluator(model, explainer=saliency).evaluate(images, verbose=0)
    for pair in PAPER_PAIRS:
        np.testing.assert_array_equal(by_name.curves[pair], explicit.curves[pair])
    with pytest.raises(ValueError, match="`attribution`"):
        AllegianceEvaluator(model, explainer=saliency, attribution="smoothgrad")
    # The maps callback logs the attribution's maps.
    maps_cb = callbacks.SaliencyMapsCallback(images, tmp_path / "maps", attribution=attribution)
    maps_cb.set_model(model)
    computed = maps_cb.compute()
    for method in METHODS:
        np.testing.assert_array_equal(computed[method], expected[method].numpy())
    allegiance = callbacks.AllegianceCallback(images, attribution=attribution)
    allegiance.set_model(model)
    assert allegiance.evaluate() == by_name
    # The served explain signature gives the same maps.
    import tensorflow as tf

    served = tf.saved_model.load(export(model, tmp_path / "m" / "1", attribution=attribution))
    out = served.signatures["explain"](images=tf.constant(images))
    for method in METHODS:
        np.testing.assert_allclose(out[method].numpy(), expected[method].numpy(), atol=1e-5)
