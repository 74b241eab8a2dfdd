"""Seeded randomness that depends only on an image's own content and a seed.

`tf.random` streams depend on the order of the calls, so a result would change with the
batching or the distribution of the images. Here every random number is a hash of the
image's bits, the seed and the number's index (murmur3's 32-bit finaliser, in uint32
arithmetic that wraps mod 2**32), so the same image gets the same numbers in any batch,
on any replica. Used by the random control, SmoothGrad's noise and ROAD's noise.
"""

from __future__ import annotations

import tensorflow as tf

_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: spreads consecutive counters


def _u32(value: int) -> tf.Tensor:
    return tf.constant(value, tf.uint32)


def finalise(z: tf.Tensor) -> tf.Tensor:
    """murmur3's 32-bit finaliser on uint32: every input bit affects every output bit."""
    z = (z ^ tf.bitwise.right_shift(z, _u32(16))) * _u32(0x85EBCA6B)
    z = (z ^ tf.bitwise.right_shift(z, _u32(13))) * _u32(0xC2B2AE35)
    return z ^ tf.bitwise.right_shift(z, _u32(16))


def row_hashes(values: tf.Tensor) -> tf.Tensor:
    """A 32-bit hash of each row's bits (batch first, float32 or bool): uint32 (B,)."""
    if values.dtype == tf.bool:
        values = tf.cast(values, tf.float32)
    bits = tf.reshape(tf.bitcast(tf.cast(values, tf.float32), tf.uint32), (tf.shape(values)[0], -1))
    position = tf.cast(tf.range(tf.shape(bits)[1]), tf.uint32)
    weights = ((2 * position + 1) * _u32(0x9E37)) & _u32(0xFFFFF)  # odd 20-bit multipliers
    return tf.reduce_sum(bits * weights, axis=1)


def image_hashes(images: tf.Tensor) -> tf.Tensor:
    """A 32-bit hash of each image's float32 bits: uint32 (B,)."""
    return row_hashes(images)


def combine(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """One key from two uint32 hashes (e.g. an image's and its mask's)."""
    return finalise(first ^ finalise(second))


def _counter_bits(keys: tf.Tensor, seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    seed = tf.cast(tf.cast(seed, tf.int64) & 0xFFFFFFFF, tf.uint32)
    index = tf.cast(tf.range(count), tf.uint32)
    return finalise((keys[:, None] ^ seed) + (index[None, :] + 1) * _u32(_GOLDEN))


def hashed_uniform(keys: tf.Tensor, seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """`count` numbers per key, uniform in (0, 1] on a 2**-24 grid: float32 (B, count).

    Args:
        keys: uint32 (B,), e.g. `image_hashes(images)`.
        seed: an integer scalar in [0, 2**32).
        count: how many numbers each key gets.
    """
    high = tf.bitwise.right_shift(_counter_bits(keys, seed, count), _u32(8))
    return (tf.cast(high, tf.float32) + 1.0) / float(1 << 24)  # exact, in (0, 1]


def hashed_normal(keys: tf.Tensor, seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """`count` standard normal numbers per key: float32 (B, count), the normal quantile of
    a 24-bit uniform at the middle of its cell (so |x| <= 5.3)."""
    high = tf.bitwise.right_shift(_counter_bits(keys, seed, count), _u32(8))
    return tf.math.ndtri((tf.cast(high, tf.float32) + 0.5) / float(1 << 24))
