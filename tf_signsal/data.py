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

Image files are read with limits, so that a stray file cannot hang or exhaust a run: only
regular files (a FIFO or a device named `*.jpg` is passed over, never opened for reading),
at most `MAX_IMAGE_BYTES` bytes and `MAX_IMAGE_PIXELS` pixels each, the pixels counted from
the file's header before anything is decoded. `image_files` passes over such files with a
`SkippedImageWarning` naming each; `read_images` refuses them.

For the benchmark: `folder_files` lists a class-folder tree (refusing a dataset's folder of
splits, `dataset_splits`, and naming a file that is no image), `match_class_names` matches its
folders to a model's classes by name (`read_class_names` reads one name per line),
`balanced_subset` picks a seeded, class-balanced subset, `files_dataset` reads chosen files
as a `tf.data` pipeline, and `evaluation_data` does all of it for the `evaluate` command.
"""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.vocabulary import DATASETS

NAMES = DATASETS

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""The image file extensions read (those `keras.utils.image_dataset_from_directory` reads)."""

MAX_IMAGE_BYTES = 50 * 2**20
"""The largest image file read, in bytes (50 MiB)."""

MAX_IMAGE_PIXELS = 40_000_000
"""The most pixels (height x width, from the file's header) of an image file read: 40
megapixels, 480 MB as float32 RGB. Larger files are refused before they are decoded."""


SPLIT_NAMES: tuple[str, ...] = ("test", "val", "validation", "valid", "train")
"""Folder names taken for a dataset's splits by `dataset_splits` (the first is the one
suggested to read)."""

# The first bytes by which `tf.io.decode_image` tells the formats it decodes (JPEG, PNG,
# GIF, BMP, JPEG XL as a codestream or in its container; WebP is RIFF....WEBP).
_DECODED_SIGNATURES = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"\xff\x0a",
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",
)


class SkippedImageWarning(UserWarning):
    """An image file passed over by `image_files`: not a regular file, too large, or not an
    image. The message names the file and why."""

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
        lambda encoded, label: (_decode(encoded, size), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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


def _decode(encoded: tf.Tensor, size: tuple[int, int], channels: int = 3) -> tf.Tensor:
    """Decode to `channels` channels, resize only if needed, and scale to float32 [0, 1]."""
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
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
    image.set_shape((*size, channels))
    return image


# ----------------------------------------------------------------------------- image files


def image_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The image files among `paths`: files as named, folders searched recursively.

    Only regular files are taken: a FIFO, a socket or a device (e.g. a pipe named
    `photo.jpg`) is passed over without being opened, and so is a file of more than
    `MAX_IMAGE_BYTES` bytes or, by its header, more than `MAX_IMAGE_PIXELS` pixels. Each
    file passed over gives a `SkippedImageWarning` that names it and says why.

    Args:
        paths: image files and folders, or one of them. A folder gives every file below it
            whose extension (any case) is in `IMAGE_EXTENSIONS`, sorted by path; a file
            named directly is taken whatever its extension.

    Returns:
        A list of file paths, in the order of `paths`.

    Raises:
        FileNotFoundError: a path is neither a file nor a folder.
        ValueError: `paths` is empty, a folder holds no image file, or every file was
            passed over.

    Example:
        >>> files = image_files(["cat.png", "photos/"])  # cat.png, then photos/ sorted
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files, skipped = [], 0
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found = sorted(_walk_images(path))
            if not found:
                raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
        elif os.path.exists(path):
            found = [path]
        else:
            raise FileNotFoundError(f"image file or folder not found: {path}")
        for file in found:
            problem = image_file_problem(file)
            if problem is None:
                files.append(file)
            else:
                skipped += 1
                warnings.warn(f"skipped {file}: {problem}", SkippedImageWarning, stacklevel=2)
    if not files:
        if skipped:
            raise ValueError(f"no image file to read: all {skipped} were passed over")
        raise ValueError("`paths` must name at least one image file or folder, received none")
    return files


def image_file_problem(path: str | os.PathLike) -> str | None:
    """Why an image file would not be read, or None when it would be.

    Checks, without decoding and without opening anything but a regular file: that `path`
    is a regular file (not a FIFO, socket or device), of at most `MAX_IMAGE_BYTES` bytes,
    and that the size its header declares is at most `MAX_IMAGE_PIXELS` pixels. A file
    whose header cannot be read is not refused here: reading it says what is wrong.

    Args:
        path: a file path.

    Returns:
        None, or a short reason such as "not a regular file (a FIFO)".

    Example:
        >>> image_file_problem("/dev/zero")
        'not a regular file (a character device)'
    """
    return _header(os.fspath(path))[0]


def _header(path: str) -> tuple[str | None, bytes | None]:
    """(`image_file_problem(path)`, the file's first MiB): (reason, None) for a file refused,
    (None, None) for one that cannot be read (reading it reports the error)."""
    try:
        return None, _checked_bytes(path, header_only=True)
    except _Refused as refused:
        return str(refused), None
    except OSError:
        return None, None


def _decoded_format(header: bytes) -> bool:
    """Whether `header` (a file's first bytes) is that of a format `tf.io.decode_image`
    decodes."""
    return header.startswith(_DECODED_SIGNATURES) or (
        header[:4] == b"RIFF" and header[8:12] == b"WEBP"
    )


class _Refused(ValueError):
    """An image file refused by the limits (its message is the reason alone)."""


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
)


