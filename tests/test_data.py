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
from tf_signsal.cli.evaluate import evaluation_data
from tf_signsal.data import files


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


# ----------------------------------------------------------------------------- image files


def _write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def test_one_list_of_image_extensions():
    assert data.IMAGE_EXTENSIONS == (".bmp", ".gif", ".jpeg", ".jpg", ".png")
    assert not hasattr(data, "_IMAGE_EXTENSIONS")


def test_image_files_folders_sorted_recursive_and_files_as_named(tmp_path, rng):
    expected = write_image_tree(str(tmp_path / "tree"), "test", (4, 4), rng, per_class=1)
    upper = str(tmp_path / "tree" / "extra" / "deep" / "Z.PNG")  # any case, any depth
    _write_png(upper, rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    (tmp_path / "tree" / "notes.txt").write_text("not an image")
    named = str(tmp_path / "named.image")  # a file named directly: taken as it is
    _write_png(named, rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    files = data.image_files([named, tmp_path / "tree"])
    assert files == [named, *sorted([*expected, upper])]
    assert data.image_files(named) == [named]  # one path alone


def test_image_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file or folder not found: .*nowhere"):
        data.image_files([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no image files \(.bmp, .gif, .jpeg, .jpg, .png\) in"):
        data.image_files([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="`paths` must name at least one"):
        data.image_files([])


def test_read_images_values_resize_and_channels(tmp_path, rng):
    arrays = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    files = [str(tmp_path / f"{i}.png") for i in range(3)]
    for path, array in zip(files, arrays):
        _write_png(path, array)
    images = data.read_images(files, (8, 8, 3))
    assert images.dtype == np.float32 and images.shape == (3, 8, 8, 3)
    # Lossless PNG: the stored pixels / 255 (convert_image_dtype's float rounding aside).
    np.testing.assert_allclose(images, arrays.astype(np.float32) / 255.0, atol=1e-7)
    # Any size kept as it is when the model leaves it free.
    np.testing.assert_array_equal(data.read_images(files, (None, None, 3)), images)
    # Another size is resized (antialiased bilinear), grey to RGB.
    grey = str(tmp_path / "grey.png")
    _write_png(grey, np.full((12, 10), 200, np.uint8))
    resized = data.read_images([grey], [8, 8, 3])
    np.testing.assert_allclose(resized, np.full((1, 8, 8, 3), 200 / 255), atol=1e-6)
    # RGB to one channel, and 16-bit files scaled to [0, 1] too.
    deep = str(tmp_path / "deep.png")
    tf.io.write_file(deep, tf.io.encode_png(np.full((8, 8, 1), 65535, np.uint16)))
    np.testing.assert_allclose(data.read_images([deep, files[0]], (8, 8, 1))[0], 1.0)


def test_read_images_errors(tmp_path, rng):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=f"cannot read image {broken}: "):
        data.read_images([str(broken)], (8, 8, 3))
    with pytest.raises(OSError, match="cannot read image .*missing.png"):
        data.read_images([str(tmp_path / "missing.png")], (8, 8, 3))
    small, large = str(tmp_path / "small.png"), str(tmp_path / "large.png")
    _write_png(small, rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    _write_png(large, rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"the images differ in size \(4x4, 6x5\)"):
        data.read_images([small, large], (None, None, 3))
    with pytest.raises(ValueError, match="`files` must name at least one"):
        data.read_images([], (8, 8, 3))
    with pytest.raises(ValueError, match="`image_shape` must be"):
        data.read_images([small], (8, 8))
    with pytest.raises(ValueError, match="1, 3 or 4 channels.* asks for 2"):
        data.read_images([small], (8, 8, 2))


def test_a_folder_of_classes_read_by_folder_files_and_files_dataset(tmp_path, rng):
    expected = write_image_tree(str(tmp_path), "test", (8, 8), rng, per_class=2, gray={(3, 1)})
    listing = data.folder_files(tmp_path / "test")
    images, labels = _collect(data.files_dataset(listing.paths, listing.groups, (8, 8, 3), 6))
    np.testing.assert_array_equal(labels, [label for label, _ in expected.values()])
    want = np.stack([rgb for _, rgb in expected.values()]).astype(np.float32) / 255.0
    np.testing.assert_allclose(images, want, atol=1e-7)


def test_a_folder_of_images_without_classes_gives_images(tmp_path, rng):
    arrays = rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    for i, array in enumerate(arrays):
        _write_png(str(tmp_path / f"{i}.png"), array)
    listing = data.folder_files(tmp_path)
    assert listing.classes == () and list(listing.groups) == [0, 0, 0]
    batches = list(data.files_dataset(listing.paths, None, (6, 6, 1), batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 6, 6, 1), (1, 6, 6, 1)]
    assert float(tf.reduce_max(batches[0])) <= 1.0


def test_folder_files_and_files_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="`folder` must be a folder of images"):
        data.folder_files(tmp_path / "absent")
    with pytest.raises(ValueError, match=f"no image files .* in {tmp_path}/"):
        data.folder_files(tmp_path)
    with pytest.raises(ValueError, match="`image_shape` must fix the"):
        data.files_dataset(["a.png"], None, (None, None, 3))
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        data.files_dataset(["a.png"], None, (8, 8, 3), batch_size=0)
    with pytest.raises(TypeError, match="`batch_size` must be an integer"):
        data.files_dataset(["a.png"], None, (8, 8, 3), batch_size=2.0)
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        data.files_dataset(["a.png"], None, (8, 8, 2))
    with pytest.raises(ValueError, match="`labels` must hold one label per path"):
        data.files_dataset(["a.png"], [0, 1], (8, 8, 3))


def test_the_old_module_names_still_import():
    from tf_signsal import datasets
    from tf_signsal.data import synthetic

    assert datasets.synthetic_signs is synthetic.synthetic_signs is data.synthetic_signs
    assert data.load is data.paper.load and data.read_images is files.read_images
    assert not hasattr(data, "image_folder_dataset")


# ----------------------------------------------------------------------------- limits


def _png_header(height, width):
    """A PNG that declares height x width pixels (and holds none)."""
    import struct
    import zlib

    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_limits_are_documented_constants():
    assert data.MAX_IMAGE_BYTES == 50 * 2**20 and data.MAX_IMAGE_PIXELS == 40_000_000


def test_pixels_are_counted_from_the_header_before_decoding(tmp_path):
    huge = tmp_path / "huge.png"  # 8000 x 8000 declared: 768 MB as float32 RGB
    huge.write_bytes(_png_header(8000, 8000))
    assert data.image_file_problem(huge) == (
        "8000x8000 pixels, more than MAX_IMAGE_PIXELS (40000000)"
    )
    with pytest.raises(ValueError, match=f"cannot read image {huge}: 8000x8000 pixels"):
        data.read_images([str(huge)], (8, 8, 3))
    with pytest.warns(data.SkippedImageWarning, match=f"skipped {huge}: 8000x8000"):
        with pytest.raises(ValueError, match="all 1 were passed over"):
            data.image_files([huge])


def test_special_files_are_never_opened(tmp_path, rng):
    fifo = tmp_path / "folder" / "pipe.jpg"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    good = str(tmp_path / "folder" / "good.png")
    _write_png(good, rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    assert data.image_file_problem(fifo) == "not a regular file (a FIFO)"
    assert data.image_file_problem("/dev/zero") == "not a regular file (a character device)"
    with pytest.warns(data.SkippedImageWarning) as caught:
        assert data.image_files([tmp_path / "folder", "/dev/zero"]) == [good]
    assert [str(w.message) for w in caught] == [
        f"skipped {fifo}: not a regular file (a FIFO)",
        "skipped /dev/zero: not a regular file (a character device)",
    ]
    with pytest.raises(ValueError, match="not a regular file"):
        data.read_images([str(fifo)], (4, 4, 3))


def test_size_cap(tmp_path, rng, monkeypatch):
    path = str(tmp_path / "a.png")
    _write_png(path, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    size = os.path.getsize(path)
    monkeypatch.setattr(files, "MAX_IMAGE_BYTES", size - 1)
    assert data.image_file_problem(path) == f"{size} bytes, more than MAX_IMAGE_BYTES ({size - 1})"
    with pytest.raises(ValueError, match="bytes, more than MAX_IMAGE_BYTES"):
        data.read_images([path], (16, 16, 3))
    monkeypatch.setattr(files, "MAX_IMAGE_BYTES", size)
    assert data.image_file_problem(path) is None and data.read_images([path], (16, 16, 3)).size


# ----------------------------------------------------------------------------- evaluation data


def test_balanced_subset():
    groups = np.array([0] * 10 + [1] * 3 + [2] * 7)
    chosen = data.balanced_subset(groups, 9, seed=0)
    assert list(np.bincount(groups[chosen])) == [3, 3, 3]
    assert list(chosen) == sorted(chosen) and len(set(chosen)) == 9
    np.testing.assert_array_equal(chosen, data.balanced_subset(groups, 9, seed=0))
    assert not np.array_equal(chosen, data.balanced_subset(groups, 9, seed=1))
    # A small class gives all it has, the rest share what is left.
    assert list(np.bincount(groups[data.balanced_subset(groups, 15, seed=0)])) == [6, 3, 6]
    # A remainder goes one each to classes drawn with the seed.
    counts = np.bincount(groups[data.balanced_subset(groups, 8, seed=0)])
    assert sorted(counts) == [2, 3, 3]
    np.testing.assert_array_equal(data.balanced_subset(groups, 50), np.arange(20))
    with pytest.raises(ValueError, match="`limit` must be a positive integer"):
        data.balanced_subset(groups, 0)


def test_class_names_files(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text(" cat \nship\n\n")
    assert data.read_class_names(path) == ("cat", "ship")
    with pytest.raises(ValueError, match="holds 2 class names, but the model has 10"):
        data.read_class_names(path, num_classes=10)
    path.write_text("cat\n\nship\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        data.read_class_names(path)
    path.write_text("cat\ncat\n")
    with pytest.raises(ValueError, match=r"repeats \['cat'\]"):
        data.read_class_names(path)
    with pytest.raises(FileNotFoundError, match="class names file not found"):
        data.read_class_names(tmp_path / "absent.txt")
    np.testing.assert_array_equal(
        data.match_class_names(["cat", "ship"], CLASSES), [3, 8]
    )
    with pytest.raises(ValueError, match=r"class folders \['cats'\] are not among"):
        data.match_class_names(["cats", "ship"], CLASSES)


def _subset_tree(tmp_path, rng):
    """A tree with only cat/ and ship/ (of the ten CIFAR-10 classes)."""
    expected = write_image_tree(str(tmp_path / "all"), "test", (8, 8), rng, per_class=3)
    for path in expected:
        if os.path.basename(os.path.dirname(path)) not in ("cat", "ship"):
            os.remove(path)
            if not os.listdir(os.path.dirname(path)):
                os.rmdir(os.path.dirname(path))
    return tmp_path / "all" / "test", {p: v for p, v in expected.items() if os.path.exists(p)}


def test_folder_files_and_files_dataset(tmp_path, rng):
    folder, expected = _subset_tree(tmp_path, rng)
    listing = data.folder_files(folder)
    assert listing.paths == list(expected) and listing.classes == ("cat", "ship")
    np.testing.assert_array_equal(listing.groups, [0, 0, 0, 1, 1, 1])
    dataset = data.files_dataset(listing.paths, listing.groups, (8, 8, 3), batch_size=4)
    assert int(dataset.cardinality()) == 2
    images, labels = _collect(dataset)
    want = np.stack([rgb for _, rgb in expected.values()]) / np.float32(255)
    np.testing.assert_array_equal(images, want)
    np.testing.assert_array_equal(labels, listing.groups)


def test_evaluation_data_matches_a_subset_of_classes_by_name(tmp_path, rng):
    folder, expected = _subset_tree(tmp_path, rng)
    chosen = evaluation_data(str(folder), (8, 8, 3), 10, limit=4, seed=0,
                                  class_names=CLASSES, batch_size=3)
    assert chosen.labelled and chosen.num_images == 4
    assert chosen.description == (
        f"evaluating 4 images: 2 per class, seeded subset (seed 0) of {folder}"
    )
    assert chosen.record == {
        "source": str(folder), "split": None, "limit": 4, "seed": 0,
        "images_per_class": {"cat": 2, "ship": 2}, "labels": "class folders matched by name",
    }
    images, labels = _collect(chosen.dataset)
    np.testing.assert_array_equal(labels, [3, 3, 8, 8])  # CIFAR-10's cat and ship
    paths = list(expected)
    want = [paths[i] for i in data.balanced_subset([0, 0, 0, 1, 1, 1], 4, seed=0)]
    pixels = np.stack([expected[p][1] for p in want]) / np.float32(255)
    np.testing.assert_array_equal(images, pixels)
    # Without names the two folders cannot be the model's ten classes: no labels, and why.
    unnamed = evaluation_data(str(folder), (8, 8, 3), 10)
    assert not unnamed.labelled and unnamed.num_images == 6
    assert unnamed.record["labels"].startswith("none: 2 class folders for a model of 10")
    assert unnamed.description == f"evaluating 6 images: 3 per class of {folder}"
    assert unnamed.dataset.element_spec.shape.as_list() == [None, 8, 8, 3]
    # As many folders as classes: sorted order, as Keras reads them.
    assert evaluation_data(str(folder), (8, 8, 3), 2).labelled


def test_evaluation_data_of_a_local_dataset(tree):
    root, expected = tree
    chosen = evaluation_data("cifar10", (32, 32, 3), 10, data_dir=root, limit=10, seed=1)
    assert chosen.record["images_per_class"] == dict.fromkeys(CLASSES, 1)
    images, labels = _collect(chosen.dataset)
    np.testing.assert_array_equal(labels, np.arange(10))
    whole = _collect(data.load("cifar10", "test", data_dir=root))
    picked = data.balanced_subset(whole[1], 10, seed=1)
    np.testing.assert_array_equal(images, whole[0][picked])


def test_evaluation_data_from_tfds_mock():
    with tfds.testing.mock_data(num_examples=12):
        chosen = evaluation_data("cifar10", (32, 32, 3), 10, limit=5, batch_size=2)
        images, labels = _collect(chosen.dataset)
        assert images.shape == (5, 32, 32, 3) and int(chosen.dataset.cardinality()) == 3
        assert sum(chosen.record["images_per_class"].values()) == 5
        assert labels.dtype == np.int64


def test_a_dataset_folder_of_splits_is_not_read_as_classes(tmp_path, rng):
    write_image_tree(str(tmp_path / "set"), "train", (8, 8), rng, per_class=1)
    write_image_tree(str(tmp_path / "set"), "Val", (8, 8), rng, per_class=1)
    (tmp_path / "set" / ".cache").mkdir()  # hidden folders aside
    assert data.dataset_splits(tmp_path / "set") == ("Val", "train")
    with pytest.raises(ValueError, match="holds the splits Val, train of a dataset .* not "
                       "class folders: read one split, e.g. .*set/Val"):
        data.folder_files(tmp_path / "set")
    with pytest.raises(ValueError, match="holds the splits Val, train"):
        evaluation_data(str(tmp_path / "set"), (8, 8, 3), 10)
    assert evaluation_data(str(tmp_path / "set"), (8, 8, 3), 10, split="Val").labelled
    # Class folders are not splits, even one named like a split; nor is a folder with
    # another subfolder, or a split folder holding images directly.
    assert data.dataset_splits(tmp_path / "set" / "train") == ()
    (tmp_path / "set" / "train" / "test").mkdir()
    assert data.dataset_splits(tmp_path / "set" / "train") == ()
    (tmp_path / "set" / "extra").mkdir()
    assert data.dataset_splits(tmp_path / "set") == ()
    _write_png(str(tmp_path / "flat" / "test" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    assert data.dataset_splits(tmp_path / "flat") == ()


def test_folder_files_names_a_file_that_is_not_an_image(tmp_path, rng):
    folder, _ = _subset_tree(tmp_path, rng)
    for content in (b"", b"junk", b"\x89PN"):
        (folder / "cat" / "bad.jpg").write_bytes(content)
        with pytest.raises(ValueError, match=f"cannot read image {folder / 'cat' / 'bad.jpg'}:"
                           " not a JPEG, PNG, GIF, BMP, WebP or JPEG XL file"):
            data.folder_files(folder)


def test_the_signatures_are_those_tensorflow_decodes():
    # Each signature passes, and tf.io.decode_image takes it for its format (it fails on
    # the body, not with "Unknown image file format"); anything else it does not know.
    signatures = [*files._DECODED_SIGNATURES, b"RIFF\0\0\0\0WEBP"]
    for signature in signatures:
        header = signature + bytes(40)
        assert files._decoded_format(header)
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            tf.io.decode_image(header)
        assert "Unknown image file format" not in str(error.value), signature
    for header in (b"junk" + bytes(40), b"RIFF\0\0\0\0WAVE" + bytes(40), b"\xff\xd8"):
        assert not files._decoded_format(header)
        with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
            tf.io.decode_image(header)
