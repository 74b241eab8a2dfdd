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

import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks, _data, _model
from tf_signsal.attributions import Attribution, as_attribution
from tf_signsal.evaluation.counts import DeletionCounts, OccludedItems
from tf_signsal.evaluation.fills import Constant, Fill, deprecated_fill_options
from tf_signsal.evaluation.orders import Order, Ranking, lerf_counts, threshold_indices
from tf_signsal.evaluation.pairs import (
    DELETION_METHODS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    RANDOM_METHOD,
    Pair,
)
from tf_signsal.evaluation.protocol import DeletionProtocol
from tf_signsal.evaluation.random_control import random_maps
from tf_signsal.evaluation.result import AllegianceResult
from tf_signsal.evaluation.rules import ascending_ranks, thresholds_and_counts
from tf_signsal.maps import SignedSaliency
from tf_signsal.precision import check_precision

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
            explainer). A fill is a `Fill` (`Constant`, `Blur(sigma)`, `Mean()`,
            `Road(noise_std)` or one of your own), or its text: "black"
            (value_range[0]), "white" (value_range[1]), "blur", "mean", "road",
            "blur(2.0)", a number, or one number per channel.
        batch_size: images per explainer pass for array input (a dataset's own
            batches are used as they come).
        value_range: (low, high) of the model's input: black and white. When the
            model's first layers show another range (a `Rescaling(1/255)` takes
            [0, 255]), a `ValueRangeWarning` says which to pass.
        memory_budget: bytes of occluded images built at once (the model's
            activations come on top); larger means larger forward batches.
        seed: seed of the "random" ranking and of the "road" fill's noise.
        orders: which pixels go first, `Order` objects or their names: "morf"
            (`MoRF`, most relevant first, the paper's deletion, always run:
            `result.curves`), "lerf" (`LeRF`, least relevant first: the round(p N)
            smallest pixels, zeros included, ties by pixel index) and "insertion"
            (`Insertion`: from the all-fill image, put back the pixels MoRF
            deletes; higher AUC is better). With "morf" and "lerf", `result.srg`
            gives AUC(LeRF) - AUC(MoRF).
        attribution: the attribution of the default explainer's five maps
            ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad"
            or a configured `tf_signsal.attributions` object; see
            `SignedSaliency`); only with `explainer=None`.
        precision: what the default explainer's passes and the deletions' forward
            passes compute in: "float32" (default) or "bfloat16", on a bfloat16 copy
            of the model (see `SignedSaliency`); only with `explainer=None` (build the
            explainer with it instead).
        blur_sigma: deprecated, give the fill `Blur(sigma)` instead: the sigma of
            the pairs' "blur" fill (whose key becomes "blur(sigma)").
        road_noise: deprecated, give the fill `Road(noise_std)` instead: the noise
            of the pairs' "road" fill (whose key becomes "road(noise_std)").
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
        ...     g = tf_signsal.class_gradients(saliency, images)  # (B, C, H, W, ch)
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
        orders: Sequence[str | Order] = ("morf",),
        attribution: str | Attribution = "gradient",
        blur_sigma: float | None = None,
        road_noise: float | None = None,
        precision: str = "float32",
    ):
        if explainer is not None and not callable(explainer):
            raise TypeError(
                "`explainer` must be None or a callable images -> {name: (B, H, W) map}, "
                f"received {type(explainer).__name__}"
            )
        self.model = model
        self._own_maps = explainer is None or (
            isinstance(explainer, SignedSaliency) and explainer.model is model
        )
        value_range = _checks.value_range(value_range)
        self.protocol = DeletionProtocol(
            fractions, deprecated_fill_options(pairs, blur_sigma, road_noise), orders,
            value_range, seed, _describe(explainer, attribution, value_range, precision),
        )
        if self._own_maps:
            self.protocol.check_methods(DELETION_METHODS)
        # As before the protocol: the pairs' result keys, the order names.
        self.fractions, self.pairs = self.protocol.fractions, self.protocol.keys
        self.value_range, self.seed = self.protocol.value_range, self.protocol.seed
        self.orders = tuple(order.name for order in self.protocol.orders)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.memory_budget = _checks.positive_int("memory_budget", memory_budget)
        if explainer is not None and not (
            isinstance(attribution, str) and attribution == "gradient"
        ):
            raise ValueError(
                "`attribution` configures the default explainer: with `explainer` given, "
                "build it with the attribution instead, e.g. "
                "explainer=SignedSaliency(model, attribution=...)"
            )
        if explainer is not None and not (isinstance(precision, str) and precision == "float32"):
            raise ValueError(
                "`precision` configures the default explainer: with `explainer` given, "
                "build it with the precision instead, e.g. "
                "explainer=SignedSaliency(model, precision='bfloat16')"
            )
        # Black and white are the ends of value_range, whoever makes the maps.
        _model.warn_value_range(model, self.value_range, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _model.ValueRangeWarning)  # said just above
            if not self._own_maps:  # the softmax warning speaks of maps it does not make
                warnings.simplefilter("ignore")
            own = isinstance(explainer, SignedSaliency) and self._own_maps
            self._saliency = explainer if own else SignedSaliency(
                model, attribution=attribution, value_range=self.value_range,
                precision=precision,
            )
        self.explainer: Explainer = self._saliency if explainer is None else explainer
        # Distinct maps and fills needed, and for each pair the index of its map and fill.
        self._methods = tuple(dict.fromkeys(m for m, _ in self.pairs))
        self._fills = self.protocol.fills  # bound to value_range and seed
        self._pair_method = np.array([self._methods.index(m) for m, _ in self.pairs], np.int32)
        fill_keys = [fill.key for fill in self._fills]
        self._pair_fill = np.array([fill_keys.index(key) for _, key in self.pairs], np.int32)
        # Grouped by the method a fill defines: `values` fills (constants as one row,
        # the others as a full image per batch) go through one gather table; each
        # `occlude` fill has its own compiled path.
        self._image_fills = tuple(
            f for f in self._fills if not f.mask_dependent and not isinstance(f, Constant)
        )
        self._occluders = tuple(f for f in self._fills if f.mask_dependent)
        self._count_functions: dict[tuple, Any] = {}

    # -- data ------------------------------------------------------------------------

    def _batches(self, data: Any, steps: int | None) -> _data.Batches:
        """Checked batches, read by the one data adapter (`_data`: its first-batch,
        value-range and one-image-size checks). The first batch is read and checked,
        with the fills, the labels and the explainer's maps, before anything is computed.
        """
        source = _data.batches(
            data, batch_size=self.batch_size, steps=steps, model=self.model,
            value_range=self.value_range, name="data", what="evaluate", stacklevel=3,
        )
        self._check_first_batch(source.first.images, source.first.labels)
        return source

    def _check_first_batch(self, images: tf.Tensor, labels: Any) -> None:
        for fill in self._fills:  # one value per channel
            if isinstance(fill, Constant):
                fill.color(images.shape[-1])
        num_classes = self._saliency.num_classes(images)  # a model that is no classifier
        _checks.several_classes(
            num_classes,
            "its prediction (the argmax) never changes, so allegiance would be 1.0 whatever "
            "is deleted",
        )
        self._labels(labels, images.shape[0], num_classes)
        if not self._own_maps:
            self._explain(images[:1])  # the explainer's maps: names, shapes, values

    def _labels(self, labels: Any, size: int, num_classes: int | None = None) -> np.ndarray | None:
        if labels is None:
            return None
        return _checks.class_indices("labels", labels, size, num_classes, one_hot=True)

    def _explain(self, images: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """The maps of `self._methods` (M of them) and the intact logits."""
        wanted = [m for m in self._methods if m != RANDOM_METHOD]
        if self._own_maps and wanted:
            explanation = self._saliency.explain_step(images, methods=wanted)
            maps, logits = dict(explanation), explanation.logits
        else:
            maps = _checks.explainer_maps(self.explainer(images), wanted, images) if wanted else {}
            logits = self._saliency.logits(images)
        if RANDOM_METHOD in self._methods:
            maps[RANDOM_METHOD] = random_maps(images, tf.constant(self.seed, tf.int64))
        return maps, logits

    # -- compute ---------------------------------------------------------------------

    def _count_function(
        self, image_shape: tuple[int, ...], order: int, occluder: int, maps: tf.DType
    ) -> Any:
        # One trace per image shape, order, fill path (the gather table, or one
        # `occlude` fill) and maps' dtype, so that no item branches on its order: batch,
        # chunk and map counts vary freely.
        key = (*image_shape, order, occluder, maps)
        if key not in self._count_functions:
            height, width, channels = image_shape
            vector = tf.TensorSpec((None,), tf.int32)
            signature = [
                tf.TensorSpec((None, height, width, channels), tf.float32),  # images
                tf.TensorSpec((None, channels), tf.float32),  # fill table (see `_fill_table`)
                vector,  # each pair's first fill row
                vector,  # each pair's fill row step
                tf.TensorSpec((None, None, height, width), maps),  # maps (M, B, H, W)
                tf.TensorSpec((None, None, None), maps),  # thresholds (M, B, P)
                tf.TensorSpec((None, None, height, width), tf.int32),  # ranks (M, B, H, W)
                vector,  # intact predictions (B,)
                vector,  # labels (B,), -1 without labels
                OccludedItems(vector, vector, vector, vector),
            ]
            fill = self._occluders[occluder] if occluder >= 0 else None
            chunk = functools.partial(self._count_chunk, self.protocol.orders[order], fill)
            self._count_functions[key] = tf.function(chunk, input_signature=signature)
        return self._count_functions[key]

    def _count_chunk(
        self, order, fill, images, table, first_row, row_step, maps, thresholds, ranks, intact,
        labels, items,
    ):
        """Agreeing and correct predictions per (order, pair, fraction) for a chunk of
        items of one `order`, all with one `occlude` fill or all gathered (`fill` None):
        two int64 (O * K * P,) vectors indexed by (order * K + pair) * P + fraction."""
        height, width = images.shape[1:3]
        method = tf.gather(tf.constant(self._pair_method), items.pair)
        at = tf.stack([method, items.image], axis=1)
        counts = tf.constant(lerf_counts(self.fractions, height * width))
        mask = order.mask(Ranking(
            height * width,
            saliency=lambda: tf.gather_nd(maps, at),  # (S, H, W)
            threshold=lambda: tf.gather_nd(
                thresholds, tf.stack([method, items.image, items.fraction], axis=1)
            )[:, None, None],
            rank=lambda: tf.gather_nd(ranks, at),
            count=lambda: tf.gather(counts, items.fraction)[:, None, None],
        ))
        if fill is not None:
            intact_images = tf.gather(images, items.image)
            occluded = tf.cast(fill.occlude(intact_images, mask), tf.float32)
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
        num_pixels = height * width
        like = dataclasses.replace(
            DeletionCounts.zeros(self.protocol), num_pixels=num_pixels,
            labelled=labels is not None,
        )
        if size == 0:  # a replica's share of a short last batch may be empty
            return like
        labels = self._labels(labels, size, self._saliency.num_classes(images))
        maps, logits = self._explain(images)
        # float64 maps (an explainer's) are ranked in float64, the others with them.
        dtype = max((_checks.ranking_dtype(maps[m].dtype) for m in self._methods),
                    key=lambda d: d.size)
        stacked = tf.stack([tf.cast(maps[m], dtype) for m in self._methods])  # (M, B, H, W)
        flat = tf.reshape(stacked, (len(self._methods), size, num_pixels))
        thresholds, deleted = thresholds_and_counts(
            flat, tf.constant(threshold_indices(self.fractions, num_pixels))
        )
        ranks = tf.zeros((0, 0, height, width), tf.int32)
        if any(order.uses_ranks for order in self.protocol.orders):
            ranks = tf.reshape(ascending_ranks(flat), stacked.shape)
        morf = deleted.numpy()[self._pair_method]  # (K, B, P) pixels MoRF deletes
        filled = np.stack([
            order.filled(morf, self.fractions, num_pixels) for order in self.protocol.orders
        ])
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
        # Each pair's path: -1 for the gather table, else the index of its `occlude` fill.
        pair_path = np.array([
            self._occluders.index(self._fills[f]) if self._fills[f].mask_dependent else -1
            for f in self._pair_fill
        ])
        item_path = pair_path[items.pair]
        for o in range(len(self.orders)):
            for path in range(-1, len(self._occluders)):
                chosen = (items.order == o) & (item_path == path)
                if not chosen.any():
                    continue
                # A fill's `memory_scale`: e.g. ROAD's solver holds ~10 copies of each image.
                step = chunk if path < 0 else max(1, chunk // self._occluders[path].memory_scale)
                count = self._count_function((height, width, channels), o, path, dtype)
                chosen_items = OccludedItems(*(c[chosen] for c in items))
                for start in range(0, len(chosen_items.image), step):
                    chunk_items = OccludedItems(
                        *(tf.constant(c[start : start + step]) for c in chosen_items)
                    )
                    chunk_agree, chunk_correct = count(*batch, chunk_items)
                    agree += chunk_agree.numpy()
                    correct += chunk_correct.numpy()
        return dataclasses.replace(
            like,
            images=size,
            agree=agree.reshape(like.shape),
            correct=correct.reshape(like.shape),
            deleted=filled.sum(axis=2).astype(np.int64),
        )

    def _fill_table(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The rows occluded pixels are gathered from, and each pair's first row and step.

        The table (R, ch) holds the batch's B * H * W pixels, then one row per fill
        (a constant's value; unused for the others), then the B * H * W pixels of each
        other `values` fill's image. Pixel i of the batch (in row-major order) is row i,
        and filled by pair k it is row `first[k] + step[k] * i`: step 0 for a constant,
        1 for an image fill.
        """
        size, height, width, channels = images.shape
        num_pixels = size * height * width
        rows = [
            tf.reshape(images, (-1, channels)),
            tf.constant(np.array([
                fill.color(channels) if isinstance(fill, Constant) else (0.0,) * channels
                for fill in self._fills
            ], np.float32)),
            *(tf.reshape(self._fill_image(f, images), (-1, channels)) for f in self._image_fills),
        ]
        image_rows = num_pixels + len(self._fills)  # where the first fill image starts
        if image_rows + len(self._image_fills) * num_pixels > np.iinfo(np.int32).max:
            raise ValueError(
                f"a batch of {size} images of {height}x{width} pixels, with its image fills, "
                "has too many pixels for the evaluator's int32 indices: use smaller batches"
            )
        first, step = [], []
        for f in self._pair_fill:
            image = self._fills[f] in self._image_fills
            first.append(
                image_rows + self._image_fills.index(self._fills[f]) * num_pixels if image
                else num_pixels + int(f)
            )
            step.append(int(image))
        return tf.concat(rows, axis=0), tf.constant(first, tf.int32), tf.constant(step, tf.int32)

    @staticmethod
    def _fill_image(fill: Fill, images: tf.Tensor) -> tf.Tensor:
        """A `values` fill's image for the batch, checked: float32, the images' shape."""
        values = tf.cast(fill.values(images), tf.float32)
        if tuple(values.shape) != tuple(images.shape):
            raise ValueError(
                f"the fill {fill.name!r}'s `values` must return the images' shape "
                f"{tuple(images.shape)}, it returned {tuple(values.shape)}"
            )
        return values

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
        source = self._batches(data, steps)
        total = source.total
        if total is None and num_images is not None:
            total = _checks.positive_int("num_images", num_images)
        progress = keras.utils.Progbar(total, verbose=verbose, unit_name="image")
        if strategy is None:
            steps: Iterator[DeletionCounts] = (
                self._batch_counts(images, labels) for images, labels, _ in source
            )
        else:
            steps = self._distributed_counts(source, strategy)  # summed by the strategy
        totals: DeletionCounts | None = None
        for counts in steps:
            totals = counts if totals is None else totals + counts
            progress.update(int(totals.images))
        if totals is None or int(totals.images) == 0:
            raise ValueError("`data` holds no images: there is nothing to evaluate")
        return totals.to_result()

    def _distributed_counts(
        self, source: _data.Batches, strategy: Any
    ) -> Iterator[DeletionCounts]:
        distributed = strategy.experimental_distribute_dataset(source.dataset())
        first = source.first
        like = dataclasses.replace(
            DeletionCounts.zeros(self.protocol),
            num_pixels=first.images.shape[1] * first.images.shape[2],
            labelled=first.labels is not None,
        )

        def replica_step(element):
            # A replica's share gets a later batch's checks, one image size included.
            images, labels, _ = _data.unpack(element, "data")
            return self._batch_counts(source.check(images), labels).pack()

        for element in distributed:
            per_replica = strategy.run(replica_step, args=(element,))
            reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            yield like.unpack(reduced.numpy())

    def batch_counts(self, images: Any, labels: Any = None) -> DeletionCounts:
        """The additive counts of one batch, checked as `evaluate` checks its first batch.

        Counts of any split of a dataset into batches (on one machine or many) add up,
        with `+` or `DeletionCounts.sum`, to exactly the counts `evaluate` makes of the
        whole; `result` turns them into curves. Counts carry `protocol.fingerprint`:
        adding counts of differently configured evaluators raises a ValueError.

        Args:
            images: float images (B, H, W, ch) in `value_range`, an array or tensor
                (more than `batch_size` images are counted `batch_size` at a time).
            labels: optional class labels of the images (as `evaluate` takes them).

        Returns:
            a `DeletionCounts`.

        Example:
            >>> counts = DeletionCounts.sum(evaluator.batch_counts(x) for x in shards)
            >>> counts.save("counts-0.npz"); result = evaluator.result(counts)
        """
        source = self._batches(images if labels is None else (images, labels), None)
        return DeletionCounts.sum(self._batch_counts(x, y) for x, y, _ in source)

    def result(self, counts: DeletionCounts) -> AllegianceResult:
        """The `AllegianceResult` of counts made by this evaluator's protocol (summed
        `batch_counts`, or loaded with `DeletionCounts.load`)."""
        if not isinstance(counts, DeletionCounts):
            raise TypeError(f"`counts` must be a DeletionCounts, received {type(counts).__name__}")
        if counts.fingerprint != self.protocol.fingerprint:
            raise ValueError(
                "`counts` were made by another protocol (fingerprint "
                f"{counts.fingerprint[:12]}..., this evaluator's {self.protocol.fingerprint[:12]}"
                "...): fractions, pairs, fills, orders, value_range, seed or explainer differ"
            )
        return counts.to_result()


def _describe(
    explainer: Any, attribution: Any, value_range: tuple[float, float], precision: Any
) -> str:
    """What makes the maps, for the protocol's fingerprint: the default explainer's
    attribution (and its precision, when not float32: the float32 description, and so
    its fingerprints, are as before), or the explainer's type."""
    if explainer is None or isinstance(explainer, SignedSaliency):
        made = as_attribution(attribution, value_range) if explainer is None else (
            explainer.attribution
        )
        if explainer is None:
            precision = check_precision(precision)
        else:
            precision = explainer.precision
        if precision != "float32":
            return f"SignedSaliency({made!r}, precision={precision!r})"
        return f"SignedSaliency({made!r})"
    kind = explainer if callable(explainer) and hasattr(explainer, "__qualname__") else type(
        explainer
    )
    return f"{getattr(kind, '__module__', '')}.{getattr(kind, '__qualname__', repr(kind))}"