def _checked_bytes(path: str, header_only: bool = False) -> bytes:
    """The bytes of an image file within the limits (only the first 1 MiB with
    `header_only`); `_Refused` when it is not a regular file, too large or too many pixels.
    OSError when it cannot be read."""
    mode = os.stat(path).st_mode  # before opening: a device is never opened
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _FILE_KINDS if test(mode)), "a special file")
        raise _Refused(f"not a regular file ({kind})")
    # O_NONBLOCK: if the path was swapped for a FIFO since, opening it does not wait.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise _Refused("not a regular file")
        size = os.fstat(file.fileno()).st_size
        if size > MAX_IMAGE_BYTES:
            raise _Refused(f"{size} bytes, more than MAX_IMAGE_BYTES ({MAX_IMAGE_BYTES})")
        data = file.read(2**20 if header_only else MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise _Refused(f"more than MAX_IMAGE_BYTES ({MAX_IMAGE_BYTES}) bytes")
    pixels = _header_pixels(data)
    if pixels is not None and pixels[0] * pixels[1] > MAX_IMAGE_PIXELS:
        height, width = pixels
        raise _Refused(
            f"{height}x{width} pixels, more than MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS})"
        )
    return data


def _header_pixels(data: bytes) -> tuple[int, int] | None:
    """(height, width) declared by an image file's header (PIL reads only the header), or
    None when PIL does not recognise it."""
    from PIL import Image  # matplotlib's dependency; imported here, where it is needed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Image.DecompressionBombError:  # PIL's own limit, far above ours
            return (MAX_IMAGE_PIXELS + 1, 1)
        except Exception:  # any file PIL cannot identify: decoding it will say why
            return None
    return height, width


def _walk_images(folder: str) -> list[str]:
    """The files below `folder` whose extension is in IMAGE_EXTENSIONS (unsorted)."""
    return [
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    ]


def read_images(
    files: Sequence[str | os.PathLike], image_shape: tuple[int | None, int | None, int]
) -> np.ndarray:
    """Read image files as one float32 batch in [0, 1], at a model's input shape.

    Each file is decoded to `channels` channels (grey made RGB, RGB made grey, ...),
    scaled to [0, 1] (8- and 16-bit files alike) and, when its size differs from
    (height, width), resized (bilinear, antialiased, clipped to [0, 1]). A file that is
    not a regular file, or holds more than `MAX_IMAGE_BYTES` bytes or (by its header)
    `MAX_IMAGE_PIXELS` pixels, is refused before it is decoded.

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
        ValueError: a file is not an image or is beyond the limits, the images differ in
            size where `image_shape` does not fix it, `files` is empty, or `image_shape`
            is not a shape.

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
        ValueError: the folder holds no image, it is a dataset's folder of splits
            (`dataset_splits`) rather than of classes, or `image_shape` fixes no size.

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
    _refuse_splits(folder)
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
        encoded = _checked_bytes(path)
    except _Refused as refused:
        raise ValueError(f"cannot read image {path}: {refused}") from None
    except OSError as error:
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


# ----------------------------------------------------------------------------- evaluation data


class FolderFiles(NamedTuple):
    """The image files of a folder, as `folder_files` lists them.

    Attributes:
        paths: the files, sorted by class folder, then by path.
        groups: int64 (N,), the index in `classes` of each file's class folder (all zeros
            when `classes` is empty).
        classes: the class folder names, sorted; empty when the images lie directly in
            the folder.
    """

    paths: list[str]
    groups: np.ndarray
    classes: tuple[str, ...]


def folder_files(folder: str | os.PathLike) -> FolderFiles:
    """List a folder of images: `<folder>/<class>/<image>`, or images directly in it.

    A folder holding subfolders is read as one subfolder per class (searched recursively;
    files directly in `folder` are then left out, as `keras.utils.image_dataset_from_directory`
    does). Files are checked as `image_files` checks them: a file that is not a regular
    file or is beyond `MAX_IMAGE_BYTES` / `MAX_IMAGE_PIXELS` is passed over with a
    `SkippedImageWarning`.

    Args:
        folder: the image folder.

    Returns:
        A `FolderFiles(paths, groups, classes)`.

    Raises:
        FileNotFoundError: `folder` is not a folder.
        ValueError: it holds no image file, it holds a file that is not an image by its
            first bytes (the message names it), or it is a dataset's folder of splits
            (`dataset_splits`), not of classes.

    Example:
        >>> listing = folder_files("photos/test")
        >>> listing.classes  # ('cat', 'ship')
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"`folder` must be a folder of images, {folder} is not a folder")
    _refuse_splits(folder)
    classes = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()))
    found = (
        [(index, sorted(_walk_images(os.path.join(folder, c)))) for index, c in enumerate(classes)]
        if classes
        else [(0, sorted(name for name in _walk_images(folder) if os.path.dirname(name) == folder))]
    )
    paths, groups = [], []
    for index, files in found:
        for path in files:
            problem, header = _header(path)
            if problem is not None:
                warnings.warn(f"skipped {path}: {problem}", SkippedImageWarning, stacklevel=2)
                continue
            if header is not None and not _decoded_format(header):
                # Checked here, where the file is named: `files_dataset` decodes it inside
                # a tf.data pipeline, whose error would not say which file it was.
                raise ValueError(
                    f"cannot read image {path}: not a JPEG, PNG, GIF, BMP, WebP or JPEG XL "
                    "file (by its first bytes)"
                )
            paths.append(path)
            groups.append(index)
    if not paths:
        where = f"{folder}/<class>/" if classes else f"{folder}/"
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {where}")
    return FolderFiles(paths, np.array(groups, np.int64), classes)


