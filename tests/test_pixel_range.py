"""The pixel range a model expects (tf_signsal._model): read from its first layers, checked
against `value_range` by the API (a ValueRangeWarning), and data that fill a small part of
`value_range` (tf_signsal._data); the sanity check's refusal of models it cannot copy.

Every range found is checked against the layer itself: the layer maps the ends of the range
found to the ends of a conventional range.
"""

import warnings

import keras
import numpy as np
import pytest

from conftest import small_conv_net
from tf_signsal import SignedSaliency, _data, _model
from tf_signsal.evaluation import AllegianceEvaluator, random_logit_check, randomization_check

CONVENTIONAL = [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)]


def _net(*first, shape=(8, 8, 3), seed=0):
    """A small classifier whose first layers are `first`."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(shape), *first, keras.layers.Conv2D(4, 3, activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])


def _assert_maps_to_a_conventional_range(layer, expected):
    ends = np.broadcast_to(np.array(expected, np.float32)[:, None], (2, 3)).reshape(2, 1, 1, 3)
    mapped = keras.ops.convert_to_numpy(layer(ends)).reshape(2, 3)
    assert any(np.allclose(mapped[0], low, atol=0.03 * (high - low))
               and np.allclose(mapped[1], high, atol=0.03 * (high - low))
               for low, high in CONVENTIONAL), mapped


@pytest.mark.parametrize("scale, offset, expected", [
    (1 / 255, 0.0, (0.0, 255.0)),          # EfficientNet
    (1 / 127.5, -1.0, (0.0, 255.0)),       # MobileNetV3, the MobileNetV2 wrapper
    (1 / 128, -1.0, (0.0, 255.0)),         # EfficientNetV2 (takes [0, 256])
    ([1 / 255, 1 / 255, 1 / 255], 0.0, (0.0, 255.0)),
    (2.0, -1.0, (0.0, 1.0)),
    (255.0, 0.0, (0.0, 1.0)),
    (0.5, 0.5, (-1.0, 1.0)),
])
def test_a_rescaling_shows_the_range_it_maps_from(scale, offset, expected):
    layer = keras.layers.Rescaling(scale, offset=offset)
    found = _model.expected_range(_net(layer))
    assert found.value_range == expected and found.layer == layer.name
    assert found.reason.startswith("Rescaling(scale=")
    _assert_maps_to_a_conventional_range(layer, expected)


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (1 / 255, -0.5), (-1 / 255, 0.0)])
def test_a_rescaling_that_maps_no_conventional_range_shows_nothing(scale, offset):
    assert _model.expected_range(_net(keras.layers.Rescaling(scale, offset=offset))) is None


def test_a_normalization_shows_the_range_of_its_statistics():
    rng = np.random.default_rng(0)
    for span in (1.0, 255.0):
        layer = keras.layers.Normalization()
        layer.adapt(rng.random((16, 8, 8, 3)) * span)
        assert _model.expected_range(_net(layer)).value_range == (0.0, span)
    imagenet = keras.layers.Normalization(  # ConvNeXt's
        mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
        variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2])
    assert _model.expected_range(_net(imagenet)).value_range == (0.0, 255.0)
    assert _model.expected_range(_net(keras.layers.Normalization(mean=0.0, variance=1.0))) is None
    inverted = keras.layers.Normalization(mean=120.0, variance=3600.0, invert=True)
    assert _model.expected_range(_net(inverted)) is None


def test_the_input_is_followed_past_layers_that_keep_its_scale_and_into_nested_models():
    inner = _net(keras.layers.Rescaling(1 / 255), shape=(6, 6, 3))
    inner.name = "classifier"
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.ZeroPadding2D(1)(keras.layers.Resizing(4, 4)(inputs))
    model = keras.Model(inputs, inner(x))
    found = _model.expected_range(model)
    assert found.value_range == (0.0, 255.0)
    assert found.layer == f"classifier/{inner.layers[0].name}"
    # A convolution first, a branching input, a subclassed model: nothing to see.
    assert _model.expected_range(small_conv_net()) is None
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    branching = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(
        keras.layers.Concatenate()([scaled, keras.layers.Conv2D(3, 1)(inputs)]))))
    assert _model.expected_range(branching) is None
    assert _model.expected_range(small_conv_net(kind="subclassed")) is None


@pytest.mark.parametrize("name, expected", [
    ("MobileNetV3Small", (0.0, 255.0)),
    ("ResNet50", None),  # caffe preprocessing outside the model: nothing to see
    pytest.param("EfficientNetB0", (0.0, 255.0), marks=pytest.mark.slow),
    pytest.param("ConvNeXtTiny", (0.0, 255.0), marks=pytest.mark.slow),
])
def test_keras_applications(name, expected):
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3))
    found = _model.expected_range(model)
    assert (None if found is None else found.value_range) == expected


# ----------------------------------------------------------------------------- warnings


def _range_warnings(caught):
    return [w for w in caught if issubclass(w.category, _model.ValueRangeWarning)]


def test_the_api_warns_once_at_the_users_line_when_value_range_contradicts_the_model():
    model = _net(keras.layers.Rescaling(1 / 255))
    images = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32) * 255
    calls = {
        "SignedSaliency": lambda value_range: SignedSaliency(model, value_range=value_range),
        "AllegianceEvaluator": lambda value_range: AllegianceEvaluator(
            model, value_range=value_range),
        "AllegianceEvaluator(explainer=...)": lambda value_range: AllegianceEvaluator(
            model, value_range=value_range, pairs=[("m", "black")],
            explainer=lambda x: {"m": x[..., 0]}),
        "random_logit_check": lambda value_range: random_logit_check(
            model, images / 255 * (value_range[1] - value_range[0]), methods=["positive"],
            value_range=value_range),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call((0.0, 1.0))
        found = _range_warnings(caught)
        assert len(found) == 1 and found[0].filename == __file__, (name, found)
        assert "value_range (0, 1) is not what `model` expects" in str(found[0].message)
        assert "pass value_range=(0, 255)" in str(found[0].message)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call((0.0, 255.0))
        assert not _range_warnings(caught), name


def test_data_spanning_a_small_part_of_value_range_warns():
    images = np.random.default_rng(2).random((4, 8, 8, 3), dtype=np.float32)
    for data, warned in [(images, True), (images * 255, False),
                         (np.full_like(images, 0.5), False)]:  # constant: nothing to tell
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _data.batches(data, value_range=(0.0, 255.0))
        found = _range_warnings(caught)
        assert len(found) == warned
        if warned:
            assert "`images` spans [0" in str(found[0].message)
            assert found[0].filename == __file__
    with pytest.warns(_model.ValueRangeWarning, match=r"`data` spans \[0\.\d+, 0\.\d+\], "
                                                      r"0\.\d+% of `value_range` \(0, 255\)"):
        AllegianceEvaluator(small_conv_net(), fractions=(0.0, 0.5), value_range=(0, 255)
                            ).evaluate(images, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _data.batches(images, value_range=(0.0, 1.0))


# ----------------------------------------------------------------------------- copies


def test_randomization_check_refuses_a_lambda_up_front():
    model = _net(keras.layers.Lambda(lambda x: 2.0 * x))
    weights = [w.copy() for w in model.get_weights()]
    # Refused before the images are even looked at (None would be refused next).
    with pytest.raises(ValueError, match=r"the model has a Lambda layer \('lambda.*'\): the "
                                         r"randomisation check runs on a copy.*safe mode"):
        randomization_check(model, None)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert _model.copy_refusal(small_conv_net()) is None
    nested = keras.Sequential([keras.Input((8, 8, 3)), model])
    assert "Lambda layer ('" in _model.copy_refusal(nested)
