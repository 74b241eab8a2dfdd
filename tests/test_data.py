"""tf_signsal.data: image-folder and tfds sources, values, order, grayscale handling."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from conftest import CIFAR10_CLASSES as CLASSES
from conftest import SHARED_DATA, write_image_tree
from tf_signsal import data


def _collect(ds):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def tree(tmp_path, rng):
    root = tmp_path / "cifar10"
    expected = write_image_tree(str(root), "test", (32, 32), rng, gray={(3, 1)})
    return root, expected


def test_folder_values_labels_order_and_gray_to_rgb(tree):
    root, expected = tree
    ds = data.load("cifar10", "test", data_dir=root, batch_size=4)
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int64
    images, labels = _collect(ds)
    want_labels = np.array([label for label, _ in expected.values()])
    want_images = np.stack([rgb for _, rgb in expected.values()]).astype(np.float32) / 255.0
    np.testing.assert_array_equal(labels, want_labels)
    # PNG is lossless and the size already matches: exactly the stored pixels / 255, no
    # resampling; the grayscale file comes back with three equal channels.
    np.testing.assert_array_equal(images, want_images)
    assert images.shape == (20, 32, 32, 3)
    # Deterministic: a second pass gives the same order.
    np.testing.assert_array_equal(_collect(ds)[1], labels)


def test_parent_folder_and_dataset_folder_are_equivalent(tree):
    root, _ = tree
    a = _collect(data.load("cifar10", "test", data_dir=root))
    b = _collect(data.load("cifar10", "test", data_dir=root.parent))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_drop_grayscale_drops_exactly_single_channel_files(tree):
    root, expected = tree
    images, labels = _collect(data.load("cifar10", "test", data_dir=root, drop_grayscale=True))
    kept = [(label, rgb) for path, (label, rgb) in expected.items()
            if not path.endswith(os.path.join("cat", "0001.png"))]
    assert len(kept) == 19
    np.testing.assert_array_equal(labels, [label for label, _ in kept])
    np.testing.assert_array_equal(images, np.stack([rgb for _, rgb in kept]) / np.float32(255))


def test_drop_grayscale_reads_jpeg_headers(tmp_path, rng):
    expected = write_image_tree(str(tmp_path), "train", (224, 224), rng, per_class=1,
                           gray={(0, 0), (9, 0)}, fmt="JPEG")
    images, labels = _collect(
        data.load("imagenette", "train", data_dir=tmp_path, drop_grayscale=True, batch_size=3)
    )
    np.testing.assert_array_equal(labels, np.arange(1, 9))
    # JPEG sizes already match 224x224: values equal TF's own decode / 255, no resampling.
    paths = list(expected)[1:9]
    decoded = np.stack([tf.io.decode_jpeg(tf.io.read_file(p), channels=3).numpy() for p in paths])
    np.testing.assert_array_equal(images, decoded.astype(np.float32) / 255.0)


def test_resize_and_shuffle(tree):
    root, expected = tree
    ds = data.load("cifar10", "test", data_dir=root, image_size=(16, 8), shuffle=True, seed=3)
    first, second = _collect(ds), _collect(ds)
    assert first[0].shape == (20, 16, 8, 3)
    assert first[0].min() >= 0.0 and first[0].max() <= 1.0
    # Every epoch sees every image once, in a new order; the same seed gives the same orders.
    want = sorted(label for label, _ in expected.values())
    assert sorted(first[1]) == want and sorted(second[1]) == want
    assert not np.array_equal(first[1], second[1])
    again = _collect(data.load("cifar10", "test", data_dir=root, image_size=(16, 8),
                               shuffle=True, seed=3))
    np.testing.assert_array_equal(again[1], first[1])
    # Resizing is antialiased bilinear of the decoded pixels.
    path, (label, rgb) = next(iter(expected.items()))
    unshuffled = _collect(data.load("cifar10", "test", data_dir=root, image_size=(16, 8)))
    want_image = tf.image.resize(rgb.astype(np.float32) / 255.0, (16, 8), antialias=True)
    np.testing.assert_allclose(unshuffled[0][0], want_image.numpy(), atol=1e-6)


def test_imagenette_val_and_test_are_the_same_split(tmp_path, rng):
    write_image_tree(str(tmp_path / "imagenette"), "val", (20, 24), rng, per_class=1)
    val = _collect(data.load("imagenette", "val", data_dir=tmp_path))
    test = _collect(data.load("imagenette", "test", data_dir=tmp_path / "imagenette"))
    np.testing.assert_array_equal(val[0], test[0])
    assert val[0].shape == (10, 224, 224, 3)  # default Imagenette size


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "mnist", "split": "train"}, "name"),
        ({"name": "cifar10", "split": "val"}, "split"),
        ({"name": "cifar10", "split": "test", "batch_size": 0}, "batch_size"),
        ({"name": "cifar10", "split": "test", "image_size": (32,)}, "image_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)


def test_missing_folder_names_both_candidates(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        data.load("cifar10", "train", data_dir=tmp_path)


def test_class_names():
    assert data.class_names("cifar10") == tuple(CLASSES)
    names = data.class_names("imagenette")
    assert len(names) == 10 and names[0] == "tench" and names[-1] == "parachute"
    with pytest.raises(ValueError, match="name"):
        data.class_names("imagenet")


@pytest.mark.parametrize("name, size", [("cifar10", 32), ("imagenette", 224)])
def test_tfds_path_with_mock_data(name, size):
    with tfds.testing.mock_data(num_examples=5):
        ds = data.load(name, "test", batch_size=2)
        images, labels = _collect(ds)
        assert images.shape == (5, size, size, 3) and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 10
        # Fixed order: the same labels on a second pass.
        np.testing.assert_array_equal(_collect(ds)[1], labels)


def test_tfds_failed_download_says_how_to_use_a_local_copy(monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(RuntimeError, match="data_dir") as info:
        data.load("cifar10", "train")
    message = str(info.value)
    assert "\n" not in message and "no network" in message
    assert isinstance(info.value.__cause__, ConnectionError)


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data is absent")
@pytest.mark.parametrize("name, split, size", [
    ("cifar10", "train", 32), ("cifar10", "test", 32),
    ("imagenette", "train", 224), ("imagenette", "val", 224),
])
def test_real_data_first_batches(name, split, size):
    ds = data.load(name, split, data_dir=SHARED_DATA, batch_size=16)
    images, labels = _collect(ds.take(2))
    assert images.shape == (32, size, size, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.5
    assert (labels == 0).all()  # sorted order: the first files are class 0's
    folder = "val" if split == "val" else split
    first_class = sorted(os.listdir(os.path.join(SHARED_DATA, name, folder)))[0]
    first_file = sorted(os.listdir(os.path.join(SHARED_DATA, name, folder, first_class)))[0]
    raw = tf.io.decode_jpeg(
        tf.io.read_file(os.path.join(SHARED_DATA, name, folder, first_class, first_file)),
        channels=3,
    ).numpy()
    # The files are stored at the network's size: exactly the decoded pixels / 255.
    np.testing.assert_array_equal(images[0], raw.astype(np.float32) / 255.0)


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data is absent")
def test_real_imagenette_val_drops_exactly_the_non_rgb_files():
    root = os.path.join(SHARED_DATA, "imagenette", "val")
    paths = [os.path.join(root, c, f) for c in sorted(os.listdir(root))
             for f in sorted(os.listdir(os.path.join(root, c)))]
    non_rgb = sum(Image.open(path).mode != "RGB" for path in paths)  # PIL reads the header
    assert non_rgb > 0
    kept = data.load("imagenette", "val", data_dir=SHARED_DATA, drop_grayscale=True,
                     batch_size=64, image_size=(8, 8))
    assert sum(int(labels.shape[0]) for _, labels in kept) == len(paths) - non_rgb
