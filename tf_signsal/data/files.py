"""Hardened image-file reading: the size and pixel limits in one place.

Image files are read with limits, so that a stray file cannot hang or exhaust a run: only
regular files (a FIFO or a device named `*.jpg` is passed over, never opened for reading),
at most `MAX_IMAGE_BYTES` bytes and `MAX_IMAGE_PIXELS` pixels each, the pixels counted from
the file's header before anything is decoded. `image_files` finds image files and passes
over such files with a `SkippedImageWarning` naming each; `read_images` reads files into an
array at a model's input size and refuses them; `files_dataset` reads files already
checked (e.g. by `tf_signsal.data.folders.folder_files`) as a `tf.data` pipeline.

Every image is decoded, turned upright, converted to the model's channels, scaled to [0, 1]
and resized the same way (`decode_image`), here and in `tf_signsal.data.paper`:

- upright: by its EXIF orientation (JPEG, PNG's eXIf chunk before the pixels, WebP), as
  photo viewers show it, read with PIL where the file's first 64 KiB hold an EXIF marker;
- scaled: 8-bit files by 1/255, 16-bit PNGs by 1/65535 (at their full depth);
- channels, from the file's own (a palette expanded to its colours first): grey to RGB
  by repeating it; RGB to grey by ITU-R 601 luma, 0.2989 R + 0.5870 G + 0.1140 B (as
  `tf.image.rgb_to_grayscale`); alpha dropped (the colour stored under transparent pixels
  is kept, as Keras's `image_dataset_from_directory` and PIL's `convert("RGB")` keep it),
  and for a 4-channel model kept, or made opaque (1) for a file without one;
- refused (`_format_problem`): a BMP with a colour palette, whose indices TensorFlow's
  decoder would read as grey levels, and a CMYK JPEG, whose colours it gets wrong.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

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


# The channel counts images are converted to: grey, RGB, RGBA.
_CHANNELS = (1, 3, 4)

# A file's own channels (`tf.io.decode_image(channels=0)`, a palette expanded) are grey (1),
# grey + alpha (2), RGB (3) or RGBA (4).
_RGB = 3

_PNG = b"\x89PNG\r\n\x1a\n"
# EXIF is marked "Exif" in JPEG's APP1 segment (which opens the file) and "eXIf" as a PNG
# chunk (before the pixels): searched in the first 64 KiB, the most an APP1 segment holds.
# A WebP file keeps its EXIF chunk after the pixels, announced by a flag of its VP8X header.
_EXIF_MARKERS = (b"Exif", b"eXIf")
_EXIF_SEARCHED = 65536
_WEBP_EXTENDED = b"RIFF", b"WEBPVP8X"  # bytes 0-3 and 8-15
_WEBP_EXIF_FLAG = 20, 0x08  # (byte, bit)
_ORIENTATION_TAG = 0x0112


def decode_image(
    encoded: tf.Tensor, size: tuple[int | None, int | None], channels: int = 3
) -> tf.Tensor:
    """Decode, turn upright by the EXIF orientation, convert to `channels` channels, scale
    to float32 [0, 1] and resize only if needed (see the module docstring); a None height
    or width keeps the file's. Traceable: `tf.data` pipelines map it."""
    image = _to_channels(_upright(_decoded(encoded), encoded), channels)
    shape = tf.shape(image)[:2]
    target = tf.stack([shape[i] if size[i] is None else size[i] for i in (0, 1)])
    image = tf.cond(
        tf.reduce_all(shape == target),
        lambda: image,
        # Antialiasing matters when shrinking full-size photos (PIL's resize, which the paper's
        # authors used, does it); clipping removes float rounding just outside [0, 1].
        lambda: tf.clip_by_value(
            tf.image.resize(image, target, method="bilinear", antialias=True), 0.0, 1.0
        ),
    )
    image.set_shape((*size, channels))
    return image


