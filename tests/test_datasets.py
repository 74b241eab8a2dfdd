"""The synthetic signs dataset and the pointing game, against plain loops."""

import itertools

import numpy as np
import pytest

from tf_signsal.datasets import (
    CHANCE,
    POINTING_GROUPS,
    RANDOM_MAP,
    SYNTHETIC_CLASS_IS_BRIGHT,
    SYNTHETIC_CLASS_NAMES,
    pointing_game,
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
    "kwargs, error, match",
    [
        ({"n": -1}, ValueError, "`n` must be a non-negative integer, received -1"),
        ({"n": 2.5}, TypeError, "`n` must be an integer, received 2.5"),
        ({"n": 4, "image_size": 4}, ValueError, "`image_size` must be an integer >= 8"),
        ({"n": 4, "seed": -2}, ValueError, "`seed` must be a non-negative integer"),
        ({"n": True}, TypeError, "`n` must be an integer"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
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


def _reference_pointing_game(maps, masks, labels, seed, top_fraction):
    """The pointing game image by image: a plain loop over images and groups, each image
    scored alone (`pointing_score` is checked against enumeration above)."""
    rows = {**maps, "random map": np.random.default_rng(seed).random(masks.shape)}
    scores = {}
    for name, values in rows.items():
        found = {"bright classes": [], "dark classes": [], "all": []}
        for image_map, mask, label in zip(values, masks, labels):
            score = pointing_score(image_map[None], mask[None], top_fraction)
            found["bright classes" if SYNTHETIC_CLASS_IS_BRIGHT[label] else "dark classes"].append(
                score
            )
            found["all"].append(score)
        scores[name] = {group: np.mean(found[group]) for group in found}
    area = {"bright classes": [], "dark classes": [], "all": []}
    for mask, label in zip(masks, labels):
        area["bright classes" if SYNTHETIC_CLASS_IS_BRIGHT[label] else "dark classes"].append(
            mask.mean()
        )
        area["all"].append(mask.mean())
    scores["chance (shape area)"] = {group: np.mean(area[group]) for group in area}
    return scores


@pytest.mark.parametrize("top_fraction", [0.05, 0.2])
def test_pointing_game_matches_a_plain_loop(rng, top_fraction):
    _, labels, masks = synthetic_signs(12, image_size=8, seed=4)
    # Few distinct values, so ties at the k-th value are common.
    maps = {"coarse": rng.integers(0, 4, masks.shape).astype(np.float32), "mask": masks * 1.0}
    scores = pointing_game(maps, masks, labels, seed=7, top_fraction=top_fraction)
    expected = _reference_pointing_game(maps, masks, labels, 7, top_fraction)
    assert list(scores) == ["coarse", "mask", RANDOM_MAP, CHANCE] == list(expected)
    for name, row in scores.items():
        assert tuple(row) == POINTING_GROUPS
        for group, value in row.items():
            assert isinstance(value, float)
            assert value == pytest.approx(expected[name][group], rel=1e-12), (name, group)


def test_pointing_game_random_map_follows_the_seed_and_an_empty_group_is_nan():
    _, labels, masks = synthetic_signs(16, image_size=16, seed=1)
    bright = np.array(SYNTHETIC_CLASS_IS_BRIGHT)[labels]
    maps = {"mask": masks[bright] * 1.0}
    first = pointing_game(maps, masks[bright], labels[bright], seed=3)
    np.testing.assert_equal(first, pointing_game(maps, masks[bright], labels[bright], seed=3))
    other = pointing_game(maps, masks[bright], labels[bright], seed=4)
    assert other[RANDOM_MAP]["all"] != first[RANDOM_MAP]["all"]
    np.testing.assert_equal(other["mask"], first["mask"])
    assert all(np.isnan(row["dark classes"]) for row in first.values())
    assert first[CHANCE]["all"] == pytest.approx(masks[bright].mean())


@pytest.mark.parametrize(
    "labels, maps, error, match",
    [
        (np.full(4, 8), None, ValueError, r"`labels` must be class indices in \[0, 8\)"),
        (np.zeros(4), None, TypeError, "`labels` must hold integer class indices"),
        (np.zeros(3, int), None, ValueError, "`labels` must hold one class index per image"),
        (np.zeros(4, int), {RANDOM_MAP: np.zeros((4, 8, 8))}, ValueError, "reference rows"),
        (np.zeros(4, int), {"flat": np.zeros((4, 8))}, ValueError, "`maps` must have shape"),
    ],
)
def test_pointing_game_bad_arguments(labels, maps, error, match):
    masks = np.zeros((4, 8, 8), bool)
    with pytest.raises(error, match=match):
        pointing_game(maps or {"zero": np.zeros((4, 8, 8))}, masks, labels)