def _refuse_splits(folder: str) -> None:
    """Refuse a dataset's folder of splits (`dataset_splits`) where a folder of classes is
    read: its splits would be read as classes, mixed."""
    splits = dataset_splits(folder)
    if splits:
        raise ValueError(
            f"{folder} holds the splits {', '.join(splits)} of a dataset (each a folder of "
            f"class folders), not class folders: read one split, e.g. "
            f"{os.path.join(folder, splits[0])}"
        )


def dataset_splits(folder: str | os.PathLike) -> tuple[str, ...]:
    """The split folders of a dataset's folder (`<folder>/<split>/<class>/<image>`), or ()
    when `folder` is not one.

    `folder` is taken to be a dataset's folder when its subfolders (hidden ones aside) are
    all named as splits (`SPLIT_NAMES`, any case: train, test, val, ...) and each holds
    subfolders, its classes: e.g. `cifar10/`, holding `train/` and `test/`. Read as a folder
    of class folders, it would mix its splits, one class per split.

    Returns:
        The split folder names, in `SPLIT_NAMES` order (test first).

    Example:
        >>> dataset_splits("../shared/data/cifar10")
        ('test', 'train')
    """
    folder = os.fspath(folder)
    subfolders = [
        entry.name for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith(".")
    ]
    if not subfolders or any(name.lower() not in SPLIT_NAMES for name in subfolders):
        return ()
    for name in subfolders:
        with os.scandir(os.path.join(folder, name)) as entries:
            if not any(entry.is_dir() for entry in entries):
                return ()
    return tuple(sorted(subfolders, key=lambda name: (SPLIT_NAMES.index(name.lower()), name)))


