"""The synthetic signs dataset and the pointing game, against plain loops."""

import itertools

import numpy as np
import pytest

from tf_signsal.datasets import (
    SYNTHETIC_CLASS_IS_BRIGHT,
    SYNTHETIC_CLASS_NAMES,
    pointing_score,
    synthetic_signs,
)


def test_shapes_types_range_and_balance():
    images, labels, masks = synthetic_signs(40, image_size=24, seed=3)
    assert images.shape == (40, 24, 24, 3) and images.dtype == np.float32
    assert labels.shape == (40,) and labels.dtype == np.int64
    assert masks.shape == (40, 24, 24) and masks.dtype == bool
    assert images.min() >= 0.0 and images.max() <= 1.0
    counts = np.bincount(labels, minlength=len(SYNTHETIC_CLASS_NAMES))
    assert counts.max() - counts.min() <= 1
    assert len(SYNTHETIC_CLASS_NAMES) == len(SYNTHETIC_CLASS_IS_BRIGHT) == 8


def test_seed_determinism():
    first = synthetic_signs(10, seed=5)
    again = synthetic_signs(10, seed=5)
    other = synthetic_signs(10, seed=6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_empty():
    images, labels, masks = synthetic_signs(0)
    assert images.shape == (0, 32, 32, 3) and labels.shape == (0,) and masks.shape == (0, 32, 32)


def test_shape_is_brighter_or_darker_than_its_surroundings():
    images, labels, masks = synthetic_signs(80, seed=1)
    for image, label, mask in zip(images, labels, masks):
        assert mask.sum() >= 9
        grey = image.mean(axis=-1)
        # The ring of pixels within 3 px of the shape, outside it.
        rows, cols = np.nonzero(mask)
        ring = np.zeros_like(mask)
        ring[
            max(rows.min() - 3, 0) : rows.max() + 4, max(cols.min() - 3, 0) : cols.max() + 4
        ] = True
        ring &= ~mask
        difference = grey[mask].mean() - grey[ring].mean()
        if SYNTHETIC_CLASS_IS_BRIGHT[label]:
            assert difference > 0.12, (SYNTHETIC_CLASS_NAMES[label], difference)
        else:
            assert difference < -0.12, (SYNTHETIC_CLASS_NAMES[label], difference)


def test_pairs_share_a_place_and_only_the_sign_differs():
    _, labels, masks = synthetic_signs(400, seed=2)
    rows, cols = np.indices(masks.shape[1:]) + 0.5
    centroids = np.array(
        [[(rows * m).sum() / m.sum(), (cols * m).sum() / m.sum()] for m in masks]
    )
    mean_place = np.array([centroids[labels == c].mean(0) for c in range(8)])
    for bright, dark in zip(range(0, 8, 2), range(1, 8, 2)):
        assert SYNTHETIC_CLASS_IS_BRIGHT[bright] and not SYNTHETIC_CLASS_IS_BRIGHT[dark]
        assert SYNTHETIC_CLASS_NAMES[bright].split(" ", 1)[1] == (
            SYNTHETIC_CLASS_NAMES[dark].split(" ", 1)[1]
        )
        np.testing.assert_allclose(mean_place[bright], mean_place[dark], atol=1.0)
    # Different places really are apart (more than the jitter).
    for a, b in itertools.combinations(range(0, 8, 2), 2):
        assert np.abs(mean_place[a] - mean_place[b]).max() > 5


@pytest.mark.parametrize(
    "kwargs", [{"n": -1}, {"n": 2.5}, {"n": 4, "image_size": 4}, {"n": 4, "seed": -2}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be an integer"):
        synthetic_signs(**kwargs)


def _reference_pointing(maps, masks, top_fraction):
    """Expected top-k share with ties broken uniformly at random, by enumeration."""
    scores = []
    for m, mask in zip(maps, masks):
        values, inside = m.reshape(-1), mask.reshape(-1)
        k = max(1, round(top_fraction * values.size))
        kth = sorted(values, reverse=True)[k - 1]
        above = [i for i in range(values.size) if values[i] > kth]
        tied = [i for i in range(values.size) if values[i] == kth]
        draws = [
            sum(inside[i] for i in above) + sum(inside[i] for i in chosen)
            for chosen in itertools.combinations(tied, k - len(above))
        ]
        scores.append(np.mean(draws) / k)
    return np.array(scores)


@pytest.mark.parametrize("top_fraction", [0.05, 0.2, 0.5, 1.0])
def test_pointing_score_matches_reference_with_ties(rng, top_fraction):
    # Few distinct values, so ties at the k-th value are common.
    maps = rng.integers(0, 4, (6, 4, 5)).astype(np.float32)
    masks = rng.random((6, 4, 5)) < 0.3
    expected = _reference_pointing(maps, masks, top_fraction)
    np.testing.assert_allclose(
        pointing_score(maps, masks, top_fraction, reduce=False), expected, rtol=1e-12
    )
    assert pointing_score(maps, masks, top_fraction) == pytest.approx(expected.mean(), rel=1e-12)


def test_pointing_score_chance_and_perfect_maps(rng):
    _, _, masks = synthetic_signs(200, seed=0)
    area = masks.mean()
    assert pointing_score(np.zeros(masks.shape), masks) == pytest.approx(area, rel=1e-9)
    assert pointing_score(rng.random(masks.shape), masks) == pytest.approx(area, abs=0.01)
    # The mask itself as a map: every top pixel is inside while the mask has k pixels.
    k = round(0.05 * 32 * 32)
    expected = np.minimum(masks.reshape(200, -1).sum(1), k) / k
    np.testing.assert_allclose(
        pointing_score(masks.astype(float), masks, reduce=False), expected, rtol=1e-12
    )


@pytest.mark.parametrize(
    "maps, masks, fraction, match",
    [
        (np.zeros((2, 4)), np.zeros((2, 4), bool), 0.1, "`maps` must have shape"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool), 0.1, "`masks` must be a bool array"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 0.1, "`masks` must be a bool array"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4), bool), 0.0, "`top_fraction`"),
        (np.full((2, 4, 4), np.nan), np.zeros((2, 4, 4), bool), 0.1, "finite"),
        (np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool), 0.1, "at least one map"),
    ],
)
def test_pointing_score_bad_arguments(maps, masks, fraction, match):
    with pytest.raises(ValueError, match=match):
        pointing_score(maps, masks, fraction)
