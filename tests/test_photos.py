"""Image files read as a photo viewer shows them: turned upright by their EXIF orientation
(against PIL's `ImageOps.exif_transpose`), and every kind of pixel (16-bit, palette, grey,
grey + alpha, RGBA, bilevel) converted to the model's channels as the README's input
contract states (against the pixels the test wrote). Tiny files written here."""

import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tf_signsal.data import files_dataset, read_images
from tf_signsal.data.folders import folder_files

LUMA = np.array([0.2989, 0.5870, 0.1140])  # ITU-R 601, as tf.image.rgb_to_grayscale
SIDE = 6


def _scaled(pixels, depth=8):
    return pixels.astype(np.float32) / np.float32(2**depth - 1)


def _save_oriented(image, path, orientation, **options):
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), **options)
    return str(path)


def _upright_by_pil(path):
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


# ----------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("suffix, options", [("png", {}), ("webp", {"lossless": True})])
def test_exif_orientation_as_pil_shows_it(suffix, options, rng, tmp_path):
    """PNG (eXIf chunk) and lossless WebP (EXIF chunk): exact. A 5x7 image turned by
    orientations 5-8 is read 7x5, as it is shown."""
    stored = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    for orientation in range(1, 9):
        path = _save_oriented(stored, tmp_path / f"{orientation}.{suffix}", orientation,
                              **options)
        expected = _scaled(_upright_by_pil(path))
        assert expected.shape == ((7, 5, 3) if orientation >= 5 else (5, 7, 3))  # turned
        read = read_images([path], (None, None, 3))[0]
        assert read.shape == expected.shape, orientation
        np.testing.assert_array_equal(read, expected, err_msg=f"orientation {orientation}")


def test_a_webp_announces_its_exif_kept_after_its_pixels(rng, tmp_path):
    """WebP stores EXIF after the pixels, beyond the bytes searched for a marker: its VP8X
    header's flag says it is there."""
    noise = Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))
    path = _save_oriented(noise, tmp_path / "large.webp", 6, lossless=True)
    data = open(path, "rb").read()
    assert data.find(b"EXIF") > 65536 and b"Exif" not in data  # no marker in reach
    expected = _scaled(_upright_by_pil(path))
    assert expected.shape == (200, 150, 3)
    np.testing.assert_array_equal(read_images([path], (None, None, 3))[0], expected)


def test_exif_orientation_of_jpeg_photos_in_both_readers(rng, tmp_path):
    """JPEG (APP1 segment), as phones write it: the same compressed pixels under each
    orientation read as the stored ones turned the way PIL turns them, by `read_images`
    and by the tf.data pipeline of `files_dataset` alike."""
    stored = Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))
    paths = [_save_oriented(stored, tmp_path / f"{k}.jpg", k, quality=95) for k in range(1, 9)]
    as_stored = np.round(read_images([paths[0]], (SIDE, SIDE, 3))[0] * 255).astype(np.uint8)
    dataset = next(iter(files_dataset(paths, None, (SIDE, SIDE, 3), batch_size=8))).numpy()
    for orientation, path in enumerate(paths, start=1):
        reference = _save_oriented(Image.fromarray(as_stored), tmp_path / f"r{orientation}.png",
                                   orientation)
        expected = _scaled(_upright_by_pil(reference))
        assert (orientation == 1) == np.array_equal(expected, _scaled(as_stored))  # turned
        np.testing.assert_array_equal(read_images([path], (SIDE, SIDE, 3))[0], expected,
                                      err_msg=f"orientation {orientation}")
        np.testing.assert_array_equal(dataset[orientation - 1], expected,
                                      err_msg=f"orientation {orientation}, files_dataset")


# ----------------------------------------------------------------------------- pixel kinds