def read_class_names(path: str | os.PathLike, num_classes: int | None = None) -> tuple[str, ...]:
    """Read class names from a text file: one name per line, in the model's class order.

    Leading and trailing spaces and trailing blank lines are ignored.

    Args:
        path: the text file (UTF-8).
        num_classes: if given, the number of names the file must hold (the model's classes).

    Returns:
        The names; entry `i` names class `i`.

    Raises:
        OSError: the file cannot be read.
        ValueError: a name is empty or repeated, or the file does not hold `num_classes`
            names.

    Example:
        >>> read_class_names("classes.txt", num_classes=10)[:2]
        ('airplane', 'automobile')
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class names file not found (or not a regular file): {path}")
    with open(path, encoding="utf-8") as file:
        text = file.read(2**20)
    names = [line.strip() for line in text.rstrip().splitlines()]
    empty = [number for number, name in enumerate(names, 1) if not name]
    if not names or empty:
        raise ValueError(
            f"{path} must hold one class name per line, "
            + (f"line {empty[0]} is empty" if empty else "it holds none")
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{path} must name each class once, it repeats {repeated[:5]}")
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"{path} holds {len(names)} class names, but the model has {num_classes} classes"
        )
    return tuple(names)


def match_class_names(folders: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """The class index of each class folder, by its name.

    Args:
        folders: class folder names, e.g. `folder_files(...).classes` (a subset of the
            classes, in any order).
        class_names: the model's class names, in its class order.

    Returns:
        int64 (len(folders),): `class_names.index(folder)` for each folder.

    Raises:
        ValueError: a folder name is not among `class_names`.

    Example:
        >>> match_class_names(["cat", "ship"], class_names("cifar10"))
        array([3, 8])
    """
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [folder for folder in folders if folder not in index]
    if unknown:
        raise ValueError(
            f"the class folders {unknown[:5]} are not among the model's class names "
            f"({', '.join(list(class_names)[:10])}{', ...' if len(class_names) > 10 else ''})"
        )
    return np.array([index[folder] for folder in folders], np.int64)


def balanced_subset(groups: Any, limit: int, seed: int = 0) -> np.ndarray:
    """A seeded subset of `limit` items with as many of each group (class) as possible.

    Each group gets `limit // number of groups` items, or all of its items when it has
    fewer (the rest goes to the other groups); the remainder goes one each to groups drawn
    with the seed. Which items of a group are taken is drawn with the seed too.

    Args:
        groups: (N,) integer group (class) of each item.
        limit: the number of items to take; all items when `limit >= N`.
        seed: the seed of the draws (numpy's `default_rng`).

    Returns:
        int64 indices into `groups`, sorted (the items keep their order).

    Example:
        >>> balanced_subset([0, 0, 0, 1, 1, 2], limit=4, seed=0)  # two, one and one
    """
    groups = np.asarray(groups).reshape(-1)
    limit = _checks.positive_int("limit", limit)
    seed = _checks.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    if limit >= len(groups):
        return np.arange(len(groups), dtype=np.int64)
    rng = np.random.default_rng(seed)
    names, counts = np.unique(groups, return_counts=True)
    quota = np.zeros(len(names), np.int64)
    remaining = limit
    while remaining > 0:
        open_groups = np.flatnonzero(quota < counts)
        share = remaining // len(open_groups)
        if share == 0:  # fewer left than groups still open: one each to a seeded draw
            quota[rng.choice(open_groups, remaining, replace=False)] += 1
            break
        added = np.minimum(share, counts[open_groups] - quota[open_groups])
        quota[open_groups] += added
        remaining -= int(added.sum())
    chosen = [
        rng.permutation(np.flatnonzero(groups == name))[:count]
        for name, count in zip(names, quota)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def files_dataset(
    paths: Sequence[str],
    labels: Any,
    image_shape: tuple[int, int, int],
    batch_size: int = 128,
) -> tf.data.Dataset:
    """Image files as batches of [0, 1] images (and labels), in the order given.

    Each file is decoded to `channels` channels and scaled to [0, 1]; one of another size
    is resized (bilinear, antialiased), one of the size already is not resampled, as
    `load` does. The dataset's cardinality (batches) is known.

    Args:
        paths: image files (e.g. `folder_files(...).paths`, checked there).
        labels: None, or (N,) int class indices, one per file.
        image_shape: (height, width, channels) of the model's input, height and width fixed.
        batch_size: images per batch; the last batch may be smaller.

    Returns:
        A `tf.data.Dataset` of (images float32 (B, H, W, ch), labels int64 (B,)) batches,
        or of image batches alone when `labels` is None.

    Example:
        >>> listing = folder_files("photos")
        >>> test = files_dataset(listing.paths, listing.groups, (32, 32, 3))
    """
    height, width, channels = _checks.image_shape(image_shape)
    if height is None or width is None:
        raise ValueError(
            "`image_shape` must fix the (height, width) the images are resized to, "
            f"received {image_shape}"
        )
    _color_mode(channels)
    batch_size = _checks.positive_int("batch_size", batch_size)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("`paths` must name at least one image file, received none")

    def decode(path: tf.Tensor) -> tf.Tensor:
        return _decode(tf.io.read_file(path), (height, width), channels)

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(paths).map(decode)
    else:
        labels = np.asarray(labels, np.int64).reshape(-1)
        if labels.shape != (len(paths),):
            raise ValueError(f"`labels` must hold one label per path ({len(paths)}), "
                             f"received shape {labels.shape}")
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            lambda path, label: (decode(path), label)
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class EvaluationData(NamedTuple):
    """What `evaluation_data` reads for the benchmark.

    Attributes:
        dataset: batches of (images, int64 labels), or of images alone when no label is
            known; its cardinality (batches) is known.
        num_images: the number of images it holds.
        record: the "data" record of a results.json: "source", "split", "limit", "seed",
            "images_per_class" (class name -> count, None when the images have no class
            folders) and "labels" (how labels were given to the images, or why not).
        description: one line, e.g. "evaluating 20 images: 2 per class, seeded subset
            (seed 0) of cifar10 (test)".
        labelled: whether the images have labels (accuracy can be measured).
    """

    dataset: tf.data.Dataset
    num_images: int
    record: dict[str, Any]
    description: str
    labelled: bool


def evaluation_data(
    source: str,
    image_shape: tuple[int | None, int | None, int],
    num_classes: int,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    batch_size: int = 128,
) -> EvaluationData:
    """The images of the `evaluate` command: a dataset or a folder, optionally a subset.

    Labels are given only when they name the model's classes: CIFAR-10 and Imagenette
    label their ten classes (for a model of ten classes); a folder's class folders are
    matched to `class_names` by name (a folder may hold a subset of the classes, e.g. only
    `cat/` and `ship/`), or, without names, taken in sorted order when there are exactly
    as many as the model has classes (Keras's convention). Otherwise the images have no
    label, and `record["labels"]` says why (accuracy cannot be measured; allegiance needs
    no label).

    Args:
        source: "cifar10", "imagenette" or an image folder (`<folder>/<class>/<image>`,
            or images directly in it).
        image_shape: (height, width, channels) of the model's input. For a folder,
            height and width must be fixed.
        num_classes: the model's number of classes.
        split: for a dataset, "train" or "test" (default); for a folder, a subfolder.
        data_dir: a local copy of the dataset (see `load`); None uses tensorflow-datasets.
        limit: take a class-balanced, seeded subset of this many images
            (`balanced_subset`); None takes all.
        seed: the seed of the subset.
        class_names: the model's class names, in class order, to match class folders by
            name. Ignored for cifar10/imagenette, which name their classes.
        batch_size: images per batch.

    Returns:
        An `EvaluationData(dataset, num_images, record, description, labelled)`.

    Raises:
        FileNotFoundError: a folder `source` is not a folder.
        ValueError: no image, a file that is not an image, a folder of a dataset's splits
            rather than of classes (see `folder_files`), a class folder not among
            `class_names`, or `class_names` not of `num_classes` names.
        RuntimeError: tensorflow-datasets cannot download the data.

    Example:
        >>> data = evaluation_data("photos/", (32, 32, 3), 10, limit=100,
        ...                        class_names=class_names("cifar10"))
        >>> print(data.description)
    """
    height, width, channels = _checks.image_shape(image_shape)
    num_classes = _checks.positive_int("num_classes", num_classes)
    if limit is not None:
        limit = _checks.positive_int("limit", limit)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must name the model's {num_classes} classes, "
            f"received {len(class_names)} names"
        )
    encoded = None
    if source in NAMES:
        split = split or "test"
        if split not in _SPLITS[source]:
            raise ValueError(
                f"`split` must be one of {list(_SPLITS[source])} for {source}, received {split!r}"
            )
        classes = _CLASS_NAMES[source]
        size = (height, width) if height is not None and width is not None else _IMAGE_SIZE[source]
        folder, tfds_split = _SPLITS[source][split]
        if data_dir is not None:
            paths, groups = _paths_from_folder(source, folder, os.fspath(data_dir))
        else:
            encoded = _encoded_from_tfds(source, tfds_split)
            paths, groups = None, np.fromiter((int(y) for _, y in encoded.as_numpy_iterator()),
                                              np.int64)
        labelled = num_classes == len(classes)
        how = (
            f"the {source} labels" if labelled else
            f"none: the model has {num_classes} classes, {source} has {len(classes)}"
        )
        mapping = np.arange(len(classes))
        where = f"{source} ({split})"
    else:
        folder_path = os.fspath(source) if split is None else os.path.join(source, split)
        if height is None or width is None:
            raise ValueError("the model's input size is not fixed: images cannot be resized")
        size = (height, width)
        listing = folder_files(folder_path)
        paths, groups, classes = listing.paths, listing.groups, listing.classes
        mapping, how = _folder_labels(classes, class_names, num_classes)
        labelled = mapping is not None
        where = folder_path
    chosen = (
        np.arange(len(groups)) if limit is None else balanced_subset(groups, limit, seed)
    )
    counts = np.bincount(groups[chosen], minlength=max(len(classes), 1))
    images_per_class = {c: int(n) for c, n in zip(classes, counts)} if classes else None
    labels = mapping[groups[chosen]] if labelled else None
    if encoded is None:
        dataset = files_dataset(
            [paths[i] for i in chosen], labels, (*size, channels), batch_size
        )
    else:
        dataset = _chosen_records(encoded, chosen, labels, size, channels, batch_size)
    record = {
        "source": os.fspath(source), "split": split, "limit": limit,
        "seed": seed if limit is not None else None,
        "images_per_class": images_per_class, "labels": how,
    }
    shown = sorted({int(n) for n in counts[counts > 0]}) if classes else []
    per_class = (
        "" if not shown else
        f": {shown[0]} per class" if len(shown) == 1 else f": {shown[0]} to {shown[-1]} per class"
    )
    subset = f", seeded subset (seed {seed}) of" if limit is not None and len(chosen) < len(
        groups) else " of"
    description = f"evaluating {len(chosen)} images{per_class}{subset} {where}"
    return EvaluationData(dataset, len(chosen), record, description, labelled)


def _folder_labels(
    classes: tuple[str, ...], class_names: Sequence[str] | None, num_classes: int
) -> tuple[np.ndarray | None, str]:
    """The model class of each class folder (None when unknown), and how it was found."""
    if not classes:
        return None, "none: the images are not in class folders"
    if class_names is not None:
        return match_class_names(classes, class_names), "class folders matched by name"
    if len(classes) == num_classes:
        return np.arange(num_classes), (
            "class folders in sorted order (no class names given: they are taken to be the "
            "model's classes in order)"
        )
    return None, (
        f"none: {len(classes)} class folders for a model of {num_classes} classes, and no "
        "class names to match them by"
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
        dataset = kept.map(lambda i, record: _decode(record[0], size, channels))
    else:
        label_tensor = tf.constant(np.asarray(labels, np.int64))
        position_tensor = tf.constant(position)
        dataset = kept.map(
            lambda i, record: (
                _decode(record[0], size, channels), label_tensor[position_tensor[i]]
            )
        )
    batches = math.ceil(len(chosen) / batch_size)
    return dataset.batch(batch_size).apply(
        tf.data.experimental.assert_cardinality(batches)
    ).prefetch(tf.data.AUTOTUNE)
