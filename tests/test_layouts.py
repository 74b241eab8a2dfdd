"""Layouts the package must never explain or rank silently wrong: channels-first models
(explained on channels-last images, transposed for them, or refused where the layout cannot
be told) and float64 maps of a user's explainer (ranked without losing their order)."""

import keras
import numpy as np
import pytest

from reference import reference_class_gradients, reference_maps
from tf_signsal import METHODS, SignedSaliency, _checks, class_gradients
from tf_signsal.evaluation import AllegianceEvaluator, deletion_masks

# ----------------------------------------------------------------------------- channels first

SIDE, CHANNELS = 10, 3


def _channels_first_net(functional=False):
    """A small seeded conv net taking (B, 3, 10, 10): Sequential with explicit
    data_format, or Functional built under keras.config's image_data_format."""
    keras.utils.set_random_seed(3)
    if not functional:
        return keras.Sequential([
            keras.Input((CHANNELS, SIDE, SIDE)),
            keras.layers.Conv2D(4, 3, activation="tanh", data_format="channels_first"),
            keras.layers.MaxPooling2D(2, data_format="channels_first"),
            keras.layers.Conv2D(5, 2, activation="relu", data_format="channels_first"),
            keras.layers.Flatten(data_format="channels_first"),
            keras.layers.Dense(4),
        ])
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        inputs = keras.Input((CHANNELS, SIDE, SIDE))
        x = keras.layers.Conv2D(4, 3, activation="tanh")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(5, 2)(x))
        return keras.Model(inputs, keras.layers.Dense(4)(x))
    finally:
        keras.config.set_image_data_format(before)


def _permuted(model):
    """The same weights behind a Permute: the wrapping the package advises."""
    return keras.Sequential([keras.Input((SIDE, SIDE, CHANNELS)),
                             keras.layers.Permute((3, 1, 2)), model])


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_a_channels_first_model_is_explained_on_channels_last_images(functional, rng):
    model = _channels_first_net(functional)
    assert _checks.channels_first(model)
    assert _checks.model_image_shape(model) == (SIDE, SIDE, CHANNELS)
    wrapped = _permuted(model)
    assert not _checks.channels_first(wrapped)  # the Permute comes before its layers
    images = rng.random((3, SIDE, SIDE, CHANNELS), dtype=np.float32)
    maps = SignedSaliency(model).explain(images)
    same = SignedSaliency(wrapped).explain(images)
    expected = reference_maps(wrapped, images)  # an eager tape, channels last
    for method in METHODS:
        np.testing.assert_array_equal(maps[method].numpy(), same[method].numpy())
        np.testing.assert_allclose(maps[method].numpy(), expected[method], atol=1e-5,
                                   err_msg=method)
    np.testing.assert_allclose(class_gradients(model, images).numpy(),
                               reference_class_gradients(wrapped, images), atol=1e-6)
    curves = [AllegianceEvaluator(m, fractions=(0.0, 0.2, 0.6)).evaluate(images, verbose=0)
              for m in (model, wrapped)]
    for pair in curves[0].pairs:
        np.testing.assert_array_equal(curves[0].curves[pair], curves[1].curves[pair])


def test_channels_first_images_are_refused_with_the_transpose_to_make(rng):
    model = _channels_first_net()
    images = rng.random((2, CHANNELS, SIDE, SIDE), dtype=np.float32)
    with pytest.raises(ValueError, match=r"per-image shape \(3, 10, 10\), but the model takes "
                                         r"\(10, 10, 3\) \(it is channels first.*np.transpose"):
        SignedSaliency(model).explain(images)


class _ChannelsFirstSubclass(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, data_format="channels_first")
        self.head = keras.layers.Dense(3)

    def call(self, inputs):
        return self.head(keras.ops.mean(self.conv(inputs), axis=(2, 3)))


def test_a_layout_that_cannot_be_told_is_refused_with_the_wrapping(rng):
    images = rng.random((2, SIDE, SIDE, CHANNELS), dtype=np.float32)
    with pytest.raises(ValueError, match=r"layer conv2d.*channels first.*declares no input "
                                         r"shape.*keras.layers.Permute\(\(3, 1, 2\)\)"):
        SignedSaliency(_ChannelsFirstSubclass()).explain(images)
    keras.utils.set_random_seed(4)
    # No layer has a data_format: (3, 10, 10) is read as channels first, and refused.
    opaque = keras.Sequential([keras.Input((CHANNELS, SIDE, SIDE)),
                               keras.layers.Reshape((CHANNELS * SIDE * SIDE,)),
                               keras.layers.Dense(3)])
    advice = r"keras.Sequential\(\[keras.Input\(\(10, 10, 3\)\), keras.layers.Permute"
    with pytest.raises(ValueError, match=r"\(None, 3, 10, 10\), which looks channels first.*"
                                         + advice):
        SignedSaliency(opaque)
    maps = SignedSaliency(_permuted(opaque)).explain(images)  # wrapped as advised
    assert maps["standard"].shape == (2, SIDE, SIDE)

# ----------------------------------------------------------------------------- float64 maps


def _ranked(images, dtype, offset, step):
    """Maps offset + step * k, k = 1..N the rank of each pixel's first channel in its image."""
    flat = np.asarray(images)[..., 0].reshape(len(images), -1)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1, kind="stable") + 1
    return (offset + ranks * step).reshape(np.shape(images)[:3]).astype(dtype)


def _fine(images):  # float64 values 1 + k * 1e-12: one value once cast to float32
    return {"m": _ranked(images, np.float64, 1.0, 1e-12)}


def _coarse(images):  # the same order as float32 values k
    return {"m": _ranked(images, np.float32, 0.0, 1.0)}


def test_float64_maps_are_ranked_without_losing_their_order(model, rng):
    images = rng.random((5, 8, 8, 3), dtype=np.float32)
    fine = _fine(images)["m"]
    assert np.unique(fine.astype(np.float32)).size == 1  # the cast would make all ties
    fractions = (0.0, 0.1, 0.5, 0.9)
    pairs = [("m", "black"), ("m", "white"), ("random", "black")]
    results = [
        AllegianceEvaluator(
            model, pairs=pairs, fractions=fractions, orders=("morf", "lerf", "insertion"),
            explainer=explainer, batch_size=2,
        ).evaluate(images, verbose=0)
        for explainer in (_fine, _coarse)
    ]
    fine_result, coarse_result = results
    assert (fine_result.order_deleted["morf"][("m", "black")][1:] > 0).all()  # it deletes
    for order in fine_result.orders:
        for pair in fine_result.pairs:
            np.testing.assert_array_equal(fine_result.order_curves[order][pair],
                                          coarse_result.order_curves[order][pair])
            np.testing.assert_array_equal(fine_result.order_deleted[order][pair],
                                          coarse_result.order_deleted[order][pair])
        np.testing.assert_array_equal(
            deletion_masks(fine, fractions, order).numpy(),
            deletion_masks(_coarse(images)["m"], fractions, order).numpy(),
        )


@pytest.mark.parametrize("dtype, kept", [(np.float64, "float64"), (np.float16, "float32"),
                                         (np.int32, "float32"), (np.float32, "float32")])
def test_explainer_maps_keep_float64_and_widen_the_rest_to_float32(dtype, kept, images):
    returned = {"m": np.ones(images.shape[:3], dtype)}
    assert _checks.explainer_maps(returned, None, images)["m"].dtype.name == kept
