"""The paper's two datasets, CIFAR-10 and Imagenette, as `tf.data` pipelines; image files.

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

Any other images come from files and folders: `image_files` finds them, `read_images` reads
them into an array at a model's input size, and `image_folder_dataset` reads a folder
(`<folder>/<class>/<image>`, or images directly in it) as a `tf.data` pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.vocabulary import DATASETS

NAMES = DATASETS

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""The image file extensions read (those `keras.utils.image_dataset_from_directory` reads)."""

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
_COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


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
    _checks.check_choices("name", name, NAMES)
    if split not in _SPLITS[name]:
        raise ValueError(
            f"`split` must be one of {list(_SPLITS[name])} for {name}, received {split!r}"
        )
    batch_size = _checks.positive_int("batch_size", batch_size)
    size = _IMAGE_SIZE[name] if image_size is None else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"`image_size` must be (height, width) with positive integers, received {image_size!r}"
        )
    folder, tfds_split = _SPLITS[name][split]
    if data_dir is not None:
        ds = _paths_from_folder(name, folder, os.fspath(data_dir))
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
        lambda encoded, label: (_decode(encoded, size), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _paths_from_folder(name: str, folder: str, data_dir: str) -> tf.data.Dataset:
    """(file path, int64 label) in sorted class/file order, from an image-folder tree."""
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
    return tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))


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


def _decode(encoded: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decode to 3 channels, resize only if needed, and scale to float32 [0, 1]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32) / 255.0
    image = tf.cond(
        tf.reduce_all(tf.shape(image)[:2] == size),
        lambda: image,
        # Antialiasing matters when shrinking full-size photos (PIL's resize, which the paper's
        # authors used, does it); clipping removes float rounding just outside [0, 1].
        lambda: tf.clip_by_value(
            tf.image.resize(image, size, method="bilinear", antialias=True), 0.0, 1.0
        ),
    )
    image.set_shape((*size, 3))
    return image


# ----------------------------------------------------------------------------- image files


def image_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The image files among `paths`: files as named, folders searched recursively.

    Args:
        paths: image files and folders, or one of them. A folder gives every file below it
            whose extension (any case) is in `IMAGE_EXTENSIONS`, sorted by path; a file
            named directly is taken whatever its extension.

    Returns:
        A list of file paths, in the order of `paths`.

    Raises:
        FileNotFoundError: a path is neither a file nor a folder.
        ValueError: `paths` is empty, or a folder holds no image file.

    Example:
        >>> files = image_files(["cat.png", "photos/"])  # cat.png, then photos/ sorted
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"image file or folder not found: {path}")
    if not files:
        raise ValueError("`paths` must name at least one image file or folder, received none")
    return files


def read_images(
    files: Sequence[str | os.PathLike], image_shape: tuple[int | None, int | None, int]
) -> np.ndarray:
    """Read image files as one float32 batch in [0, 1], at a model's input shape.

    Each file is decoded to `channels` channels (grey made RGB, RGB made grey, ...),
    scaled to [0, 1] (8- and 16-bit files alike) and, when its size differs from
    (height, width), resized (bilinear, antialiased, clipped to [0, 1]).

    Args:
        files: image file paths (PNG, JPEG, GIF, BMP), e.g. from `image_files`.
        image_shape: (height, width, channels), as `_checks.model_image_shape(model)`
            gives it; channels is 1, 3 or 4. Height and width may be None (a model that
            takes any size): the images are then kept at their size, which must be the
            same for all.

    Returns:
        float32 array (N, height, width, channels).

    Raises:
        OSError: a file cannot be read.
        ValueError: a file is not an image, the images differ in size where `image_shape`
            does not fix it, `files` is empty, or `image_shape` is not a shape.

    Example:
        >>> images = read_images(image_files("photos/"), (224, 224, 3))
    """
    height, width, channels = _checks.image_shape(image_shape)
    _color_mode(channels)
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    images = [_read_image(os.fspath(path), height, width, channels) for path in files]
    if not images:
        raise ValueError("`files` must name at least one image file, received none")
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise ValueError(
            f"the images differ in size ({', '.join(f'{h}x{w}' for h, w in sizes[:4])}"
            f"{', ...' if len(sizes) > 4 else ''}) and `image_shape` {image_shape} fixes "
            "no size to resize them to: give one, or resize the files first"
        )
    return np.stack(images)


def image_folder_dataset(
    folder: str | os.PathLike,
    image_shape: tuple[int, int, int],
    batch_size: int = 128,
) -> tf.data.Dataset:
    """A folder of images as batches of [0, 1] images, with class labels when it has classes.

    A folder holding subfolders is read as `<folder>/<class>/<image>`: labels are int32
    class indices in sorted subfolder order. A folder with no subfolder gives images only.
    Files are read in a fixed order (sorted classes, then sorted file names) with
    `keras.utils.image_dataset_from_directory`, resized to (height, width) (bilinear) and
    divided by 255.

    Args:
        folder: the image folder.
        image_shape: (height, width, channels) of the model's input; height and width
            must be fixed; channels is 1, 3 or 4.
        batch_size: images per batch; the last batch may be smaller.

    Returns:
        A `tf.data.Dataset` of (images float32 (B, H, W, ch), labels int32 (B,)) batches,
        or of image batches alone.

    Raises:
        FileNotFoundError: `folder` is not a folder.
        ValueError: the folder holds no image, or `image_shape` fixes no size.

    Example:
        >>> test = image_folder_dataset("photos/test", (224, 224, 3), batch_size=64)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"`folder` must be a folder of images, {folder} is not a folder")
    height, width, channels = _checks.image_shape(image_shape)
    if height is None or width is None:
        raise ValueError(
            "`image_shape` must fix the (height, width) the images are resized to, "
            f"received {image_shape}"
        )
    batch_size = _checks.positive_int("batch_size", batch_size)
    has_classes = any(entry.is_dir() for entry in os.scandir(folder))
    try:
        dataset = keras.utils.image_dataset_from_directory(
            folder, labels="inferred" if has_classes else None, image_size=(height, width),
            batch_size=batch_size, shuffle=False, verbose=False,
            color_mode=_color_mode(channels),
        )
    except ValueError as error:  # e.g. no images
        raise ValueError(f"cannot read images in {folder}: {_one_line(error)}") from error
    return dataset.map(_scale_pixels)


def _color_mode(channels: int) -> str:
    """keras's colour mode of images with `channels` channels (1, 3 or 4)."""
    if channels not in _COLOR_MODES:
        raise ValueError(
            f"images are read with 1, 3 or 4 channels, but `image_shape` asks for {channels}"
        )
    return _COLOR_MODES[channels]


def _read_image(path: str, height: int | None, width: int | None, channels: int) -> np.ndarray:
    """One file as float32 (H, W, channels) in [0, 1], resized to (height, width) if given."""
    try:
        encoded = tf.io.read_file(path)
    except tf.errors.OpError as error:
        raise OSError(f"cannot read image {path}: {_one_line(error)}") from error
    try:
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {_one_line(error)}") from error
    image = tf.image.convert_image_dtype(image, tf.float32)  # [0, 1] for 8 and 16 bit
    size = (height or image.shape[0], width or image.shape[1])
    if image.shape[:2] != size:
        image = tf.clip_by_value(tf.image.resize(image, size, antialias=True), 0.0, 1.0)
    return image.numpy()


def _scale_pixels(images: tf.Tensor, *labels: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
    """8-bit pixel values to [0, 1], labels (if any) untouched."""
    return (images / 255.0, *labels) if labels else images / 255.0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
