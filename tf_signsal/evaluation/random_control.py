"""The "random" control: a seeded random ranking of each image's pixels.

A hash of the image's own bits and the seed, so that a result never depends on
how the images are batched or distributed (tf.random would).
"""

from __future__ import annotations

import tensorflow as tf

from tf_signsal._random import hashed_uniform, image_hashes


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
    values = hashed_uniform(image_hashes(images), seed, shape[1] * shape[2])
    return tf.reshape(values, shape[:3])
