"""The "random" control: a seeded random ranking of each image's pixels.

A hash of the image's own bits and the seed, so that a result never depends on
how the images are batched or distributed (tf.random would).
"""

from __future__ import annotations

import tensorflow as tf

_MASK32 = 0xFFFFFFFF


def _shr(a: tf.Tensor, bits: int) -> tf.Tensor:
    return a // (1 << bits)  # a >= 0 here; tensors have no shift operators


def _mul32(a: tf.Tensor, constant: int) -> tf.Tensor:
    # (a * constant) mod 2**32 for 0 <= a < 2**32 in int64, without overflow.
    high = (_shr(a, 16) * constant & 0xFFFF) * (1 << 16)
    return high + (a & 0xFFFF) * constant & _MASK32


@tf.function(reduce_retracing=True)
def random_maps(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The "random" control: a seeded random ranking of each image's pixels.

    Values are uniform in (0, 1] (never zero, so every pixel can be deleted)
    and depend only on the image's own pixels and `seed`: a result never
    depends on how the images are batched or distributed.

    Args:
        images: float32 (B, H, W, ch).
        seed: int64 scalar.

    Returns:
        float32 (B, H, W).
    """
    shape = tf.shape(images)
    bits = tf.reshape(tf.bitcast(images, tf.int32), (shape[0], -1))
    bits = tf.cast(bits, tf.int64) & _MASK32
    position = tf.range(tf.shape(bits)[1], dtype=tf.int64)
    weights = (2 * position + 1) * 0x9E37 & 0xFFFFF  # odd 20-bit multipliers
    image_hash = tf.reduce_sum(bits * weights & _MASK32, axis=1) & _MASK32
    pixel = tf.range(tf.cast(shape[1] * shape[2], tf.int64), dtype=tf.int64)
    z = (image_hash[:, None] ^ (seed & _MASK32)) + (pixel[None, :] + 1) * 0x9E3779B9 & _MASK32
    # murmur3's 32-bit finaliser: every input bit affects every output bit.
    z = _mul32(z ^ _shr(z, 16), 0x85EBCA6B)
    z = _mul32(z ^ _shr(z, 13), 0xC2B2AE35)
    z = z ^ _shr(z, 16)
    values = tf.cast(_shr(z, 8) + 1, tf.float32) / float(1 << 24)  # exact, in (0, 1]
    return tf.reshape(values, shape[:3])
