"""The paper's two datasets, CIFAR-10 and Imagenette, as `tf.data` pipelines.

Images come out as float32 in [0, 1], channels last, with no mean/std normalisation (the paper
feeds `ToTensor` output to every network); labels are int64 class indices.

Two sources give the same kind of dataset:

- a local image-folder tree `<data_dir>/<split>/<class>/<image>` (what `../shared/data` holds),
  read with `tf.io` / `tf.image` (the decode of `keras.utils.image_dataset_from_directory`); and
- `tensorflow-datasets` (`cifar10`, `imagenette/full-size-v2`) with its normal download and
  cache, when `data_dir` is None.

Example:

```python
from tf_signsal import data

test = data.load("imagenette", "test", data_dir="../shared/data", drop_grayscale=True)
images, labels = next(iter(test))  # (128, 224, 224, 3) float32, (128,) int64
data.class_names("imagenette")[int(labels[0])]  # 'tench'
```

For the benchmark of a chosen subset, `split_labels` gives the label of every image of a
split and `split_subset` reads chosen images of it as a `tf.data` pipeline.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.data.files import IMAGE_EXTENSIONS, decode_image, files_dataset
from tf_signsal.vocabulary import DATASETS

NAMES = DATASETS

_CLASS_NAMES = {
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    # Readable names in sorted-wnid order (n01440764 ... n03888257), the label order.
    "imagenette": (
        "tench", "English springer", "cassette player", "chain saw", "church",
        "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
    ),
}
_IMAGE_SIZE = {"cifar10": (32, 32), "imagenette": (224, 224)}
# Folder (image-folder tree) and tfds split for each accepted split name.
_SPLITS = {
    "cifar10": {"train": ("train", "train"), "test": ("test", "test")},
    "imagenette": {
        "train": ("train", "train"),
        "test": ("val", "validation"),
        "val": ("val", "validation"),
    },
}
_TFDS_NAMES = {"cifar10": "cifar10", "imagenette": "imagenette/full-size-v2"}
# Records kept for shuffling: all of either split of both datasets.
_MAX_SHUFFLE_BUFFER = 60_000
# Channels of an image file as read: keras's colour mode for each count tf.image decodes to.


def class_names(name: str) -> tuple[str, ...]:
    """Return the readable class names of a dataset, in label order.

    Args:
        name: "cifar10" or "imagenette".

    Returns:
        A tuple of ten strings; entry `i` names label `i`. Imagenette's labels follow the
        sorted wnids (n01440764 = tench first).

    Example:
        >>> class_names("cifar10")[:2]
        ('airplane', 'automobile')
    """
    _checks.check_choices("name", name, NAMES)
    return _CLASS_NAMES[name]


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    image_size: tuple[int, int] | None = None,
    shuffle: bool = False,
    drop_grayscale: bool = False,
    seed: int = 42,
) -> tf.data.Dataset:
    """Load a split of CIFAR-10 or Imagenette as batches of ([0, 1] images, int64 labels).

    Args:
        name: "cifar10" or "imagenette".
        split: "train" or "test". For Imagenette, "test" and "val" both mean the validation
            split (the paper's test set).
        data_dir: a local image-folder tree, either the dataset folder itself
            (`../shared/data/imagenette`, holding `train/` and `val/`) or its parent
            (`../shared/data`, holding `imagenette/`). Class folders are read in sorted order,
            which is the label order. None downloads (once) and reads the tensorflow-datasets
            copy (`cifar10`, `imagenette/full-size-v2`).
        batch_size: images per batch; the paper trains with 128.
        image_size: (height, width) to resize to (bilinear, antialiased when shrinking).
            Defaults to 32x32 for CIFAR-10 and 224x224 for Imagenette, the paper's sizes.
            Images already at that size are not resampled, so their values are exactly the
            decoded 8-bit pixels / 255.
        shuffle: reshuffle the whole split every epoch (for training). False keeps a fixed,
            deterministic order: sorted class folders, then sorted file names.
        drop_grayscale: drop the image files that do not have three channels (single-channel
            grayscale, CMYK), as the paper's authors did for Imagenette. Otherwise every image
            is converted to 3 channels.
        seed: seed of the shuffle.

    Returns:
        A prefetched `tf.data.Dataset` of (images float32 (B, H, W, 3) in [0, 1],
        labels int64 (B,)); the last batch may be smaller.

    Raises:
        RuntimeError: when tensorflow-datasets cannot download the data; the message says how to
            point `data_dir` at a local copy.

    Example:
        >>> train = load("cifar10", "train", data_dir="../shared/data", shuffle=True)
    """
    folder, tfds_split = _split(name, split)
    batch_size = _checks.positive_int("batch_size", batch_size)
    size = _IMAGE_SIZE[name] if image_size is None else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"`image_size` must be (height, width) with positive integers, received {image_size!r}"
        )
    if data_dir is not None:
        paths, labels = _paths_from_folder(name, folder, os.fspath(data_dir))
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
    else:
        ds = _encoded_from_tfds(name, tfds_split)
    if shuffle:
        # Shuffle file paths (or encoded records), not decoded images, so the buffer can hold
        # the whole split: a full reshuffle every epoch, like the paper's shuffled DataLoader.
        known = int(ds.cardinality())
        buffer = min(known, _MAX_SHUFFLE_BUFFER) if known > 0 else _MAX_SHUFFLE_BUFFER
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if data_dir is not None:
        ds = ds.map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    if drop_grayscale:
        ds = ds.filter(lambda encoded, label: _num_channels(encoded) == 3)
    ds = ds.map(
        lambda encoded, label: (decode_image(encoded, size), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _split(name: str, split: str) -> tuple[str, str]:
    """The (image-folder tree, tfds) split of `split` of the dataset `name`, both checked."""
    _checks.check_choices("name", name, NAMES)
    if split not in _SPLITS[name]:
        raise ValueError(
            f"`split` must be one of {list(_SPLITS[name])} for {name}, received {split!r}"
        )
    return _SPLITS[name][split]


def split_labels(
    name: str, split: str = "test", data_dir: str | os.PathLike | None = None
) -> np.ndarray:
    """The label of every image of a split, in the order `load` reads them.

    Args:
        name: "cifar10" or "imagenette".
        split: "train" or "test" (see `load`).
        data_dir: a local image-folder tree (see `load`); None reads tensorflow-datasets.

    Returns:
        int64 (N,) class indices.

    Raises:
        ValueError: a bad `name` or `split`, or `data_dir` is not the dataset's folder.
        RuntimeError: tensorflow-datasets cannot download the data.

    Example:
        >>> labels = split_labels("cifar10", "test", data_dir="../shared/data")  # (10000,)
    """
    folder, tfds_split = _split(name, split)
    if data_dir is not None:
        return _paths_from_folder(name, folder, os.fspath(data_dir))[1]
    encoded = _encoded_from_tfds(name, tfds_split)
    return np.fromiter((int(y) for _, y in encoded.as_numpy_iterator()), np.int64)


def split_subset(
    name: str,
    split: str,
    chosen: Any,
    labels: Any,
    image_shape: tuple[int | None, int | None, int],
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
) -> tf.data.Dataset:
    """The images `chosen` of a split (indices into `split_labels`' order), as batches.

    Each image is decoded to the channels of `image_shape`, scaled to [0, 1] and resized
    as `load` does; the dataset's cardinality (batches) is known.

    Args:
        name: "cifar10" or "imagenette".
        split: "train" or "test" (see `load`).
        chosen: int (M,) sorted indices of the images to read.
        labels: None, or int (M,) the label to give each chosen image.
        image_shape: (height, width, channels); a None height or width takes the
            dataset's size (32x32 for CIFAR-10, 224x224 for Imagenette).
        data_dir: a local image-folder tree (see `load`); None reads tensorflow-datasets.
        batch_size: images per batch; the last batch may be smaller.

    Returns:
        A `tf.data.Dataset` of (images float32 (B, H, W, ch), labels int64 (B,)) batches,
        or of image batches alone when `labels` is None.

    Example:
        >>> chosen = data.balanced_subset(split_labels("cifar10"), 100)
        >>> test = split_subset("cifar10", "test", chosen, None, (32, 32, 3))
    """
    folder, tfds_split = _split(name, split)
    height, width, channels = _checks.image_shape(image_shape)
    size = (height, width) if height is not None and width is not None else _IMAGE_SIZE[name]
    chosen = np.asarray(chosen, np.int64).reshape(-1)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if data_dir is not None:
        paths = _paths_from_folder(name, folder, os.fspath(data_dir))[0]
        return files_dataset([paths[i] for i in chosen], labels, (*size, channels), batch_size)
    encoded = _encoded_from_tfds(name, tfds_split)
    return _chosen_records(encoded, chosen, labels, size, channels, batch_size)


def _paths_from_folder(name: str, folder: str, data_dir: str) -> tuple[list[str], np.ndarray]:
    """File paths and int64 labels in sorted class/file order, from an image-folder tree."""
    root = data_dir
    if not tf.io.gfile.isdir(os.path.join(root, folder)):
        root = os.path.join(data_dir, name)
    split_dir = os.path.join(root, folder)
    if not tf.io.gfile.isdir(split_dir):
        raise ValueError(
            f"`data_dir` must be the {name} image folder (holding `{folder}/<class>/<image>`) "
            f"or its parent; found neither {os.path.join(data_dir, folder)} nor {split_dir}"
        )
    classes = sorted(
        c for c in tf.io.gfile.listdir(split_dir) if tf.io.gfile.isdir(os.path.join(split_dir, c))
    )
    classes = [c.rstrip("/") for c in classes]
    if len(classes) != len(_CLASS_NAMES[name]):
        raise ValueError(
            f"`data_dir`: {split_dir} must hold {len(_CLASS_NAMES[name])} class folders for "
            f"{name}, found {len(classes)}: {classes[:12]}"
        )
    paths, labels = [], []
    for label, class_dir in enumerate(classes):
        files = sorted(
            f
            for f in tf.io.gfile.listdir(os.path.join(split_dir, class_dir))
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        paths += [os.path.join(split_dir, class_dir, f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"`data_dir`: no image files under {split_dir}/<class>/")
    return paths, np.array(labels, np.int64)


def _encoded_from_tfds(name: str, split: str) -> tf.data.Dataset:
    """(encoded image bytes, int64 label) from tensorflow-datasets, downloading if needed."""
    import tensorflow_datasets as tfds  # imported here: heavy, and only this path needs it

    builder = tfds.builder(_TFDS_NAMES[name])
    try:
        builder.download_and_prepare()
    except Exception as error:  # any download/preparation failure gets the same advice
        raise RuntimeError(
            f"tensorflow-datasets could not download/prepare {_TFDS_NAMES[name]} "
            f"({type(error).__name__}: {error}); pass data_dir= a local image-folder copy "
            f"laid out as <data_dir>/{name}/<split>/<class>/<image>, "
            f"e.g. data.load({name!r}, ..., data_dir='../shared/data')"
        ) from error
    ds = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    return ds.map(lambda encoded, label: (encoded, tf.cast(label, tf.int64)))


def _num_channels(encoded: tf.Tensor) -> tf.Tensor:
    """Channel count stored in an encoded image (the JPEG header alone when it is a JPEG)."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.extract_jpeg_shape(encoded)[2],
        lambda: tf.shape(tf.io.decode_image(encoded, channels=0, expand_animations=False))[2],
    )


def _chosen_records(
    encoded: tf.data.Dataset,
    chosen: np.ndarray,
    labels: np.ndarray | None,
    size: tuple[int, int],
    channels: int,
    batch_size: int,
) -> tf.data.Dataset:
    """The chosen (encoded, label) records decoded and batched, of known cardinality."""
    keep = np.zeros(int(chosen.max()) + 1 if len(chosen) else 0, bool)
    keep[chosen] = True
    keep_tensor = tf.constant(keep)
    position = np.full(len(keep), -1, np.int64)
    position[chosen] = np.arange(len(chosen))
    kept = encoded.take(len(keep)).enumerate().filter(lambda i, _: keep_tensor[i])
    if labels is None:
        dataset = kept.map(lambda i, record: decode_image(record[0], size, channels))
    else:
        label_tensor = tf.constant(np.asarray(labels, np.int64))
        position_tensor = tf.constant(position)
        dataset = kept.map(
            lambda i, record: (
                decode_image(record[0], size, channels), label_tensor[position_tensor[i]]
            )
        )
    batches = math.ceil(len(chosen) / batch_size)
    return dataset.batch(batch_size).apply(
        tf.data.experimental.assert_cardinality(batches)
    ).prefetch(tf.data.AUTOTUNE)
