"""A user's own fills and order, each written in this one file without touching the
package, run by the evaluator and compared with the plain numpy reference."""

import numpy as np
import pytest
import tensorflow as tf

from reference_deletion import reference_allegiance
from tf_signsal.evaluation import AllegianceEvaluator, Fill, Order, deletion_masks, random_maps
from tf_signsal.evaluation.orders import lerf_counts
from tf_signsal.maps import SignedSaliency

# ----------------------------------------------------------------------------- user code


class ChannelMax(Fill):
    """Image-derived (mask-independent): each pixel's largest channel, in every channel."""

    name = "channel_max"

    def values(self, images):
        return tf.broadcast_to(tf.reduce_max(images, axis=-1, keepdims=True), tf.shape(images))


class KeptMax(Fill):
    """Mask-dependent: each deleted pixel takes the per-channel maximum of the pixels the
    mask keeps (0 when it keeps none)."""

    name = "kept_max"

    def occlude(self, images, masks):
        deleted = masks[..., None]
        top = tf.reduce_max(tf.where(deleted, -np.inf, images), axis=(1, 2), keepdims=True)
        top = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))
        return tf.where(deleted, top, images)


class TopK(Order):
    """The round(p * N) largest pixels, zeros and ties included (ties by the later pixel
    index): MoRF without the paper's tie and zero rule. Lower is better."""

    name = "top_k"
    uses_ranks = True

    def mask(self, ranking):
        return ranking.rank >= ranking.num_pixels - ranking.count

    def filled(self, morf, fractions, num_pixels):
        return np.broadcast_to(lerf_counts(fractions, num_pixels), morf.shape)


# ----------------------------------------------------------------------------- numpy


def channel_max(image, mask):
    return np.repeat(image.max(axis=-1, keepdims=True), image.shape[-1], axis=-1)


def kept_max(image, mask):
    top = image[~mask].max(axis=0) if (~mask).any() else np.zeros(image.shape[-1], np.float32)
    return np.broadcast_to(top, image.shape)


def top_k_mask(saliency, fraction):
    flat = saliency.reshape(-1)
    count = min(round(fraction * flat.size), flat.size)
    order = sorted(range(flat.size), key=lambda i: (flat[i], i))  # stable ascending
    mask = np.zeros(flat.size, bool)
    mask[order[flat.size - count:]] = True
    return mask.reshape(saliency.shape)


@pytest.mark.parametrize("batch_size, memory_budget", [(4, 32 * 2**20), (3, 1)])
def test_user_fills_and_order_match_the_numpy_reference(model, rng, batch_size, memory_budget):
    images = rng.random((7, 8, 8, 3), dtype=np.float32)
    fractions = (0.0, 0.1, 0.5, 0.9)
    pairs = [("positive", ChannelMax()), ("negative", KeptMax()), ("random", KeptMax()),
             ("standard", "black")]
    result = AllegianceEvaluator(
        model, pairs=pairs, fractions=fractions, orders=("morf", TopK(), "insertion"),
        batch_size=batch_size, memory_budget=memory_budget, seed=2,
    ).evaluate(images, verbose=0)
    keys = [("positive", "channel_max"), ("negative", "kept_max"), ("random", "kept_max"),
            ("standard", "black")]
    assert result.pairs == tuple(keys) and result.orders == ("morf", "top_k", "insertion")
    maps = {m: v.numpy() for m, v in SignedSaliency(model).explain(
        images, methods=["positive", "negative", "standard"]).items()}
    maps["random"] = random_maps(tf.constant(images), tf.constant(2, tf.int64)).numpy()
    for order in result.orders:
        curves, auc, deleted, _ = reference_allegiance(
            model, images, maps, keys, fractions,
            order=top_k_mask if order == "top_k" else order,
            image_fills={"channel_max": channel_max, "kept_max": kept_max},
        )
        for pair in keys:
            np.testing.assert_array_equal(result.order_curves[order][pair], curves[pair])
            np.testing.assert_allclose(result.order_deleted[order][pair], deleted[pair],
                                       rtol=1e-12)
    # The result names the user's order without knowing which way is better.
    assert "Allegiance, top_k over 7 images" in result.summary()
    masks = deletion_masks(maps["positive"], fractions, TopK()).numpy()
    for b in range(len(images)):
        for j, p in enumerate(fractions):
            np.testing.assert_array_equal(masks[b, j], top_k_mask(maps["positive"][b], p))


def test_a_user_fill_must_define_one_method_and_a_name(model):
    class Neither(Fill):
        name = "neither"

    class Nameless(ChannelMax):
        name = ""

    class Impostor(ChannelMax):
        name = "blur"

    class WrongShape(ChannelMax):
        name = "wrong_shape"

        def values(self, images):
            return images[:, :1]

    for fill, error, message in [
        (Neither(), TypeError, "exactly one of"),
        (Nameless(), ValueError, "starts with a letter"),
        (Impostor(), ValueError, "name of its own"),
    ]:
        with pytest.raises(error, match=message):
            AllegianceEvaluator(model, pairs=[("positive", fill)])
    evaluator = AllegianceEvaluator(model, pairs=[("positive", WrongShape())])
    with pytest.raises(ValueError, match="the images' shape"):
        evaluator.evaluate(np.zeros((2, 8, 8, 3), np.float32), verbose=0)
