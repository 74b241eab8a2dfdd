"""Plain numpy reference for the deletion benchmark (spec section 2.2): loops over
pairs, fractions and images; np.sort, the threshold rule, the fill, model(x) argmax."""

import numpy as np


def reference_mask(saliency, fraction):
    """(H, W) bool: (m > v) & (m != 0), v = descending-sorted value at round(p * N)."""
    ordered = np.sort(saliency.reshape(-1))[::-1]
    # round(p * N) can reach N for p close to 1 on tiny maps: the last value then.
    v = ordered[min(round(fraction * ordered.size), ordered.size - 1)]
    return (saliency > v) & (saliency != 0)


def reference_lerf_mask(saliency, fraction):
    """(H, W) bool: the round(p * N) smallest pixels, ties by row-major pixel index."""
    flat = saliency.reshape(-1)
    count = min(round(fraction * flat.size), flat.size)
    order = sorted(range(flat.size), key=lambda i: (flat[i], i))  # stable ascending
    mask = np.zeros(flat.size, bool)
    mask[order[:count]] = True
    return mask.reshape(saliency.shape)


def reference_order_mask(saliency, fraction, order):
    """The pixels the fill replaces: MoRF's rule, LeRF's, or MoRF's complement; or a
    function (saliency, fraction) -> mask."""
    if callable(order):
        return order(saliency, fraction)
    if order == "lerf":
        return reference_lerf_mask(saliency, fraction)
    mask = reference_mask(saliency, fraction)
    return ~mask if order == "insertion" else mask


def reference_allegiance(model, images, maps, pairs, fractions, value_range=(0.0, 1.0),
                         labels=None, order="morf", image_fills=None):
    """Curves, AUCs, deleted fractions and accuracies, one (pair, fraction) at a time.

    `maps` is a dict method -> (B, H, W) numpy array. A pair's fill is "black", "white",
    a number or one per channel, or a key of `image_fills`, which maps it to a function
    (image (H, W, ch), mask (H, W)) -> filled image (H, W, ch) whose masked pixels are
    taken (e.g. a blurred copy, or ROAD's imputation of that mask).
    """
    image_fills = image_fills or {}
    images = np.asarray(images, np.float32)
    intact = np.asarray(model(images, training=False)).argmax(axis=1)
    curves, deleted, accuracy, auc = {}, {}, {}, {}
    for method, fill in pairs:
        fill_value = {"black": value_range[0], "white": value_range[1]}.get(fill, fill)
        curve, removed, correct = [], [], []
        for p in fractions:
            occluded = images.copy()
            counts = []
            for b in range(len(images)):
                mask = reference_order_mask(maps[method][b], p, order)
                if isinstance(fill, str) and fill in image_fills:
                    occluded[b][mask] = image_fills[fill](images[b], mask)[mask]
                else:
                    occluded[b][mask] = fill_value  # all channels of a masked pixel
                counts.append(mask.sum() / mask.size)
            predicted = np.asarray(model(occluded, training=False)).argmax(axis=1)
            curve.append(np.mean(predicted == intact))
            removed.append(np.mean(counts))
            if labels is not None:
                correct.append(np.mean(predicted == np.asarray(labels)))
        pair = (method, fill)
        curves[pair] = np.array(curve)
        deleted[pair] = np.array(removed)
        accuracy[pair] = np.array(correct)
        auc[pair] = sum(
            (curve[j] + curve[j - 1]) / 2 * (fractions[j] - fractions[j - 1])
            for j in range(1, len(fractions))
        )
    return curves, auc, deleted, (accuracy if labels is not None else None)
