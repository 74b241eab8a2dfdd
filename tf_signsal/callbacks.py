"""Keras callbacks that follow sign-aware maps and allegiance while a model trains.

`SaliencyMapsCallback` explains a fixed probe batch before training and after
every n-th epoch, and writes the maps as figures, arrays and TensorBoard
images. `AllegianceCallback` runs the deletion benchmark on a held-out set and
adds its AUCs to the epoch's logs, where History, the progress bar, CSVLogger,
Keras's TensorBoard callback, ModelCheckpoint and EarlyStopping see them.

Neither perturbs training: the model is only called in inference mode, and
weights, optimizer state and BatchNorm statistics are left untouched.
"""

from __future__ import annotations

import glob
import io
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from tf_signsal import _checks, _data, plotting
from tf_signsal._io import write_atomic
from tf_signsal.attributions import Attribution, as_attribution
from tf_signsal.evaluation import (
    DELETION_METHODS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    AllegianceEvaluator,
    AllegianceResult,
    DeletionProtocol,
    Pair,
    pair_name,
)
from tf_signsal.maps import METHODS, SignedSaliency
from tf_signsal.precision import check_precision, copy_weights

FORMATS: tuple[str, ...] = ("png", "npz", "tensorboard")

# Failures of the file system (full disk, read-only folder, missing parent) and
# TensorFlow's own file errors: these warn, and training goes on.
_IO_ERRORS = (OSError, tf.errors.OpError)

# The callbacks' files, one per logged epoch: written here, read back by `read_map_log`.
EPOCH_FILE = "epoch_{epoch:04d}.{ext}"
"""The file name of one logged epoch: `epoch_0003.npz`, `epoch_0003.png`, `epoch_0003.json`."""
_EPOCH_PATTERN = re.compile(r"epoch_(\d+)\.(\w+)$")


def _epoch_files(folder: str, extensions: Sequence[str]) -> list[tuple[int, str]]:
    """The (epoch, path) pairs of the `EPOCH_FILE`s of `extensions` in `folder`, by epoch."""
    found = []
    for path in glob.glob(os.path.join(folder, "epoch_*.*")):
        match = _EPOCH_PATTERN.search(os.path.basename(path))
        if match and match.group(2) in extensions:
            found.append((int(match.group(1)), path))
    return sorted(found)