def _decoded(encoded: tf.Tensor) -> tf.Tensor:
    """float32 (H, W, c) in [0, 1] with the file's own c channels: 16-bit PNGs at their full
    depth, every other file as 8 bits; a CMYK JPEG refused."""
    start = tf.strings.join([tf.strings.substr(encoded, 0, 32), b"\0" * 32])
    # A PNG's first chunk is its header: the bit depth is the file's 25th byte.
    sixteen = (tf.strings.substr(start, 0, 8) == _PNG) & (
        tf.strings.substr(start, 24, 1) == b"\x10"
    )

    def eight_bits() -> tf.Tensor:
        return tf.cast(tf.io.decode_image(encoded, expand_animations=False), tf.float32) / 255.0

    def jpeg() -> tf.Tensor:
        components = tf.io.extract_jpeg_shape(encoded)[2]
        with tf.control_dependencies([tf.debugging.Assert(components != 4, [_CMYK_PROBLEM])]):
            return eight_bits()

    def sixteen_bits() -> tf.Tensor:
        return tf.cast(tf.io.decode_png(encoded, dtype=tf.uint16), tf.float32) / 65535.0

    # One branch per kind of file: a single switch costs less than one test after another.
    kind = tf.where(sixteen, 2, tf.where(tf.io.is_jpeg(encoded), 1, 0))
    return tf.switch_case(kind, [eight_bits, jpeg, sixteen_bits])


def _upright(image: tf.Tensor, encoded: tf.Tensor) -> tf.Tensor:
    """`image` as its EXIF orientation says it is shown (the transposes of PIL's
    `ImageOps.exif_transpose`). The orientation is read with PIL only for a file marked
    as holding EXIF (see `_EXIF_SEARCHED`): other files cost no Python call."""
    head = tf.reshape(tf.strings.substr(encoded, 0, _EXIF_SEARCHED), [1])
    # A search by splitting once at the marker (measured ~4x cheaper than comparing bytes).
    found = [
        tf.raw_ops.StringSplitV2(input=head, sep=marker, maxsplit=1).shape[1] > 1
        for marker in _EXIF_MARKERS
    ]
    start = tf.strings.join([tf.strings.substr(encoded, 0, 32), b"\0" * 32])
    (riff, extended), (flag_byte, flag) = _WEBP_EXTENDED, _WEBP_EXIF_FLAG
    flags = tf.io.decode_raw(tf.strings.substr(start, flag_byte, 1), tf.uint8)[0]
    webp = (
        (tf.strings.substr(start, 0, 4) == riff) & (tf.strings.substr(start, 8, 8) == extended)
        & (tf.bitwise.bitwise_and(flags, flag) != 0)
    )
    marked = tf.reduce_any(tf.stack([*found, webp]))

    def turned() -> tf.Tensor:
        orientation = tf.numpy_function(_exif_orientation, [encoded], tf.int32, stateful=False)
        transposed = functools.partial(tf.transpose, image, (1, 0, 2))
        return tf.switch_case(tf.ensure_shape(orientation, ()) - 1, [
            lambda: image,  # 1: as stored
            lambda: image[:, ::-1],  # 2: mirrored left-right
            lambda: image[::-1, ::-1],  # 3: rotated 180 degrees
            lambda: image[::-1],  # 4: mirrored top-bottom
            transposed,  # 5: mirrored along the main diagonal
            lambda: transposed()[:, ::-1],  # 6: rotated 90 degrees clockwise
            lambda: transposed()[::-1, ::-1],  # 7: mirrored along the other diagonal
            lambda: transposed()[::-1],  # 8: rotated 90 degrees counter-clockwise
        ])

    return tf.cond(marked, turned, lambda: image)


def _exif_orientation(encoded: bytes) -> np.int32:
    """The EXIF orientation of an encoded image, 1 without a valid one."""
    return np.int32(_header_info(bytes(encoded)).orientation)


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """(H, W, channels) from the file's own channels (see the module docstring): each
    channel one of the file's, or the luma of its colours; the image as it is when it has
    `channels` already (no copy)."""
    own = tf.shape(image)[-1]

    def convert() -> tf.Tensor:
        colour = tf.gather(image, tf.where(own < _RGB, [0, 0, 0], [0, 1, 2]), axis=-1)
        if channels == 3:
            return colour
        if channels == 1:
            return tf.where(own < _RGB, image[..., :1], tf.image.rgb_to_grayscale(colour))
        # Grey + alpha and RGBA files have an even number of channels, the last one alpha.
        alpha = tf.where(own % 2 == 0, tf.gather(image, [own - 1], axis=-1), 1.0)
        return tf.concat([colour, alpha], axis=-1)

    converted = tf.cond(own == channels, lambda: image, convert)
    converted.set_shape((None, None, channels))
    return converted


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
    pixels = _header_info(data).pixels
    if pixels is not None and pixels[0] * pixels[1] > MAX_IMAGE_PIXELS:
        height, width = pixels
        raise _Refused(
            f"{height}x{width} pixels, more than MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS})"
        )
    return data


