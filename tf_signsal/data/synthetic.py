"""A synthetic dataset whose ground truth is known, and the pointing game that uses it.

Each class of `synthetic_signs` is one shape, at one place, that is either
brighter or darker than a textured mid-grey background. The classes come in
bright/dark pairs at the same place ("bright square top-left" and "dark square
top-left", ...), so only the sign of the contrast tells a pair apart: a
classifier must learn it, and a sign-aware map can be checked against it. For
a bright class the positive map (pixels that should be brighter) should point
at the shape; for a dark class the negative map should.

`pointing_game` measures that with the evaluation's pointing game
(`tf_signsal.evaluation.pointing`, which also gives `pointing_score`, `RANDOM_MAP`
and `CHANCE`, re-exported here): the share of each map's top pixels that fall
inside the shape, for the bright classes, the dark classes and all, beside a
random map and chance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from tf_signsal import _checks
from tf_signsal.evaluation import pointing
from tf_signsal.evaluation.pointing import CHANCE, RANDOM_MAP, pointing_score

__all__ = [
    "CHANCE", "POINTING_GROUPS", "RANDOM_MAP", "SYNTHETIC_CLASS_IS_BRIGHT",
    "SYNTHETIC_CLASS_NAMES", "pointing_game", "pointing_score", "synthetic_signs",
]


class _ShapeClass(NamedTuple):
    name: str
    shape: str  # "square", "disc" or "bar"
    centre: tuple[float, float]  # (row, column) as fractions of the image size
    bright: bool


_CLASSES: tuple[_ShapeClass, ...] = tuple(
    _ShapeClass(f"{'bright' if bright else 'dark'} {shape} {place}", shape, centre, bright)
    for shape, place, centre in (
        ("square", "top-left", (0.27, 0.27)),
        ("square", "bottom-right", (0.73, 0.73)),
        ("disc", "centre", (0.5, 0.5)),
        ("bar", "top-right", (0.25, 0.72)),
    )
    for bright in (True, False)
)

SYNTHETIC_CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in _CLASSES)
"""Names of the classes of `synthetic_signs`, in label order."""

SYNTHETIC_CLASS_IS_BRIGHT: tuple[bool, ...] = tuple(c.bright for c in _CLASSES)
"""Whether each class's shape is brighter (True) or darker (False) than the background."""

POINTING_GROUPS: tuple[str, ...] = ("bright classes", "dark classes", "all")
"""The groups of images `pointing_game` scores, in order."""

# Sizes as fractions of the image size; a draw is uniform in [low, high].
_JITTER = 0.06
_SQUARE_HALF_SIDE = (0.09, 0.13)
_DISC_RADIUS = (0.11, 0.15)
_BAR_HALF_SIZE = ((0.05, 0.07), (0.14, 0.19))  # (rows, columns)
_CONTRAST = (0.22, 0.35)
_TEXTURE_GRID = 5  # coarse grid of the smooth background texture
_TEXTURE_AMPLITUDE = 0.08
_GRAIN = 0.03  # per-pixel noise


def _upsample_matrix(coarse: int, fine: int) -> np.ndarray:
    """(fine, coarse) linear interpolation weights from a coarse grid to pixel centres."""
    positions = (np.arange(fine) + 0.5) / fine * (coarse - 1)
    return np.maximum(0.0, 1.0 - np.abs(positions[:, None] - np.arange(coarse)[None, :]))


def _shape_masks(
    rng: np.random.Generator, labels: np.ndarray, size: int
) -> np.ndarray:
    """Boolean (n, size, size) masks of each image's shape, with jittered place and size."""
    n = len(labels)
    centres = np.array([_CLASSES[label].centre for label in labels], np.float64).reshape(n, 2)
    centres = (centres + rng.uniform(-_JITTER, _JITTER, (n, 2))) * size
    rows = (np.arange(size) + 0.5)[None, :, None] - centres[:, 0, None, None]
    cols = (np.arange(size) + 0.5)[None, None, :] - centres[:, 1, None, None]
    kinds = np.array([_CLASSES[label].shape for label in labels])
    half_side = rng.uniform(*_SQUARE_HALF_SIDE, n)[:, None, None] * size
    radius = rng.uniform(*_DISC_RADIUS, n)[:, None, None] * size
    half_rows = rng.uniform(*_BAR_HALF_SIZE[0], n)[:, None, None] * size
    half_cols = rng.uniform(*_BAR_HALF_SIZE[1], n)[:, None, None] * size
    square = (np.abs(rows) <= half_side) & (np.abs(cols) <= half_side)
    disc = rows**2 + cols**2 <= radius**2
    bar = (np.abs(rows) <= half_rows) & (np.abs(cols) <= half_cols)
    kind = kinds[:, None, None]
    return np.where(kind == "square", square, np.where(kind == "disc", disc, bar))