def logged_epochs(log_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """The (epoch, npz path) pairs that `SaliencyMapsCallback` wrote in `log_dir`, by epoch."""
    return _epoch_files(os.fspath(log_dir), ("npz",))


def _check_earlier_run(
    callback: str, option: str, folder: str, extensions: Sequence[str], first: int,
    overwrite: bool,
) -> None:
    """At the start of a `fit` whose first epoch is `first` (its `initial_epoch`): let it
    continue the epoch files an earlier run left in `folder` (none past `first`), remove
    them when it would write over them and `overwrite`, else refuse (FileExistsError)."""
    found = _epoch_files(folder, extensions)
    if not found or first >= found[-1][0]:
        return
    if not overwrite:
        raise FileExistsError(
            f"{callback}: `{option}` {folder} holds the epoch files of an earlier run (epochs "
            f"{found[0][0]} to {found[-1][0]}), and this fit starts at epoch {first}: it would "
            f"write over them. Pass a new `{option}`, overwrite=True to replace that run, or "
            f"initial_epoch={found[-1][0]} to `fit` to continue it"
        )
    for _, path in found:
        os.remove(path)


class MapLog(NamedTuple):
    """One probe image's map across the epochs that `SaliencyMapsCallback` logged.

    Attributes:
        epochs: the logged epochs, in order.
        maps: float (E, H, W), the image's map at each logged epoch.
        predictions: int (E,), the class predicted at each logged epoch.
        image: the image (H, W, ch), or None when the files do not hold it.
        class_names: the class names, or None when the files do not hold them.
    """

    epochs: tuple[int, ...]
    maps: np.ndarray
    predictions: np.ndarray
    image: np.ndarray | None
    class_names: list[str] | None


def read_map_log(log_dir: str | os.PathLike, image_index: int, method: str) -> MapLog:
    """Read one image's map back from the `epoch_NNNN.npz` files of `SaliencyMapsCallback`.

    Args:
        log_dir: the callback's `log_dir`.
        image_index: which image of the probe batch.
        method: one of `METHODS` that the callback logged.

    Returns:
        A `MapLog` of plain numpy arrays, what `plotting.plot_map_evolution` draws.

    Example:
        >>> log = read_map_log("logs/maps", image_index=3, method="positive")
        >>> log.epochs, log.maps.shape
    """
    image_index = _checks.non_negative_int("image_index", image_index)
    epochs = logged_epochs(log_dir)
    if not epochs:
        raise ValueError(f"`log_dir` {os.fspath(log_dir)!r} holds no epoch_NNNN.npz file")
    maps, predictions, image, class_names = [], [], None, None
    for _, path in epochs:
        with np.load(path) as data:
            if method not in data.files:
                logged = [m for m in METHODS if m in data.files]
                raise ValueError(
                    f"`method` must be one of the logged maps {logged}, received {method!r}"
                )
            batch = data[method].shape[0]
            if image_index >= batch:
                raise ValueError(
                    f"`image_index` must be an integer in [0, {batch}), received {image_index!r}"
                )
            maps.append(data[method][image_index])
            predictions.append(int(data["predictions"][image_index]))
            if image is None and "images" in data.files:
                image = data["images"][image_index]
            if class_names is None and "class_names" in data.files:
                class_names = [str(n) for n in data["class_names"]]
    return MapLog(
        tuple(e for e, _ in epochs), np.stack(maps), np.array(predictions, np.int64), image,
        class_names,
    )


def _check_prefix(prefix: Any) -> str:
    """A non-empty string: TypeError for another type, ValueError for ""."""
    if not isinstance(prefix, str):
        raise TypeError(f"`prefix` must be a non-empty string, received {prefix!r}")
    if not prefix:
        raise ValueError(f"`prefix` must be a non-empty string, received {prefix!r}")
    return prefix


def _warn_io(callback: str, what: str, error: Exception) -> None:
    warnings.warn(
        f"{callback}: could not write {what} ({type(error).__name__}: {error}); "
        "training goes on without it.",
        RuntimeWarning,
        stacklevel=3,
    )


class SaliencyMapsCallback(keras.callbacks.Callback):
    """Log the sign-aware maps of a fixed probe batch while a model trains.

    Before the first training step (file `epoch_0000.*`, the untrained network)
    and at the end of every `every_n_epochs`-th epoch (1-based: after the third
    epoch, `epoch_0003.*`), the probe images are explained with the current
    weights and written to `log_dir` as:

    - png: the paper's Fig. 1 layout (image | one map per method), `hot`
      colormap with its [0, 1] colour bar, each row titled with the true and
      predicted classes (`plotting.plot_maps_grid`); with `overlay=True`, each
      map drawn half-transparent over its image instead (`plotting.plot_overlays`);
    - npz: one (B, H, W) array per method, `logits` (B, C), `predictions` (B,),
      `images`, `epoch`, and `labels`, `targets`, `class_names` when given;
    - tensorboard: one image summary per method (`maps/<method>`, hot colormap)
      and the inputs once (`maps/inputs`), at step = epoch, in an event file
      directly under `log_dir`.

    png and npz files are written through a temporary file and a rename, so an
    interrupted run never leaves a half-written one; TensorBoard event files are
    append-only records with checksums. An I/O error (full disk, read-only
    folder) gives a `RuntimeWarning` and training goes on.

    The maps are computed in inference mode (`training=False`): weights,
    optimizer state and BatchNorm statistics stay exactly as without the
    callback. `SignedSaliency`'s compiled functions read the model's live
    variables, so each logged epoch shows that epoch's weights.

    When `fit` starts at `initial_epoch=k`, the "before training" maps are
    written as epoch k (unless `log_dir` holds epoch k already).

    A second `fit` into the same `log_dir` never writes over the png and npz
    files of the first silently: it continues them when it resumes where they
    end (`initial_epoch` at least their last epoch, e.g. `fit(..., epochs=10,
    initial_epoch=5)` after 5 epochs), and otherwise raises FileExistsError
    before its first step, unless `overwrite=True`, which removes them first.
    TensorBoard events go to a new file per `fit`, as Keras's TensorBoard does.

    Args:
        images: the probe batch, float (B, H, W, ch) in the model's input range,
            or a tuple (images, labels) (whose labels are then `labels`). To take it
            from a dataset: `next(iter(dataset))`.
        log_dir: folder of the outputs (created when needed).
        methods: which of `METHODS` to compute.
        targets: None to explain each image's predicted class at that epoch
            (the paper's choice), or one class index per image.
        every_n_epochs: log after every n-th epoch (the first picture, before
            training, is always written).
        formats: any of "png", "npz", "tensorboard".
        class_names: optional class names, used in the figure titles.
        labels: optional true class index of each probe image, shape (B,) or
            (B, 1) (as `keras.datasets` gives them).
        attribution: what the maps are of: "gradient" (the paper),
            "gradient_x_input", "integrated_gradients", "smoothgrad", or a
            configured `tf_signsal.attributions` object (see `SignedSaliency`).
        value_range: (low, high) of the model's input (SmoothGrad's noise scale,
            named baselines).
        overlay: draw the png's maps over their images (`plotting.plot_overlays`)
            rather than beside them.
        precision: "float32" (default) or "bfloat16": the maps' passes run on a
            bfloat16 copy of the model (see `SignedSaliency`), given the model's
            current weights at each logged epoch.
        overwrite: let a `fit` that does not continue the epoch files already in
            `log_dir` remove them (see above); by default it is refused.

    Example:
        >>> maps_cb = SaliencyMapsCallback(x_test[:8], "logs/maps", labels=y_test[:8],
        ...                                class_names=["airplane", ...])
        >>> model.fit(x_train, y_train, epochs=10, callbacks=[maps_cb])
        >>> fig = tf_signsal.plotting.plot_map_evolution("logs/maps", 0, "positive")
    """

    def __init__(
        self,
        images: Any,
        log_dir: str | os.PathLike,
        methods: Sequence[str] = METHODS,
        targets: Any = None,
        every_n_epochs: int = 1,
        formats: Sequence[str] = FORMATS,
        class_names: Sequence[str] | None = None,
        labels: Any = None,
        attribution: str | Attribution = "gradient",
        value_range: tuple[float, float] = (0.0, 1.0),
        overlay: bool = False,
        overwrite: bool = False,
        precision: str = "float32",
    ):
        super().__init__()
        self.value_range = _checks.value_range(value_range)
        self.attribution = as_attribution(attribution, self.value_range)
        self.precision = check_precision(precision)
        self.overlay = _checks.boolean("overlay", overlay)
        self.overwrite = _checks.boolean("overwrite", overwrite)
        # Read as every consumer reads images (`_data`): an array, or (images, labels).
        probe = _data.batches(images, name="images", what="log", allow_empty=True).stack()
        if probe.labels is not None:
            if labels is not None:
                raise ValueError(
                    "`labels` is given twice: as `labels` and in `images` = (images, labels); "
                    "give it once"
                )
            labels = probe.labels
        self.images = probe.images.numpy()
        batch = self.images.shape[0]
        if batch == 0:
            raise ValueError("`images` must hold at least one probe image, received an empty batch")
        self.log_dir = os.fspath(log_dir)
        self.methods = _checks.check_choices("methods", methods, METHODS)
        self.targets = None if targets is None else _checks.class_indices("targets", targets, batch)
        self.every_n_epochs = _checks.positive_int("every_n_epochs", every_n_epochs)
        self.formats = _checks.check_choices("formats", formats, FORMATS)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.labels = (
            None if labels is None else _checks.class_indices("labels", labels, batch)
        )
        for name, indices in (("labels", self.labels), ("targets", self.targets)):
            if indices is not None and self.class_names is not None and indices.size and (
                indices.max() >= len(self.class_names)
            ):
                raise ValueError(
                    f"`class_names` holds {len(self.class_names)} names, but `{name}` go up "
                    f"to class {indices.max()}"
                )
        if self.labels is not None:
            self.labels = self.labels.astype(np.int64)
        self._saliency: SignedSaliency | None = None
        self._writer: Any = None
        self._inputs_logged = False
        self._log_before_training = False

    # Keras hooks ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._log_before_training = True

    def on_epoch_begin(self, epoch, logs=None):
        # Logged here rather than in on_train_begin to know `initial_epoch`.
        if self._log_before_training:
            self._log_before_training = False
            files = ("png", "npz")
            if set(files) & set(self.formats):
                _check_earlier_run(
                    type(self).__name__, "log_dir", self.log_dir, files, epoch, self.overwrite
                )
            # A resumed run's epoch k is logged already: the earlier run's is kept.
            if epoch not in {e for e, _ in _epoch_files(self.log_dir, files)}:
                self.log_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self.log_epoch(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            try:
                self._writer.close()
            except _IO_ERRORS as error:
                _warn_io(type(self).__name__, f"the TensorBoard events in {self.log_dir}", error)
            self._writer = None
            self._inputs_logged = False

    # Work ----------------------------------------------------------------

    def compute(self) -> dict[str, np.ndarray]:
        """Explain the probe batch with the model's current weights.

        Returns:
            dict with one (B, H, W) array per method, `logits` (B, C) and
            `predictions` (B,).
        """
        if self._saliency is None or self._saliency.model is not self.model:
            # Built once: its traced functions read the live weights at each call.
            self._saliency = SignedSaliency(
                self.model, attribution=self.attribution, value_range=self.value_range,
                precision=self.precision,
            )
        # A bfloat16 copy was made with the weights of its time: give it this epoch's.
        copy_weights(self.model, self._saliency.compute_model)
        _checks.check_model_input(self.model, self.images)
        num_classes = self._saliency.num_classes(self.images)
        if self.class_names is not None and len(self.class_names) != num_classes:
            raise ValueError(
                f"`class_names` holds {len(self.class_names)} names, but the model has "
                f"{num_classes} classes"
            )
        explanation = self._saliency.explain(self.images, self.targets, self.methods)
        arrays = {method: explanation[method].numpy() for method in self.methods}
        arrays["logits"] = explanation.logits.numpy()
        arrays["predictions"] = np.argmax(arrays["logits"], axis=1)
        return arrays

    def log_epoch(self, epoch: int) -> None:
        """Compute the maps and write every requested format for `epoch`."""
        arrays = self.compute()
        name = type(self).__name__
        try:
            os.makedirs(self.log_dir, exist_ok=True)
        except OSError as error:
            _warn_io(name, f"the folder {self.log_dir}", error)
            return
        writers = {"png": self._write_png, "npz": self._write_npz, "tensorboard": self._write_tb}
        for format_ in self.formats:
            path = os.path.join(self.log_dir, EPOCH_FILE.format(epoch=epoch, ext=format_))
            try:
                writers[format_](epoch, arrays, path)
            except _IO_ERRORS as error:
                what = path if format_ != "tensorboard" else f"TensorBoard events in {self.log_dir}"
                _warn_io(name, what, error)

    def _write_png(self, epoch: int, arrays: dict[str, np.ndarray], path: str) -> None:
        titles = plotting.prediction_titles(
            arrays["predictions"], self.labels, self.class_names, separator="\n"
        )
        if self.overlay:
            figure = plotting.plot_overlays(
                self.images, arrays, self.methods, titles=titles, suptitle=f"epoch {epoch}"
            )
        else:
            figure = plotting.plot_maps_grid(
                self.images, arrays, self.methods, titles=titles, suptitle=f"epoch {epoch}",
                colorbar=True,
            )
        plotting.save_figure(figure, path)

    def _write_npz(self, epoch: int, arrays: dict[str, np.ndarray], path: str) -> None:
        content = dict(arrays, images=self.images, epoch=np.int64(epoch))
        optional = {"labels": self.labels, "targets": self.targets, "class_names": self.class_names}
        content.update({k: np.asarray(v) for k, v in optional.items() if v is not None})
        buffer = io.BytesIO()
        np.savez(buffer, **content)
        write_atomic(path, buffer.getvalue())

    def _write_tb(self, epoch: int, arrays: dict[str, np.ndarray], path: str) -> None:
        del path  # the events go to one growing file per run, named by TensorFlow
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        colormap = matplotlib.colormaps["hot"]
        batch = self.images.shape[0]
        with self._writer.as_default(step=epoch):
            if not self._inputs_logged:
                tf.summary.image("maps/inputs", np.clip(self.images, 0, 1), max_outputs=batch)
                self._inputs_logged = True
            for method in self.methods:
                coloured = colormap(arrays[method])[..., :3].astype(np.float32)
                tf.summary.image(f"maps/{method}", coloured, max_outputs=batch)
        self._writer.flush()


class AllegianceCallback(keras.callbacks.Callback):
    """Add the deletion benchmark's AUCs to the epoch's logs while a model trains.

    At the end of the first epoch of each `fit` and of every `every_n_epochs`-th
    epoch (1-based), an `AllegianceEvaluator` runs on `data` with the current
    weights, and each pair's AUC is added to the epoch's `logs` as
    `f"{prefix}_auc_{method}_{fill}"`, e.g. `allegiance_auc_positive_black`
    (lower is better: the map found the pixels the model relies on). The
    values then appear in the History, the progress bar, CSVLogger, Keras's
    TensorBoard callback, and can be monitored by ModelCheckpoint or
    EarlyStopping (`mode="min"`).

    Order matters: Keras calls callbacks in list order and they share the
    logs, so put this callback BEFORE CSVLogger, TensorBoard, ModelCheckpoint
    and EarlyStopping in the `callbacks` list (History and the progress bar
    always come last).

    On the other epochs nothing is added: EarlyStopping and ModelCheckpoint
    skip those epochs (with a warning), and History holds one value per
    evaluated epoch (`evaluated_epochs` says which). The first epoch is always
    evaluated so that CSVLogger, which fixes its columns at its first row,
    has the AUC columns ("NA" on the other epochs).

    The evaluation runs in inference mode and leaves training as it is
    without the callback. Every argument but `data` is checked here, when the
    callback is made; `data` is checked by the evaluator at the first
    evaluation.

    Args:
        data: the held-out set, as `AllegianceEvaluator.evaluate` takes it:
            images, (images, labels) arrays, or a finite `tf.data.Dataset`.
            Keep it small (a few hundred images): it is evaluated every time.
        every_n_epochs: evaluate after every n-th epoch.
        pairs: (method, fill) pairs, methods from `DELETION_METHODS` (the five
            maps and the "random" control), fills as `AllegianceEvaluator` takes
            them (e.g. `Blur(2.0)`, "road", "black"); the paper's six by default.
        fractions: deletion fractions; the paper's 13 by default.
        prefix: prefix of the log keys.
        save_dir: optional folder for each evaluated epoch's full curves, as
            `AllegianceResult` JSON (`epoch_0003.json`), written atomically; an
            I/O error gives a `RuntimeWarning` and training goes on. A second
            `fit` never writes over the files of the first silently: it continues
            them when it resumes where they end (`initial_epoch` at least their
            last epoch), and otherwise raises FileExistsError before its first
            step, unless `overwrite=True`.
        batch_size: images per saliency pass for array data.
        value_range: (black, white), the ends of the model's input range.
        attribution: what the maps are of (see `SignedSaliency`): "gradient"
            (the paper), "gradient_x_input", "integrated_gradients",
            "smoothgrad" or a configured `tf_signsal.attributions` object.
        precision: "float32" (default) or "bfloat16": the maps and the deletions'
            forward passes run on a bfloat16 copy of the model (see
            `SignedSaliency`), given the model's current weights at each evaluation.
        protocol: a `DeletionProtocol` to evaluate (its fractions, pairs, orders,
            value range and seed) instead of `pairs`, `fractions` and
            `value_range`; the logs hold MoRF's AUCs.
        overwrite: let a `fit` that does not continue the epoch files already in
            `save_dir` remove them first; by default it is refused.

    Attributes:
        results: {epoch: AllegianceResult} of the evaluated epochs (1-based).
        protocol: the checked `DeletionProtocol` (the evaluator's adds the
            explainer to its fingerprint).
        pairs, fractions, batch_size, value_range: the checked arguments, as
            the evaluator gets them (`pairs` as the results' keys).

    Example:
        >>> allegiance = AllegianceCallback((x_val[:256], y_val[:256]), save_dir="logs/allegiance")
        >>> model.fit(x, y, epochs=10, callbacks=[
        ...     allegiance,                                  # before the callbacks that read logs
        ...     keras.callbacks.CSVLogger("training.csv"),
        ...     keras.callbacks.EarlyStopping("allegiance_auc_positive_black", mode="min"),
        ... ])
    """

    def __init__(
        self,
        data: Any,
        every_n_epochs: int = 1,
        pairs: Sequence[Pair] = PAPER_PAIRS,
        fractions: Sequence[float] = PAPER_FRACTIONS,
        prefix: str = "allegiance",
        save_dir: str | os.PathLike | None = None,
        batch_size: int = 128,
        value_range: tuple[float, float] = (0.0, 1.0),
        attribution: str | Attribution = "gradient",
        protocol: DeletionProtocol | None = None,
        overwrite: bool = False,
        precision: str = "float32",
    ):
        super().__init__()
        self.overwrite = _checks.boolean("overwrite", overwrite)
        self.precision = check_precision(precision)
        if isinstance(data, tf.data.Dataset):  # evaluated every time: it must end
            _checks.finite_dataset(data, "data")
        self.data = data
        self.every_n_epochs = _checks.positive_int("every_n_epochs", every_n_epochs)
        if protocol is None:
            protocol = DeletionProtocol(fractions, pairs, value_range=value_range)
        elif not isinstance(protocol, DeletionProtocol):
            raise TypeError(f"`protocol` must be a DeletionProtocol, received {protocol!r}")
        elif pairs is not PAPER_PAIRS or fractions is not PAPER_FRACTIONS or tuple(
            value_range
        ) != (0.0, 1.0):
            raise ValueError("give `protocol` or `pairs`/`fractions`/`value_range`, not both")
        protocol.check_methods(DELETION_METHODS)
        self.protocol = protocol
        self.pairs, self.fractions = protocol.keys, protocol.fractions
        self.prefix = _check_prefix(prefix)
        self.save_dir = None if save_dir is None else os.fspath(save_dir)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.value_range = protocol.value_range
        self.attribution = as_attribution(attribution, self.value_range)
        self.results: dict[int, AllegianceResult] = {}
        self._evaluator: AllegianceEvaluator | None = None
        self._first_epoch = True

    def log_key(self, pair: Pair) -> str:
        """The logs key of a pair's AUC, e.g. "allegiance_auc_positive_black"."""
        return f"{self.prefix}_auc_" + pair_name(pair).replace("/", "_")

    @property
    def evaluated_epochs(self) -> list[int]:
        """The 1-based epochs whose AUCs were logged, in order."""
        return sorted(self.results)

    def set_model(self, model):
        super().set_model(model)
        if self._evaluator is None or self._evaluator.model is not model:
            # The evaluator needs the model, so it is built here, when `fit` starts (the
            # arguments were checked in __init__); once per model, as its traced
            # functions read the live weights.
            self._evaluator = AllegianceEvaluator(
                model,
                fractions=self.fractions,
                pairs=self.protocol.pairs,
                batch_size=self.batch_size,
                value_range=self.value_range,
                orders=self.protocol.orders,
                seed=self.protocol.seed,
                attribution=self.attribution,
                precision=self.precision,
            )

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and self.save_dir is not None:  # `initial_epoch` is known here
            _check_earlier_run(
                type(self).__name__, "save_dir", self.save_dir, ("json",), epoch, self.overwrite
            )

    def on_epoch_end(self, epoch, logs=None):
        first, self._first_epoch = self._first_epoch, False
        if not first and (epoch + 1) % self.every_n_epochs != 0:
            return
        result = self.evaluate()
        self.results[epoch + 1] = result
        if logs is not None:
            logs.update({self.log_key(pair): float(auc) for pair, auc in result.auc.items()})
        if self.save_dir is not None:
            path = os.path.join(
                self.save_dir, EPOCH_FILE.format(epoch=epoch + 1, ext="json")
            )
            try:
                os.makedirs(self.save_dir, exist_ok=True)
                result.save_json(path)
            except OSError as error:
                _warn_io(type(self).__name__, path, error)

    def evaluate(self) -> AllegianceResult:
        """Run the deletion benchmark on `data` with the model's current weights."""
        if self._evaluator is None:
            raise RuntimeError("AllegianceCallback.evaluate needs a model: call set_model first")
        # A bfloat16 copy was made with the weights of its time: give it today's.
        copy_weights(self._evaluator.model, self._evaluator.explainer.compute_model)
        return self._evaluator.evaluate(self.data, verbose=0)
