"""Seeded randomness that depends only on an image's own pixels and a seed.

`tf.random` streams depend on the order of the calls, so a result would change with the
batching or the distribution of the images. Here every random number is a hash of the
image's bits, the seed and the number's index (murmur3's 32-bit finaliser), so the same
image gets the same numbers in any batch, on any replica.
"""

from __future__ import annotations

import math

import tensorflow as tf

_MASK32 = 0xFFFFFFFF


def _shr(a: tf.Tensor, bits: int) -> tf.Tensor:
    return a // (1 << bits)  # a >= 0 here; tensors have no shift operators


def _mul32(a: tf.Tensor, constant: int) -> tf.Tensor:
    # (a * constant) mod 2**32 for 0 <= a < 2**32 in int64, without overflow.
    high = (_shr(a, 16) * constant & 0xFFFF) * (1 << 16)
    return high + (a & 0xFFFF) * constant & _MASK32


def image_hashes(images: tf.Tensor) -> tf.Tensor:
    """A 32-bit hash of each image's float32 bits: int64 (B,)."""
    shape = tf.shape(images)
    bits = tf.reshape(tf.bitcast(tf.cast(images, tf.float32), tf.int32), (shape[0], -1))
    bits = tf.cast(bits, tf.int64) & _MASK32
    position = tf.range(tf.shape(bits)[1], dtype=tf.int64)
    weights = (2 * position + 1) * 0x9E37 & 0xFFFFF  # odd 20-bit multipliers
    return tf.reduce_sum(bits * weights & _MASK32, axis=1) & _MASK32


def hashed_uniform(keys: tf.Tensor, seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """`count` numbers per key, uniform in (0, 1]: float32 (len(keys), count).

    Args:
        keys: int64 (B,) values in [0, 2**32), e.g. `image_hashes(images)`.
        seed: int64 scalar.
        count: how many numbers each key gets.
    """
    index = tf.range(tf.cast(count, tf.int64), dtype=tf.int64)
    z = (keys[:, None] ^ (seed & _MASK32)) + (index[None, :] + 1) * 0x9E3779B9 & _MASK32
    # murmur3's 32-bit finaliser: every input bit affects every output bit.
    z = _mul32(z ^ _shr(z, 16), 0x85EBCA6B)
    z = _mul32(z ^ _shr(z, 13), 0xC2B2AE35)
    z = z ^ _shr(z, 16)
    return tf.cast(_shr(z, 8) + 1, tf.float32) / float(1 << 24)  # exact, in (0, 1]


def hashed_normal(keys: tf.Tensor, seed: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """`count` standard normal numbers per key (Box-Muller): float32 (len(keys), count)."""
    uniform = hashed_uniform(keys, seed, 2 * count)
    radius = tf.sqrt(-2.0 * tf.math.log(uniform[:, :count]))  # u in (0, 1]: finite
    return radius * tf.cos(2.0 * math.pi * uniform[:, count:])
