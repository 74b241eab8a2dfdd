"""Hardened image-file reading: the size and pixel limits in one place.

Image files are read with limits, so that a stray file cannot hang or exhaust a run: only
regular files (a FIFO or a device named `*.jpg` is passed over, never opened for reading),
at most `MAX_IMAGE_BYTES` bytes and `MAX_IMAGE_PIXELS` pixels each, the pixels counted from
the file's header before anything is decoded. `image_files` finds image files and passes
over such files with a `SkippedImageWarning` naming each; `read_images` reads files into an
array at a model's input size and refuses them; `files_dataset` reads files already
checked (e.g. by `tf_signsal.data.folders.folder_files`) as a `tf.data` pipeline.

Every image is decoded, scaled to [0, 1] and resized the same way (`decode_image`), here and
in `tf_signsal.data.paper`.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._io import one_line

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""The image file extensions read (those `keras.utils.image_dataset_from_directory` reads)."""

MAX_IMAGE_BYTES = 50 * 2**20
"""The largest image file read, in bytes (50 MiB)."""

MAX_IMAGE_PIXELS = 40_000_000
"""The most pixels (height x width, from the file's header) of an image file read: 40
megapixels, 480 MB as float32 RGB. Larger files are refused before they are decoded."""

# The first bytes by which `tf.io.decode_image` tells the formats it decodes (JPEG, PNG,
# GIF, BMP, JPEG XL as a codestream or in its container; WebP is RIFF....WEBP).
_DECODED_SIGNATURES = (
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"\xff\x0a",
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",
)


class SkippedImageWarning(UserWarning):
    """An image file passed over by `image_files`: not a regular file, too large, or not an
    image. The message names the file and why."""


# The channel counts `tf.io.decode_image` decodes to: grey, RGB, RGBA.
_CHANNELS = (1, 3, 4)


def decode_image(encoded: tf.Tensor, size: tuple[int, int], channels: int = 3) -> tf.Tensor:
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
    _check_channels(channels)
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


def _check_channels(channels: int) -> None:
    """Refuse a channel count that image files are not decoded to."""
    if channels not in _CHANNELS:
        raise ValueError(
            f"images are read with 1, 3 or 4 channels, but `image_shape` asks for {channels}"
        )


def _read_image(path: str, height: int | None, width: int | None, channels: int) -> np.ndarray:
    """One file as float32 (H, W, channels) in [0, 1], resized to (height, width) if given."""
    try:
        encoded = _checked_bytes(path)
    except _Refused as refused:
        raise ValueError(f"cannot read image {path}: {refused}") from None
    except OSError as error:
        raise OSError(f"cannot read image {path}: {one_line(error)}") from error
    try:
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {one_line(error)}") from error
    image = tf.image.convert_image_dtype(image, tf.float32)  # [0, 1] for 8 and 16 bit
    size = (height or image.shape[0], width or image.shape[1])
    if image.shape[:2] != size:
        image = tf.clip_by_value(tf.image.resize(image, size, antialias=True), 0.0, 1.0)
    return image.numpy()



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
    _check_channels(channels)
    batch_size = _checks.positive_int("batch_size", batch_size)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("`paths` must name at least one image file, received none")

    def decode(path: tf.Tensor) -> tf.Tensor:
        return decode_image(tf.io.read_file(path), (height, width), channels)

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


