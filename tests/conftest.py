"""Shared fixtures: small seeded models and images that the tests make themselves."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def small_conv_net(input_shape=(8, 8, 3), num_classes=5, seed=0, kind="sequential"):
    """A small seeded conv net: Sequential, Functional or subclassed."""
    keras.utils.set_random_seed(seed)
    if kind == "subclassed":
        return SubclassedNet(num_classes)
    layers = [
        keras.layers.Conv2D(6, 3, padding="same", activation="tanh"),
        keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes),
    ]
    if kind == "sequential":
        return keras.Sequential([keras.Input(input_shape), *layers])
    inputs = keras.Input(input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


class SubclassedNet(keras.Model):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = keras.layers.Conv2D(6, 3, padding="same", activation="tanh")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(num_classes)

    def call(self, inputs, training=False):
        return self.head(self.pool(self.conv(inputs)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def images(rng):
    return rng.random((6, 8, 8, 3), dtype=np.float32)


@pytest.fixture
def model():
    return small_conv_net()