def synthetic_signs(
    n: int, image_size: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images of bright or dark shapes on a textured background, with their masks.

    Class `c` (named `SYNTHETIC_CLASS_NAMES[c]`) is a shape at a class-specific
    place whose pixels are the background plus (bright classes) or minus (dark
    classes) a contrast drawn in [0.22, 0.35]. Place (about +-6% of the image),
    size, contrast, the smooth background texture, its colour tint and the
    pixel grain are random, so only the shape, its place and the sign of its
    contrast define the class. Labels are balanced and shuffled.

    Args:
        n: number of images (>= 0).
        image_size: height and width in pixels (>= 8).
        seed: seed of the generator; the same arguments give the same data.

    Returns:
        images: float32 (n, image_size, image_size, 3) in [0, 1].
        labels: int64 (n,) class indices in [0, len(SYNTHETIC_CLASS_NAMES)).
        masks: bool (n, image_size, image_size), True on the class's shape.

    Raises:
        TypeError: an argument is not an integer.
        ValueError: an argument is below its minimum.

    Example:
        >>> images, labels, masks = tf_signsal.data.synthetic_signs(512, seed=1)
        >>> SYNTHETIC_CLASS_NAMES[labels[0]], masks[0].sum()
    """
    n = _checks.non_negative_int("n", n)
    size = _checks.integer("image_size", image_size, minimum=8)
    seed = _checks.non_negative_int("seed", seed)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(_CLASSES)).astype(np.int64)
    masks = _shape_masks(rng, labels, size)

    upsample = _upsample_matrix(_TEXTURE_GRID, size)
    coarse = rng.normal(0.0, 1.0, (n, _TEXTURE_GRID, _TEXTURE_GRID))
    texture = np.einsum("hi,nij,wj->nhw", upsample, coarse, upsample)
    tint = rng.uniform(-0.05, 0.05, (n, 1, 1, 3))
    grain = rng.normal(0.0, _GRAIN, (n, size, size, 3))
    background = 0.5 + _TEXTURE_AMPLITUDE * texture[..., None] + tint + grain

    sign = np.where(np.array(SYNTHETIC_CLASS_IS_BRIGHT)[labels], 1.0, -1.0)
    contrast = (sign * rng.uniform(*_CONTRAST, n))[:, None, None, None]
    images = np.clip(background + contrast * masks[..., None], 0.0, 1.0)
    return images.astype(np.float32), labels, masks


def pointing_game(
    maps: Mapping[str, Any],
    masks: Any,
    labels: Any,
    seed: int = 0,
    top_fraction: float = 0.05,
) -> dict[str, dict[str, float]]:
    """The pointing game of several maps of `synthetic_signs` images, by group of classes.

    Each map's `pointing_score` is averaged over the images of the bright classes, of
    the dark classes and of all (`POINTING_GROUPS`). Two reference rows follow the maps:
    `RANDOM_MAP`, a seeded uniform random map (it scores about chance), and `CHANCE`,
    the mean share of the image the shape covers (the expected score of a map that
    knows nothing). A group without images scores NaN.

    Args:
        maps: name -> (B, H, W) maps (arrays or tensors), e.g. `SignedSaliency.explain`'s.
        masks: bool (B, H, W), the shapes (`synthetic_signs`'s third output).
        labels: (B,) class indices of `SYNTHETIC_CLASS_NAMES`.
        seed: seed of the random map.
        top_fraction: the share of pixels taken from each map, in (0, 1].

    Returns:
        A dict name -> group -> mean score: the maps in the order given, then
        `RANDOM_MAP` and `CHANCE`; groups in the order of `POINTING_GROUPS`.

    Example:
        >>> images, labels, masks = synthetic_signs(256, seed=1)
        >>> scores = pointing_game(SignedSaliency(model).explain(images), masks, labels)
        >>> scores["positive"]["bright classes"], scores[CHANCE]["all"]
    """
    masks = np.asarray(masks)
    labels = _checks.class_indices("labels", labels, len(masks), len(SYNTHETIC_CLASS_NAMES))
    bright = np.array(SYNTHETIC_CLASS_IS_BRIGHT)[labels]
    groups = dict(zip(POINTING_GROUPS, (bright, ~bright, np.ones(len(labels), bool))))
    return pointing.pointing_game(maps, masks, groups, seed=seed, top_fraction=top_fraction)
