"""Fills beyond constants: what a deleted pixel becomes.

    blur_images   a Gaussian-blurred copy of each image (the "blur" fill)
    mean_images   each image's per-channel mean (the "mean" fill)

Both give a full image of fill values: the evaluator's occluded image is
`where(mask, fill_image, image)`. ROAD's fill depends on the mask, so it lives in
`road.py`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from tf_signsal import _checks

MAX_BLUR_SIGMA = 10_000.0
"""The largest blur sigma in pixels (a kernel of 60,001 taps); a larger one would only
exhaust memory: from 3 times an image's side on, its blur is its mean to float precision."""


def check_blur_sigma(name: str, value: Any) -> float:
    """`value` as a blur sigma: a number in (0, `MAX_BLUR_SIGMA`]."""
    return _checks.real(name, value, 0.0, strict=True, maximum=MAX_BLUR_SIGMA)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The 1-D kernel of `blur_images`: radius `ceil(3 * sigma)`, normalised weights.

    Args:
        sigma: the standard deviation in pixels, in (0, `MAX_BLUR_SIGMA`].

    Returns:
        float64 array of length `2 * r + 1`, `r = math.ceil(3 * sigma)`, with
        `w[k + r] = exp(-k**2 / (2 * sigma**2)) / sum_j exp(-j**2 / (2 * sigma**2))` for
        `k, j` in `-r..r`.
    """
    sigma = check_blur_sigma("sigma", sigma)
    radius = math.ceil(3 * sigma)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _symmetric_indices(size: tf.Tensor, radius: int) -> tf.Tensor:
    """Indices of 0..size-1 padded by `radius` on each side, mirrored with the edge
    pixel repeated (`d c b a | a b c d | d c b a`), periodic with period 2 * size so
    that any radius works, even one larger than the image."""
    positions = tf.range(-radius, size + radius)
    folded = tf.math.floormod(positions, 2 * size)
    return tf.where(folded < size, folded, 2 * size - 1 - folded)


@tf.function(reduce_retracing=True)
def _blur(images: tf.Tensor, kernel: tf.Tensor, radius: int) -> tf.Tensor:
    channels = tf.shape(images)[3]
    shape = tf.shape(images)
    # Along the height, then along the width; each channel on its own (depthwise).
    padded = tf.gather(images, _symmetric_indices(shape[1], radius), axis=1)
    column = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, channels, 1))
    blurred = tf.nn.depthwise_conv2d(padded, column, (1, 1, 1, 1), "VALID")
    padded = tf.gather(blurred, _symmetric_indices(shape[2], radius), axis=2)
    row = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), (1, 1, channels, 1))
    return tf.nn.depthwise_conv2d(padded, row, (1, 1, 1, 1), "VALID")


def blur_images(images: Any, sigma: float = 5.0) -> tf.Tensor:
    """A Gaussian-blurred copy of each image: the "blur" fill.

    Each channel is filtered on its own, separably (first along the height, then along
    the width), with the 1-D kernel of `gaussian_kernel(sigma)`: radius
    `r = ceil(3 * sigma)`, weights `exp(-k**2 / (2 sigma**2))` for `k = -r..r`, divided
    by their sum. At the border the image is extended symmetrically, the edge pixel
    repeated (`d c b a | a b c d`; scipy.ndimage's mode "reflect"), periodically when
    `r` exceeds the image, so the blur of a constant image is that constant. With
    `mode="reflect", radius=r`, `scipy.ndimage.gaussian_filter` computes the same.

    A deleted pixel of the "blur" fill takes the blurred image's value:
    `where(mask[..., None], blur_images(images), images)`.

    Args:
        images: float (B, H, W, ch) images.
        sigma: the standard deviation of the Gaussian in pixels, > 0.

    Returns:
        float32 tensor (B, H, W, ch).

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> blurred = blur_images(images, sigma=2.0)
    >>> blurred.shape
    TensorShape([2, 32, 32, 3])
    """
    images = _checks.as_image_batch(images)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    return _blur(images, tf.constant(kernel, tf.float32), radius)


def mean_images(images: Any) -> tf.Tensor:
    """Each image's per-channel mean, broadcast to its shape: the "mean" fill.

    Args:
        images: float (B, H, W, ch) images.

    Returns:
        float32 tensor (B, H, W, ch): pixel (b, i, j, c) is the mean of channel c of
        image b over all its pixels.

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> means = mean_images(images)
    >>> means.shape
    TensorShape([2, 32, 32, 3])
    """
    images = _checks.as_image_batch(images)
    means = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
    return tf.broadcast_to(means, tf.shape(images))
