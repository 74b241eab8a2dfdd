"""The pointing game: do a map's top pixels fall on the object that ground truth marks?

`pointing_score` is the metric of one map batch: the share of each map's top pixels
inside its mask. `pointing_game` scores several maps that way over groups of images,
beside a seeded random map (`RANDOM_MAP`) and chance (`CHANCE`, the masks' area share).
`tf_signsal.data.synthetic.pointing_game` plays it on `synthetic_signs` images, whose
bright and dark classes are the groups. Numpy only: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tf_signsal import _checks

RANDOM_MAP = "random map"
CHANCE = "chance (shape area)"
"""The two reference rows of `pointing_game`: a seeded uniform random map, and chance."""


def pointing_score(
    maps: Any, masks: Any, top_fraction: float = 0.05, reduce: bool = True
) -> float | np.ndarray:
    """The share of each map's top pixels that fall inside the ground-truth mask.

    For each image, the k = max(1, round(top_fraction * H * W)) highest pixels
    of its map are taken, and the score is the fraction of them inside the
    mask. Pixels tied at the k-th value are shared out fractionally (the
    expected score when ties are broken at random), so a constant map, like a
    random one, scores the mask's area share: that is the chance level.

    Args:
        maps: float array (B, H, W), e.g. `SignedSaliency.explain(...)["positive"]`.
        masks: bool array (B, H, W), True inside the object.
        top_fraction: the share of pixels taken from each map, in (0, 1].
        reduce: True for the mean over images, False for one score per image.

    Returns:
        A float in [0, 1], or a float64 array (B,) when `reduce` is False.

    Example:
        >>> maps = saliency.explain(images)
        >>> pointing_score(maps["positive"], masks)            # vs masks.mean() by chance
    """
    maps = np.asarray(maps, np.float64)
    masks = np.asarray(masks)
    if maps.ndim != 3:
        raise ValueError(f"`maps` must have shape (batch, height, width), received {maps.shape}")
    if masks.shape != maps.shape or masks.dtype != bool:
        raise ValueError(
            f"`masks` must be a bool array of the maps' shape {maps.shape}, "
            f"received {masks.dtype} {masks.shape}"
        )
    if len(maps) == 0 or not np.all(np.isfinite(maps)):
        raise ValueError(
            f"`maps` must hold at least one map and only finite values, received shape {maps.shape}"
        )
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"`top_fraction` must be in (0, 1], received {top_fraction!r}")
    flat = maps.reshape(len(maps), -1)
    inside = masks.reshape(len(masks), -1)
    k = max(1, round(top_fraction * flat.shape[1]))
    kth = -np.partition(-flat, k - 1, axis=1)[:, k - 1 : k]  # the k-th largest value
    above = flat > kth
    tied = flat == kth
    # Of the tied pixels, k - (number above) are taken; each is inside the mask
    # with probability (tied inside) / (tied).
    taken_from_ties = k - above.sum(axis=1)
    hits = (above & inside).sum(axis=1) + taken_from_ties * (tied & inside).sum(1) / tied.sum(1)
    scores = hits / k
    return float(scores.mean()) if reduce else scores


def pointing_game(
    maps: Mapping[str, Any],
    masks: Any,
    groups: Mapping[str, Any] | None = None,
    seed: int = 0,
    top_fraction: float = 0.05,
) -> dict[str, dict[str, float]]:
    """The pointing game of several maps, by group of images.

    Each map's `pointing_score` is averaged over the images of each group. Two
    reference rows follow the maps: `RANDOM_MAP`, a seeded uniform random map (it
    scores about chance), and `CHANCE`, the mean share of the image the mask covers
    (the expected score of a map that knows nothing). A group without images scores NaN.

    Args:
        maps: name -> (B, H, W) maps (arrays or tensors), e.g. `SignedSaliency.explain`'s.
        masks: bool (B, H, W), True on the object each map should point at.
        groups: group name -> bool (B,), the images of the group, in the order of the
            result; None for one group, "all", of every image.
        seed: seed of the random map.
        top_fraction: the share of pixels taken from each map, in (0, 1].

    Returns:
        A dict name -> group -> mean score: the maps in the order given, then
        `RANDOM_MAP` and `CHANCE`.

    Example:
        >>> scores = pointing_game({"positive": maps["positive"]}, masks,
        ...                        {"bright": labels % 2 == 0, "dark": labels % 2 == 1})
        >>> scores["positive"]["bright"], scores[CHANCE]["bright"]
    """
    masks = np.asarray(masks)
    seed = _checks.non_negative_int("seed", seed)
    if groups is None:
        groups = {"all": np.ones(len(masks), bool)}
    chosen_images = {name: np.asarray(chosen) for name, chosen in groups.items()}
    for name, chosen in chosen_images.items():
        if chosen.dtype != bool or chosen.shape != masks.shape[:1]:
            raise ValueError(
                f"`groups` must map each name to a bool array with one entry per image "
                f"({len(masks)}), received {chosen.dtype} {chosen.shape} for {name!r}"
            )
    reserved = sorted({RANDOM_MAP, CHANCE}.intersection(maps))
    if reserved:
        raise ValueError(f"`maps` must not use the names of the reference rows {reserved}")
    random_map = np.random.default_rng(seed).random(masks.shape)
    scores = {}
    for name, values in {**maps, RANDOM_MAP: random_map}.items():
        per_image = pointing_score(values, masks, top_fraction, reduce=False)
        scores[name] = {group: _mean(per_image[c]) for group, c in chosen_images.items()}
    scores[CHANCE] = {group: _mean(masks[c]) for group, c in chosen_images.items()}
    return scores


def _mean(values: np.ndarray) -> float:
    """The mean as a float; NaN (without numpy's warning) when there is no value."""
    return float(values.mean()) if values.size else float("nan")
