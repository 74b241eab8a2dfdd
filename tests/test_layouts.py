"""Layouts the package must never explain or rank silently wrong: float64 maps of a user's
explainer (ranked without losing their order)."""

import numpy as np
import pytest

from tf_signsal import _checks
from tf_signsal.evaluation import AllegianceEvaluator, deletion_masks

# ----------------------------------------------------------------------------- float64 maps


def _ranked(images, dtype, offset, step):
    """Maps offset + step * k, k = 1..N the rank of each pixel's first channel in its image."""
    flat = np.asarray(images)[..., 0].reshape(len(images), -1)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1, kind="stable") + 1
    return (offset + ranks * step).reshape(np.shape(images)[:3]).astype(dtype)


def _fine(images):  # float64 values 1 + k * 1e-12: one value once cast to float32
    return {"m": _ranked(images, np.float64, 1.0, 1e-12)}


def _coarse(images):  # the same order as float32 values k
    return {"m": _ranked(images, np.float32, 0.0, 1.0)}


def test_float64_maps_are_ranked_without_losing_their_order(model, rng):
    images = rng.random((5, 8, 8, 3), dtype=np.float32)
    fine = _fine(images)["m"]
    assert np.unique(fine.astype(np.float32)).size == 1  # the cast would make all ties
    fractions = (0.0, 0.1, 0.5, 0.9)
    pairs = [("m", "black"), ("m", "white"), ("random", "black")]
    results = [
        AllegianceEvaluator(
            model, pairs=pairs, fractions=fractions, orders=("morf", "lerf", "insertion"),
            explainer=explainer, batch_size=2,
        ).evaluate(images, verbose=0)
        for explainer in (_fine, _coarse)
    ]
    fine_result, coarse_result = results
    assert (fine_result.order_deleted["morf"][("m", "black")][1:] > 0).all()  # it deletes
    for order in fine_result.orders:
        for pair in fine_result.pairs:
            np.testing.assert_array_equal(fine_result.order_curves[order][pair],
                                          coarse_result.order_curves[order][pair])
            np.testing.assert_array_equal(fine_result.order_deleted[order][pair],
                                          coarse_result.order_deleted[order][pair])
        np.testing.assert_array_equal(
            deletion_masks(fine, fractions, order).numpy(),
            deletion_masks(_coarse(images)["m"], fractions, order).numpy(),
        )


@pytest.mark.parametrize("dtype, kept", [(np.float64, "float64"), (np.float16, "float32"),
                                         (np.int32, "float32"), (np.float32, "float32")])
def test_explainer_maps_keep_float64_and_widen_the_rest_to_float32(dtype, kept, images):
    returned = {"m": np.ones(images.shape[:3], dtype)}
    assert _checks.explainer_maps(returned, None, images)["m"].dtype.name == kept