def _png16(path, pixels):
    """A 16-bit RGB PNG (PIL cannot write one), written chunk by chunk."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data)
        )

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, RGB
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _kinds(rng, folder):
    """{kind: (path, colour (H, W, 3) float32 in [0, 1], alpha (H, W, 1) or None, grey
    (H, W, 1) or None for a colour file)}, each the pixels as written."""
    shape = (SIDE, SIDE)
    grey8 = rng.integers(0, 256, shape, dtype=np.uint8)
    rgb8 = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    alpha8 = rng.integers(1, 256, shape, dtype=np.uint8)  # never 0: kept exactly by WebP
    grey16 = rng.integers(0, 2**16, shape, dtype=np.uint16)
    rgb16 = rng.integers(0, 2**16, (*shape, 3), dtype=np.uint16)
    quantized = Image.fromarray(rgb8).quantize(8)
    kinds = {}

    def write(kind, image, suffix, colour, alpha=None, grey=None, **options):
        path = str(folder / f"{kind}.{suffix}")
        image.save(path, **options)
        kinds[kind] = (path, colour, alpha, grey)

    g = _scaled(grey8)[..., None]
    write("grey", Image.fromarray(grey8), "png", np.repeat(g, 3, -1), grey=g)
    write("grey_bmp", Image.fromarray(grey8), "bmp", np.repeat(g, 3, -1), grey=g)
    write("grey_alpha", Image.fromarray(np.dstack([grey8, alpha8]), "LA"), "png",
          np.repeat(g, 3, -1), _scaled(alpha8)[..., None], grey=g)
    write("rgb", Image.fromarray(rgb8), "png", _scaled(rgb8))
    write("rgba", Image.fromarray(np.dstack([rgb8, alpha8])), "png", _scaled(rgb8),
          _scaled(alpha8)[..., None])
    write("rgba_webp", Image.fromarray(np.dstack([rgb8, alpha8])), "webp", _scaled(rgb8),
          _scaled(alpha8)[..., None], lossless=True, exact=True)
    palette = np.asarray(quantized.convert("RGB"))
    write("palette", quantized, "png", _scaled(palette))
    write("palette_gif", quantized, "gif", _scaled(palette))
    transparent = np.asarray(quantized) == 0
    write("palette_transparent", quantized, "png", _scaled(palette),
          np.where(transparent, 0.0, 1.0).astype(np.float32)[..., None], transparency=0)
    bilevel = grey8 > 127
    b = bilevel.astype(np.float32)[..., None]
    write("bilevel", Image.fromarray(bilevel), "png", np.repeat(b, 3, -1), grey=b)
    g16 = _scaled(grey16, 16)[..., None]
    write("grey16", Image.fromarray(grey16), "png", np.repeat(g16, 3, -1), grey=g16)
    _png16(folder / "rgb16.png", rgb16)
    kinds["rgb16"] = (str(folder / "rgb16.png"), _scaled(rgb16, 16), None, None)
    return kinds


def test_every_kind_of_pixel_converts_to_the_models_channels(rng, tmp_path):
    kinds = _kinds(rng, tmp_path)
    assert open(kinds["grey16"][0], "rb").read()[24] == 16  # written at 16 bits
    for kind, (path, colour, alpha, grey) in kinds.items():
        opaque = np.ones_like(colour[..., :1])
        expected = {
            3: colour,
            4: np.concatenate([colour, opaque if alpha is None else alpha], axis=-1),
        }
        for channels, want in expected.items():
            np.testing.assert_array_equal(read_images([path], (SIDE, SIDE, channels))[0], want,
                                          err_msg=f"{kind} as {channels} channels")
        one = read_images([path], (SIDE, SIDE, 1))[0]
        if grey is not None:
            np.testing.assert_array_equal(one, grey, err_msg=f"{kind} as grey")
        else:
            np.testing.assert_allclose(one, colour @ LUMA[:, None], atol=1e-6,
                                       err_msg=f"{kind} as grey")
    # The tf.data pipeline reads them alike.
    paths = [path for path, *_ in kinds.values()]
    for channels in (1, 3, 4):
        batch = next(iter(files_dataset(paths, None, (SIDE, SIDE, channels), len(paths))))
        np.testing.assert_array_equal(batch.numpy(), read_images(paths, (SIDE, SIDE, channels)))


def test_files_decoded_wrong_are_refused(rng, tmp_path):
    rgb8 = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    palette_bmp, cmyk = str(folder / "palette.bmp"), str(folder / "cmyk.jpg")
    Image.fromarray(rgb8).quantize(8).save(palette_bmp)
    Image.fromarray(rgb8).convert("CMYK").save(cmyk)
    for path, why in ((palette_bmp, "BMP with a colour palette"), (cmyk, "CMYK JPEG")):
        with pytest.raises(ValueError, match=f"cannot read image {path}: a {why}"):
            read_images([path], (SIDE, SIDE, 3))
    with pytest.raises(ValueError, match="cannot read image .*: a (BMP|CMYK)"):
        folder_files(folder)
    # Inside a pipeline that was not checked, a CMYK JPEG is still refused.
    with pytest.raises(tf.errors.InvalidArgumentError, match="CMYK JPEG"):
        next(iter(files_dataset([cmyk], None, (SIDE, SIDE, 3))))
