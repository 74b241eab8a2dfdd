"""AllegianceEvaluator: the deletion benchmark (spec section 2) for any saliency map.

For each image, map and fraction p, the pixels chosen by the deletion rule
(`rules.py`) are set to the fill value in all channels; allegiance at p is the
share of images whose predicted class on the occluded image equals the model's
own prediction on the intact image.

How it is fast: one explainer pass per batch gives every map (and, for the
package's own maps, the intact logits too); one sort per map gives the thresholds
of all fractions; every occluded image of every (order, pair, fraction) goes
through one compiled function per order in chunks sized by a memory budget, which
builds the images with one gather (from the batch's pixels and the fills' values)
and returns counts only.
Occluded images that lose no pixel (p = 0, or a map whose non-zero pixels are used
up) are the intact image, so their prediction is the intact one and they are not
run again.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.attributions import Attribution
from tf_signsal.evaluation.counts import DeletionCounts, OccludedItems
from tf_signsal.evaluation.fills import blur_images, check_blur_sigma, mean_images
from tf_signsal.evaluation.pairs import (
    DELETION_METHODS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    RANDOM_METHOD,
    Pair,
    fill_kind,
    fill_values,
)
from tf_signsal.evaluation.random_control import random_maps
from tf_signsal.evaluation.result import AllegianceResult
from tf_signsal.evaluation.road import check_noise_std, road_occlude
from tf_signsal.evaluation.rules import (
    ORDERS,
    ascending_ranks,
    lerf_counts,
    threshold_indices,
    thresholds_and_counts,
)
from tf_signsal.maps import SignedSaliency

Explainer = Callable[[tf.Tensor], Mapping[str, Any]]


class AllegianceEvaluator:
    """The deletion benchmark (allegiance curves and AUC) of any saliency map.

    Args:
        model: a Keras classifier taking float images (B, H, W, ch) in
            `value_range` and returning logits or probabilities (predictions are
            argmaxes either way).
        fractions: deletion fractions in [0, 1), strictly increasing.
        pairs: (method, fill) pairs. A method names a map of the explainer, or is
            "random" (a seeded random ranking, the control, available with any
            explainer). A fill is "black" (value_range[0]), "white"
            (value_range[1]), a number, or one number per channel.
        batch_size: images per explainer pass for array input (a dataset's own
            batches are used as they come).
        value_range: (low, high) of the model's input: black and white.
        memory_budget: bytes of occluded images built at once (the model's
            activations come on top); larger means larger forward batches.
        seed: seed of the "random" ranking and of the "road" fill's noise.
        orders: which pixels go first, any of "morf" (most relevant first, the
            paper's deletion, always run: `result.curves`), "lerf" (least
            relevant first: the round(p N) smallest pixels, zeros included, ties
            by pixel index) and "insertion" (from the all-fill image, put back
            the pixels MoRF deletes; higher AUC is better). With "morf" and
            "lerf", `result.srg` gives AUC(LeRF) - AUC(MoRF).
        attribution: the attribution of the default explainer's five maps
            ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad"
            or a configured `tf_signsal.attributions` object; see
            `SignedSaliency`); only with `explainer=None`.
        blur_sigma: the standard deviation in pixels of the "blur" fill's kernel.
        road_noise: the standard deviation of the "road" fill's noise (ROAD's 0.01
            for [0, 1] images).
        explainer: None for the paper's maps (`SignedSaliency(model)`: standard,
            positive, negative, active, inactive), or any callable taking a
            float32 image batch (B, H, W, ch) and returning a mapping from map
            name to (B, H, W) maps, higher meaning more relevant (a
            `SignedSaliency` is one). Its maps are ranked by the same deletion
            rule: zeros are never deleted.

    Example:
        >>> evaluator = tf_signsal.AllegianceEvaluator(model)
        >>> result = evaluator.evaluate(test_dataset)
        >>> print(result.summary()); result.save_json("allegiance.json")

        Any other map, e.g. gradient x input:

        >>> saliency = tf_signsal.SignedSaliency(model)
        >>> def gradient_x_input(images):               # max over channels of |g * x|
        ...     g = saliency.class_gradients(images)      # (B, C, H, W, ch)
        ...     g = tf.gather(g, tf.argmax(saliency.logits(images), 1), axis=1, batch_dims=1)
        ...     return {"gxi": tf.reduce_max(tf.abs(g * images), axis=-1)}
        >>> tf_signsal.AllegianceEvaluator(model, pairs=[("gxi", "black")],
        ...                                explainer=gradient_x_input).evaluate(images)
    """

    def __init__(
        self,
        model: Any,
        fractions: Sequence[float] = PAPER_FRACTIONS,
        pairs: Sequence[Pair] = PAPER_PAIRS,
        batch_size: int = 128,
        value_range: tuple[float, float] = (0.0, 1.0),
        memory_budget: int = 32 * 2**20,
        seed: int = 0,
        explainer: Explainer | None = None,
        orders: Sequence[str] = ("morf",),
        attribution: str | Attribution = "gradient",
        blur_sigma: float = 5.0,
        road_noise: float = 0.01,
    ):
        if explainer is not None and not callable(explainer):
            raise TypeError(
                "`explainer` must be None or a callable images -> {name: (B, H, W) map}, "
                f"received {type(explainer).__name__}"
            )
        self.model = model
        self.fractions = _checks.fractions(fractions, at_least=2)
        self._own_maps = explainer is None or (
            isinstance(explainer, SignedSaliency) and explainer.model is model
        )
        self.pairs = _checks.pairs(pairs, DELETION_METHODS if self._own_maps else None)
        self.value_range = _checks.value_range(value_range)
        self._check_fill_values()
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.memory_budget = _checks.positive_int("memory_budget", memory_budget)
        self.seed = _checks.integer("seed", seed, minimum=0, maximum=2**32 - 1)
        self.blur_sigma = check_blur_sigma("blur_sigma", blur_sigma)
        self.road_noise = check_noise_std("road_noise", road_noise)
        self.orders = tuple(dict.fromkeys(_checks.check_choices("orders", orders, ORDERS)))
        if "morf" not in self.orders:
            raise ValueError(
                f"`orders` must include \"morf\" (the paper's deletion, whose curves are "
                f"`result.curves`), received {list(self.orders)}"
            )
        if explainer is not None and not (
            isinstance(attribution, str) and attribution == "gradient"
        ):
            raise ValueError(
                "`attribution` configures the default explainer: with `explainer` given, "
                "build it with the attribution instead, e.g. "
                "explainer=SignedSaliency(model, attribution=...)"
            )
        with warnings.catch_warnings():
            if not self._own_maps:  # the softmax warning speaks of maps it does not make
                warnings.simplefilter("ignore")
            own = isinstance(explainer, SignedSaliency) and self._own_maps
            self._saliency = explainer if own else SignedSaliency(
                model, attribution=attribution, value_range=self.value_range
            )
        self.explainer: Explainer = self._saliency if explainer is None else explainer
        # Distinct maps and fills needed, and for each pair the index of its map.
        self._methods = tuple(dict.fromkeys(m for m, _ in self.pairs))
        self._fills = tuple(dict.fromkeys(f for _, f in self.pairs))
        self._pair_method = np.array([self._methods.index(m) for m, _ in self.pairs], np.int32)
        self._pair_road = np.array([fill_kind(f) == "road" for _, f in self.pairs])
        # The blur/mean fills, whose values come as a full image per batch.
        self._image_fills = tuple(f for f in self._fills if fill_kind(f) == "image")
        self._count_functions: dict[tuple, Any] = {}

    def _check_fill_values(self) -> None:
        low, high = self.value_range
        resolved = {}
        for method, fill in self.pairs:
            values = (fill,) if _checks.is_real(fill) else fill if isinstance(fill, tuple) else ()
            outside = [v for v in values if not low <= v <= high]
            if outside:
                raise ValueError(
                    f"fill {fill!r} of pair ({method!r}, {fill!r}) lies outside `value_range` "
                    f"({low:g}, {high:g}): the occluded image would hold values the model "
                    "never sees"
                )
            value = {"black": low, "white": high}.get(fill, fill) if isinstance(fill, str) else fill
            # One value for every channel, as a number or a tuple, is the same fill; and
            # numbers equal in float32, the images' type, fill alike.
            values = tuple(
                np.float32(v) if _checks.is_real(v) else v
                for v in (value if isinstance(value, tuple) else (value,))
            )
            key = (method, values[:1] if len(set(values)) == 1 else values)
            if key in resolved:
                raise ValueError(
                    f"`pairs` {resolved[key]!r} and {(method, fill)!r} are the same deletion "
                    f"(with value_range ({low:g}, {high:g})): give each once"
                )
            resolved[key] = (method, fill)

    # -- data ------------------------------------------------------------------------

    @staticmethod
    def _split(element: Any) -> tuple[Any, Any]:
        # A tuple is (images, labels[, weights]), as Keras reads it; a list is images.
        if isinstance(element, tuple):
            if not 1 <= len(element) <= 3:
                raise ValueError(
                    "`data` elements must be images or (images, labels[, weights]), received "
                    f"a tuple of {len(element)}"
                )
            return element[0], (element[1] if len(element) > 1 else None)
        if isinstance(element, dict):
            raise TypeError("`data` elements must be images or (images, labels), received a dict")
        return element, None

    def _batches(self, data: Any) -> tuple[Iterator[tuple[tf.Tensor, Any]], int | None]:
        """Checked (images, labels) batches and the image count if known.

        The first batch is read and checked, with the model, the fills and the
        explainer's maps, before anything is computed.
        """
        if isinstance(data, tf.data.Dataset):
            _checks.finite_dataset(data, "data")
            if int(data.cardinality()) == 0:
                raise ValueError("`data` is an empty tf.data.Dataset: there is nothing to evaluate")
            batches = (self._split(element) for element in data)
            total = None
        else:
            images, labels = self._split(data)
            images = _checks.as_image_batch(images, "data")
            if labels is not None and len(labels) != images.shape[0]:
                raise ValueError(f"`data` has {images.shape[0]} images but {len(labels)} labels")
            total = images.shape[0]
            if total == 0:
                raise ValueError("`data` holds no images: there is nothing to evaluate")
            step = self.batch_size
            checked = (
                (images[i : i + step], None if labels is None else labels[i : i + step])
                for i in range(0, total, step)
            )
        if total is None:  # a dataset's batches are checked as they come
            checked = ((_checks.as_image_batch(x, "data"), y) for x, y in batches)
        first = next(checked, None)
        if first is None:
            raise ValueError("`data` is an empty tf.data.Dataset: there is nothing to evaluate")
        self._check_first_batch(*first)
        return itertools.chain([first], self._same_size(checked, first[0].shape[1:])), total

    @staticmethod
    def _same_size(batches: Iterator, shape: tuple) -> Iterator:
        # The curves are shares of images and of pixels: one image size throughout.
        for images, labels in batches:
            if tuple(images.shape[1:]) != tuple(shape):
                raise ValueError(
                    f"`data` batches must share one image shape, the first had {tuple(shape)}, "
                    f"a later one {tuple(images.shape[1:])}: resize the images, or evaluate "
                    "each size apart"
                )
            yield images, labels

    def _check_first_batch(self, images: tf.Tensor, labels: Any) -> None:
        _checks.check_model_input(self.model, images, "data")
        fill_values(self._fills, self.value_range, images.shape[-1])
        num_classes = self._saliency.num_classes(images)  # a model that is no classifier
        _checks.several_classes(
            num_classes,
            "its prediction (the argmax) never changes, so allegiance would be 1.0 whatever "
            "is deleted",
        )
        self._labels(labels, images.shape[0], num_classes)
        self._check_value_range(images)
        if not self._own_maps:
            self._explain(images[:1])  # the explainer's maps: names, shapes, values

    def _check_value_range(self, images: tf.Tensor) -> None:
        # Black and white are the ends of value_range: with data in another range (e.g.
        # [0, 255] with the default (0, 1)), "white" would be nearly black.
        low, high = self.value_range
        lowest, highest = float(tf.reduce_min(images)), float(tf.reduce_max(images))
        slack = 1e-3 * (high - low)
        if lowest < low - slack or highest > high + slack:
            raise ValueError(
                f"`data` holds values in [{lowest:g}, {highest:g}], outside `value_range` "
                f"({low:g}, {high:g}), whose ends are the black and white fills: pass the "
                "model's input range, e.g. value_range=(0, 255), or scale the images"
            )

    def _labels(self, labels: Any, size: int, num_classes: int | None = None) -> np.ndarray | None:
        if labels is None:
            return None
        return _checks.class_indices("labels", labels, size, num_classes, one_hot=True)

    def _explain(self, images: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """The maps of `self._methods` (M of them) and the intact logits."""
        wanted = [m for m in self._methods if m != RANDOM_METHOD]
        if self._own_maps and wanted:
            maps, logits, _ = self._saliency.explain_batch(images, methods=wanted)
            maps = dict(maps)
        else:
            maps = self._explainer_maps(images, wanted) if wanted else {}
            logits = self._saliency.logits(images)
        if RANDOM_METHOD in self._methods:
            maps[RANDOM_METHOD] = random_maps(images, tf.constant(self.seed, tf.int64))
        return maps, logits

    def _explainer_maps(self, images: tf.Tensor, wanted: Sequence[str]) -> dict[str, tf.Tensor]:
        """Call the user's explainer and check what it returns."""
        returned = self.explainer(images)
        if not isinstance(returned, Mapping):
            raise TypeError(
                "`explainer` must return a mapping {map name: (B, H, W) map}, "
                f"it returned a {type(returned).__name__}"
            )
        missing = [m for m in wanted if m not in returned]
        if missing:
            raise ValueError(
                f"`pairs` name the maps {missing}, but `explainer` returns only "
                f"{sorted(map(str, returned))} (and \"random\" is always available)"
            )
        maps = {}
        for name in wanted:
            value = tf.convert_to_tensor(returned[name])
            if not (value.dtype.is_floating or value.dtype.is_integer):
                raise TypeError(f"`explainer` map {name!r} must hold numbers, dtype {value.dtype}")
            value = tf.cast(value, tf.float32)
            if tuple(value.shape) != tuple(images.shape[:3]):
                raise ValueError(
                    f"`explainer` map {name!r} must have shape (batch, height, width) = "
                    f"{tuple(images.shape[:3])}, it has shape {tuple(value.shape)}"
                )
            if not bool(tf.reduce_all(tf.math.is_finite(value))):
                raise ValueError(f"`explainer` map {name!r} holds NaN or Inf values")
            maps[name] = value
        return maps

    # -- compute ---------------------------------------------------------------------

    def _count_function(self, image_shape: tuple[int, ...], order: str, road: bool) -> Any:
        # One trace per image shape, order and kind of fill (ROAD's or a gathered one), so
        # that no item branches on its order: batch, chunk and map counts vary freely.
        key = (*image_shape, order, road)
        if key not in self._count_functions:
            height, width, channels = image_shape
            vector = tf.TensorSpec((None,), tf.int32)
            signature = [
                tf.TensorSpec((None, height, width, channels), tf.float32),  # images
                tf.TensorSpec((None, channels), tf.float32),  # fill table (see `_fill_table`)
                vector,  # each pair's first fill row
                vector,  # each pair's fill row step
                tf.TensorSpec((None, None, height, width), tf.float32),  # maps (M, B, H, W)
                tf.TensorSpec((None, None, None), tf.float32),  # thresholds (M, B, P)
                tf.TensorSpec((None, None, height, width), tf.int32),  # LeRF ranks (M, B, H, W)
                vector,  # intact predictions (B,)
                vector,  # labels (B,), -1 without labels
                OccludedItems(vector, vector, vector, vector),
            ]
            self._count_functions[key] = tf.function(
                functools.partial(self._count_chunk, order, road), input_signature=signature
            )
        return self._count_functions[key]

    def _count_chunk(
        self, order, road, images, table, first_row, row_step, maps, thresholds, ranks, intact,
        labels, items,
    ):
        """Agreeing and correct predictions per (order, pair, fraction) for a chunk of
        items of one `order`, all with ROAD's fill or none: two int64 (O * K * P,)
        vectors indexed by (order * K + pair) * P + fraction."""
        height, width = images.shape[1:3]
        method = tf.gather(tf.constant(self._pair_method), items.pair)
        at = tf.stack([method, items.image], axis=1)
        if order == "lerf":
            counts = tf.constant(lerf_counts(self.fractions, height * width))
            mask = tf.gather_nd(ranks, at) < tf.gather(counts, items.fraction)[:, None, None]
        else:
            saliency = tf.gather_nd(maps, at)  # (S, H, W)
            v = tf.gather_nd(thresholds, tf.stack([method, items.image, items.fraction], axis=1))
            mask = (saliency > v[:, None, None]) & (saliency != 0)  # MoRF
            if order == "insertion":
                mask = ~mask
        if road:
            intact_images = tf.gather(images, items.image)
            occluded = road_occlude(intact_images, mask, self.road_noise, self.seed)
        else:
            # One gather of each pixel's row of `table`: on CPU, a select (tf.where)
            # broadcasting the fill over pixels and channels takes ~1.5x as long.
            pixels = tf.reshape(tf.range(height * width), (1, height, width))
            pixel = items.image[:, None, None] * (height * width) + pixels  # (S, H, W)
            first = tf.gather(first_row, items.pair)[:, None, None]
            step = tf.gather(row_step, items.pair)[:, None, None]
            occluded = tf.gather(table, tf.where(mask, first + step * pixel, pixel))
        predicted = tf.argmax(self._saliency.logits(occluded), axis=1, output_type=tf.int32)
        num_pairs, num_fractions = len(self.pairs), len(self.fractions)
        combo = (items.order * num_pairs + items.pair) * num_fractions + items.fraction
        num = len(self.orders) * num_pairs * num_fractions
        agree = tf.cast(predicted == tf.gather(intact, items.image), tf.int64)
        correct = tf.cast(predicted == tf.gather(labels, items.image), tf.int64)
        return (
            tf.math.unsorted_segment_sum(agree, combo, num),
            tf.math.unsorted_segment_sum(correct, combo, num),
        )

    def _batch_counts(self, images: tf.Tensor, labels: Any) -> DeletionCounts:
        """Counts for one checked batch."""
        size, height, width, channels = images.shape
        shape = (len(self.orders), len(self.pairs), len(self.fractions))
        if size == 0:  # a replica's share of a short last batch may be empty
            zeros = np.zeros(shape, np.int64)
            return DeletionCounts(np.int64(0), zeros, zeros, zeros)
        labels = self._labels(labels, size, self._saliency.num_classes(images))
        maps, logits = self._explain(images)
        stacked = tf.stack([maps[m] for m in self._methods])  # (M, B, H, W)
        num_pixels = height * width
        flat = tf.reshape(stacked, (len(self._methods), size, num_pixels))
        thresholds, deleted = thresholds_and_counts(
            flat, tf.constant(threshold_indices(self.fractions, num_pixels))
        )
        ranks = tf.zeros((0, 0, height, width), tf.int32)
        if "lerf" in self.orders:
            ranks = tf.reshape(ascending_ranks(flat), stacked.shape)
        morf = deleted.numpy()[self._pair_method]  # (K, B, P) pixels MoRF deletes
        filled = np.stack([self._filled(order, morf, num_pixels) for order in self.orders])
        intact = np.argmax(logits.numpy(), axis=1).astype(np.int32)

        # An image that loses no pixel is the intact image: it agrees with
        # itself, and is correct when the intact prediction is.
        kept = filled == 0  # (O, K, B, P)
        agree = kept.sum(axis=2).reshape(-1)  # indexed by (order * K + pair) * P + fraction
        correct = np.zeros_like(agree)
        if labels is not None:
            correct = (kept & (intact == labels)[None, None, :, None]).sum(axis=2).reshape(-1)
        order, pair, image, fraction = (a.astype(np.int32) for a in np.nonzero(~kept))
        items = OccludedItems(order, image, pair, fraction)
        chunk = max(1, self.memory_budget // (num_pixels * channels * 4))
        batch = (
            images, *self._fill_table(images), stacked, thresholds, ranks, tf.constant(intact),
            tf.constant(labels if labels is not None else np.full(size, -1, np.int32)),
        )
        item_road = self._pair_road[items.pair]
        for o, order_name in enumerate(self.orders):
            for road in (False, True):
                chosen = (items.order == o) & (item_road == road)
                if not chosen.any():
                    continue
                # ROAD's solver holds about ten float64 copies of each occluded image.
                step = chunk if not road else max(1, chunk // 10)
                count = self._count_function((height, width, channels), order_name, road)
                chosen_items = OccludedItems(*(c[chosen] for c in items))
                for start in range(0, len(chosen_items.image), step):
                    chunk_items = OccludedItems(
                        *(tf.constant(c[start : start + step]) for c in chosen_items)
                    )
                    chunk_agree, chunk_correct = count(*batch, chunk_items)
                    agree += chunk_agree.numpy()
                    correct += chunk_correct.numpy()
        return DeletionCounts(
            images=np.int64(size),
            agree=agree.reshape(shape),
            correct=correct.reshape(shape),
            deleted=filled.sum(axis=2).astype(np.int64),
        )

    def _fill_table(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The rows occluded pixels are gathered from, and each pair's first row and step.

        The table (R, ch) holds the batch's B * H * W pixels, then one row per fill
        (its constant value; unused for the others), then the B * H * W pixels of each
        blur/mean fill image. Pixel i of the batch (in row-major order) is row i, and
        filled by pair k it is row `first[k] + step[k] * i`: step 0 for a constant, 1 for
        an image fill.
        """
        size, height, width, channels = images.shape
        num_pixels = size * height * width
        made = {
            "blur": lambda: blur_images(images, self.blur_sigma),
            "mean": lambda: mean_images(images),
        }
        rows = [
            tf.reshape(images, (-1, channels)),
            tf.constant(fill_values(self._fills, self.value_range, channels)),
            *(tf.reshape(made[f](), (-1, channels)) for f in self._image_fills),
        ]
        image_rows = num_pixels + len(self._fills)  # where the first fill image starts
        if image_rows + len(self._image_fills) * num_pixels > np.iinfo(np.int32).max:
            raise ValueError(
                f"a batch of {size} images of {height}x{width} pixels, with its blur/mean fills, "
                "has too many pixels for the evaluator's int32 indices: use smaller batches"
            )
        first = [
            image_rows + self._image_fills.index(f) * num_pixels if f in self._image_fills
            else num_pixels + self._fills.index(f)
            for _, f in self.pairs
        ]
        step = [int(f in self._image_fills) for _, f in self.pairs]
        return tf.concat(rows, axis=0), tf.constant(first, tf.int32), tf.constant(step, tf.int32)

    def _filled(self, order: str, morf: np.ndarray, num_pixels: int) -> np.ndarray:
        """(K, B, P) pixels each occluded image fills, from MoRF's deleted counts."""
        if order == "morf":
            return morf
        if order == "insertion":
            return num_pixels - morf
        return np.broadcast_to(lerf_counts(self.fractions, num_pixels), morf.shape)

    # -- public ----------------------------------------------------------------------

    def evaluate(
        self,
        data: Any,
        verbose: int = 1,
        strategy: Any = None,
        num_images: int | None = None,
        steps: int | None = None,
    ) -> AllegianceResult:
        """Run the deletion benchmark.

        Args:
            data: images (B, H, W, ch) as a numpy array or tensor, a tuple
                (images, labels) of arrays, or a `tf.data.Dataset` of image
                batches or (images, labels[, weights]) batches. Labels (class
                indices, (N, 1) columns or one-hot rows) are optional and only
                give `accuracy`; allegiance never uses them.
            verbose: 1 shows a Keras progress bar, 0 is silent.
            strategy: an optional `tf.distribute.Strategy` (e.g. MirroredStrategy
                over GPUs, MultiWorkerMirroredStrategy over machines): the data
                is distributed, each replica counts its images and the counts
                are summed by the strategy. The result equals the
                single-device one.
            num_images: how many images a dataset holds, for the progress bar's total
                (arrays are counted).
            steps: evaluate at most this many batches of a dataset (as Keras's
                `model.evaluate(steps=...)`): the way to bound a dataset that repeats.
                A dataset whose length TensorFlow cannot tell (e.g. after `filter`) is
                read to its end, with a warning, unless `steps` is given.

        Returns:
            an `AllegianceResult`.
        """
        if strategy is not None and not hasattr(strategy, "experimental_distribute_dataset"):
            raise TypeError(
                f"`strategy` must be a tf.distribute.Strategy, received {type(strategy).__name__}"
            )
        verbose = _checks.integer("verbose", verbose, minimum=0, maximum=2)
        data = _checks.bounded_dataset(data, steps, "data", "evaluate", stacklevel=3)
        batches, total = self._batches(data)
        if total is None and num_images is not None:
            total = _checks.positive_int("num_images", num_images)
        first_images, first_labels = next(batches)
        height, width = first_images.shape[1:3]
        progress = keras.utils.Progbar(total, verbose=verbose, unit_name="image")
        if strategy is None:
            steps: Iterator[DeletionCounts] = (
                self._batch_counts(images, labels)
                for images, labels in itertools.chain([(first_images, first_labels)], batches)
            )
        else:
            steps = self._distributed_counts(data, strategy)
        totals: DeletionCounts | None = None
        for counts in steps:
            totals = counts if totals is None else totals + counts
            progress.update(int(totals.images))
        if totals is None or int(totals.images) == 0:
            raise ValueError("`data` holds no images: there is nothing to evaluate")
        return totals.to_result(
            self.orders, self.pairs, self.fractions, height * width, first_labels is not None
        )

    def _distributed_counts(self, data: Any, strategy: Any) -> Iterator[DeletionCounts]:
        if not isinstance(data, tf.data.Dataset):
            images, labels = self._split(data)
            elements = images if labels is None else (images, labels)
            data = tf.data.Dataset.from_tensor_slices(elements).batch(self.batch_size)
        distributed = strategy.experimental_distribute_dataset(data)

        def replica_step(element):
            images, labels = self._split(element)
            return self._batch_counts(_checks.as_image_batch(images, "data"), labels).pack()

        for element in distributed:
            per_replica = strategy.run(replica_step, args=(element,))
            reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            shape = (len(self.orders), len(self.pairs), len(self.fractions))
            yield DeletionCounts.unpack(reduced.numpy(), shape)