_CMYK_PROBLEM = (
    "a CMYK JPEG, whose colours TensorFlow's decoder gets wrong: convert it to RGB first"
)


class _Header(NamedTuple):
    """What PIL reads from an image file's header, without decoding its pixels."""

    pixels: tuple[int, int] | None  # (height, width), None when PIL does not know the file
    orientation: int  # EXIF orientation 1..8, 1 without a valid one
    problem: str | None  # why it is refused (`_format_problem`), or None


def _header_info(data: bytes) -> _Header:
    """The `_Header` of an image file's bytes (PIL reads only the header)."""
    from PIL import Image  # a declared dependency; imported here, where it is needed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind, mode, exif = image.format, image.mode, image.info.get("exif")
        except Image.DecompressionBombError:  # PIL's own limit, far above ours
            return _Header((MAX_IMAGE_PIXELS + 1, 1), 1, None)
        except Exception:  # any file PIL cannot identify: decoding it will say why
            return _Header(None, 1, None)
    problem = None
    if kind == "BMP" and mode in ("P", "1"):
        problem = (
            "a BMP with a colour palette, whose indices TensorFlow's decoder would read as "
            "grey levels: convert it to PNG first"
        )
    elif kind == "JPEG" and mode == "CMYK":
        problem = _CMYK_PROBLEM
    orientation = 1
    if exif:
        try:
            parsed = Image.Exif()
            parsed.load(exif)
            orientation = int(parsed.get(_ORIENTATION_TAG, 1))
        except Exception:  # a damaged EXIF block: the image as stored
            orientation = 1
    return _Header((height, width), orientation if 1 <= orientation <= 8 else 1, problem)


def _format_problem(header: bytes) -> str | None:
    """Why an image file that TensorFlow decodes would be read wrong, from its first bytes,
    or None: a BMP with a colour palette, a CMYK JPEG (see the module docstring)."""
    return _header_info(header).problem


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

    Each file is decoded, turned upright by its EXIF orientation, converted to `channels`
    channels (grey made RGB, RGB made grey, alpha dropped or added, a palette expanded),
    scaled to [0, 1] (8- and 16-bit files alike) and, when its upright size differs from
    (height, width), resized (bilinear, antialiased, clipped to [0, 1]): see the module
    docstring. A file that is not a regular file, holds more than `MAX_IMAGE_BYTES` bytes
    or (by its header) `MAX_IMAGE_PIXELS` pixels, or that TensorFlow would decode wrong
    (`_format_problem`), is refused before it is decoded.

    Args:
        files: image file paths (PNG, JPEG, GIF, BMP, WebP), e.g. from `image_files`.
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
    problem = _format_problem(encoded)
    if problem is not None:
        raise ValueError(f"cannot read image {path}: {problem}")
    try:
        image = decode_image(encoded, (height, width), channels)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {one_line(error)}") from error
    return image.numpy()


def files_dataset(
    paths: Sequence[str],
    labels: Any,
    image_shape: tuple[int, int, int],
    batch_size: int = 128,
) -> tf.data.Dataset:
    """Image files as batches of [0, 1] images (and labels), in the order given.

    Each file is decoded as `decode_image` decodes it (upright by its EXIF orientation,
    converted to `channels` channels, scaled to [0, 1]); one of another size is resized
    (bilinear, antialiased), one of the size already is not resampled, as `load` does. The
    dataset's cardinality (batches) is known.

    Args:
        paths: image files (e.g. `folder_files(...).paths`, checked there: a palette BMP
            is refused there, and not inside the pipeline).
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


