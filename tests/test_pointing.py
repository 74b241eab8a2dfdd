"""The pointing game over any groups of images (evaluation/pointing.py), against a plain
loop; `pointing_score` itself is checked by enumeration in test_datasets.py."""

import numpy as np
import pytest

from tf_signsal.evaluation.pointing import CHANCE, RANDOM_MAP, pointing_game, pointing_score


def _reference(maps, masks, groups, seed, top_fraction):
    """Image by image: each image scored alone, then averaged over each group's images."""
    rows = {**maps, RANDOM_MAP: np.random.default_rng(seed).random(masks.shape)}
    scores = {}
    for name, values in rows.items():
        scores[name] = {}
        for group, chosen in groups.items():
            found = [
                pointing_score(values[i][None], masks[i][None], top_fraction)
                for i in range(len(masks)) if chosen[i]
            ]
            scores[name][group] = np.mean(found) if found else np.nan
    scores[CHANCE] = {
        group: np.mean([masks[i].mean() for i in range(len(masks)) if chosen[i]])
        if chosen.any() else np.nan
        for group, chosen in groups.items()
    }
    return scores


@pytest.mark.parametrize("top_fraction", [0.05, 0.3])
def test_pointing_game_matches_a_plain_loop(rng, top_fraction):
    masks = rng.random((10, 6, 6)) < 0.3
    # Few distinct values, so ties at the k-th value are common.
    maps = {"coarse": rng.integers(0, 3, masks.shape).astype(np.float32), "mask": masks * 1.0}
    groups = {"odd": np.arange(10) % 2 == 1, "none": np.zeros(10, bool), "first": np.arange(10) < 3}
    scores = pointing_game(maps, masks, groups, seed=5, top_fraction=top_fraction)
    expected = _reference(maps, masks, groups, 5, top_fraction)
    assert list(scores) == ["coarse", "mask", RANDOM_MAP, CHANCE]
    for name, row in scores.items():
        assert list(row) == list(groups)
        for group, value in row.items():
            assert isinstance(value, float)
            np.testing.assert_allclose(value, expected[name][group], rtol=1e-12)
    assert np.isnan(scores["mask"]["none"])


def test_without_groups_every_image_is_one_group(rng):
    masks = rng.random((4, 5, 5)) < 0.5
    maps = {"mask": masks * 1.0}
    scores = pointing_game(maps, masks, seed=2)
    assert scores == pointing_game(maps, masks, {"all": np.ones(4, bool)}, seed=2)
    assert scores[CHANCE]["all"] == pytest.approx(masks.mean())


@pytest.mark.parametrize(
    "groups, maps, seed, error, match",
    [
        ({"a": np.ones(3, bool)}, None, 0, ValueError, r"`groups` .* one entry per image \(4\)"),
        ({"a": np.ones(4)}, None, 0, ValueError, "`groups` must map each name to a bool array"),
        (None, {CHANCE: np.zeros((4, 8, 8))}, 0, ValueError, "reference rows"),
        (None, None, -1, ValueError, "`seed`"),
    ],
)
def test_bad_arguments(groups, maps, seed, error, match):
    masks = np.zeros((4, 8, 8), bool)
    with pytest.raises(error, match=match):
        pointing_game(maps or {"zero": np.zeros((4, 8, 8))}, masks, groups, seed=seed)
