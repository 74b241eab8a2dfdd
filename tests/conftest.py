"""Shared fixtures: small seeded models and images that the tests make themselves."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
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


def any_size_model(seed=0):
    """A small seeded Functional net taking images of any height and width (3 classes)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(x))


class SubclassedNet(keras.Model):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = keras.layers.Conv2D(6, 3, padding="same", activation="tanh")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(num_classes)

    def call(self, inputs, training=False):
        return self.head(self.pool(self.conv(inputs)))


def write_image_tree(root, split, size, rng, per_class=2, gray=(), fmt="png"):
    """Write `<root>/<split>/<class>/<i>.<fmt>` images; return {path: uint8 RGB array} in order.

    Class folders are created in reverse order so that only sorting gives label order.
    `gray` lists (class index, i) pairs written as single-channel files.
    """
    expected = {}
    for label in reversed(range(10)):
        folder = os.path.join(root, split, CIFAR10_CLASSES[label])
        os.makedirs(folder, exist_ok=True)
        for i in reversed(range(per_class)):
            path = os.path.join(folder, f"{i:04d}.{fmt}")
            if (label, i) in gray:
                pixels = rng.integers(0, 256, size, dtype=np.uint8)
                Image.fromarray(pixels, mode="L").save(path)
                rgb = np.repeat(pixels[..., None], 3, axis=-1)
            else:
                rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(rgb, mode="RGB").save(path)
            expected[path] = (label, rgb)
    return dict(sorted(expected.items()))  # sorted paths == sorted class, then file order


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def images(rng):
    return rng.random((6, 8, 8, 3), dtype=np.float32)


@pytest.fixture
def model():
    return small_conv_net()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small saved classifier (4 classes), one per test module."""
    path = str(tmp_path_factory.mktemp("model") / "net.keras")
    small_conv_net(num_classes=4, seed=1).save(path)
    return path


def assert_stored_maps_equal(stored, expected):
    """`tf_signsal.read_maps`'s `stored` equal, bit for bit, an in-process run's maps.npz
    (`expected`, as np.load gives it): every index once, the logits, targets and maps."""
    from tf_signsal import METHODS

    np.testing.assert_array_equal(stored.index, np.arange(len(expected["files"])))
    np.testing.assert_array_equal(stored.logits, expected["logits"])
    np.testing.assert_array_equal(stored.targets, expected["targets"])
    for method in METHODS:
        np.testing.assert_array_equal(stored.maps[method], expected[method])
