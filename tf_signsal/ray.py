"""Ray Data: the deletion benchmark and the maps of a `ray.data.Dataset`, equal to one process.

A thin layer over the public pieces: each Ray actor loads the model once
(`tf_signsal.load_model`, a `.keras` file or a SavedModel directory) and runs the package's
own code on its batches, `AllegianceEvaluator.batch_counts` for `evaluate` and
`SignedSaliency.explain` for `write_maps`. Counts are integers summed on the driver, so
`evaluate` gives the one-process `AllegianceEvaluator.evaluate` result exactly, however
Ray cuts the batches; `write_maps` explains each shard's images in `batch_size` batches
from the shard's first index, as `explain(images, batch_size=batch_size)` does in one
process, so the stored maps are its maps.

Install with `pip install "tf_signsal[ray]"`; the rest of the package never imports this
module, and Ray is imported when a function here is called.

Resources: each actor asks Ray for `num_cpus` logical CPUs (0.5 by default) and `num_gpus`
GPUs. TensorFlow uses every core of its machine whatever Ray reserves; an actor that
reserves whole CPUs can leave none to the tasks that read the data, and on a 2-CPU
machine the job then waits forever. Several actors may share a GPU (`num_gpus=0.5`): each
lets TensorFlow grow its GPU memory as needed instead of taking it all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from tf_signsal import _checks, maps_io
from tf_signsal._io import check_output_path, manifest_name, read_json, write_json
from tf_signsal.vocabulary import METHODS

DEFAULT_NUM_CPUS = 0.5
"""The logical CPUs an actor reserves by default: a fraction, so that the reading tasks
always find a CPU (see the module docstring)."""
_SHARD_KEY = "__tf_signsal_shard"
_MANIFEST = manifest_name("maps")


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError(
            f"tf_signsal.ray needs Ray Data: pip install 'tf_signsal[ray]' ({error})"
        ) from None
    return ray


class MapsWritten(NamedTuple):
    """What `write_maps` did.

    Attributes:
        path: the map folder (read it with `tf_signsal.read_maps`).
        images: the number of images it holds.
        shards: the number of shards.
        skipped: the shards already complete from an earlier run, not computed again.
    """

    path: str
    images: int
    shards: int
    skipped: int


# ----------------------------------------------------------------------------- checks


def _check_dataset(ray: Any, dataset: Any, columns: dict[str, str | None]) -> list[str]:
    """The dataset's needed columns, each present (`columns`: argument -> column)."""
    if not isinstance(dataset, ray.data.Dataset):
        raise TypeError(f"`dataset` must be a ray.data.Dataset, received {type(dataset).__name__}")
    for argument, column in columns.items():
        if column is not None and not (isinstance(column, str) and column):
            raise TypeError(f"`{argument}` must be a column name, received {column!r}")
    schema = dataset.schema()  # Ray may run the pipeline's first block to know it
    names = list(schema.names) if schema is not None else []
    needed = [column for column in columns.values() if column is not None]
    for argument, column in columns.items():
        if column is not None and column not in names:
            raise ValueError(
                f"`{argument}` is {column!r}, but `dataset` has no such column: its columns are "
                f"{names}"
            )
    return list(dict.fromkeys(needed))


def _resources(concurrency: Any, num_cpus: Any, num_gpus: Any) -> dict[str, Any]:
    """Ray's actor-pool options, checked."""
    if not isinstance(concurrency, tuple):
        concurrency = _checks.positive_int("concurrency", concurrency)
    elif len(concurrency) != 2 or not all(
        _checks.positive_int("concurrency", n) for n in concurrency
    ) or concurrency[0] > concurrency[1]:
        raise ValueError(
            "`concurrency` must be a number of actors or a (min, max) pair of them, received "
            f"{concurrency}"
        )
    return {
        "concurrency": concurrency,
        "num_cpus": _checks.real("num_cpus", num_cpus, minimum=0, strict=True),
        "num_gpus": _checks.real("num_gpus", num_gpus, minimum=0),
    }


def _grow_gpu_memory() -> None:
    """Let TensorFlow grow its GPU memory, so that actors sharing a GPU fit (before the
    first use of TensorFlow in the actor)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def _load(model: Any) -> Any:
    from tf_signsal.loading import load_model

    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "`model` must be the path of a .keras file or a SavedModel directory (each actor "
            f"loads it once), received {type(model).__name__}; save a Keras model with "
            "model.save('model.keras')"
        )
    return load_model(model)


# ----------------------------------------------------------------------------- evaluate


class _CountBatches:
    """A Ray actor's work for `evaluate`: the counts of each batch, as bytes."""

    def __init__(self, model: str, image_column: str, label_column: str | None,
                 options: dict[str, Any]):
        from tf_signsal.evaluation import AllegianceEvaluator

        _grow_gpu_memory()
        self.evaluator = AllegianceEvaluator(_load(model), **options)
        self.image_column, self.label_column = image_column, label_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        labels = None if self.label_column is None else batch[self.label_column]
        counts = self.evaluator.batch_counts(batch[self.image_column], labels)
        return {"counts": np.array([counts.to_bytes()], dtype=object)}


def evaluate(
    dataset: Any,
    model: str | os.PathLike,
    *,
    image_column: str = "image",
    label_column: str | None = None,
    batch_size: int = 64,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = DEFAULT_NUM_CPUS,
    num_gpus: float = 0,
    **evaluator_options: Any,
) -> Any:
    """The deletion benchmark of `dataset` on Ray, equal to `AllegianceEvaluator.evaluate`.

    Each actor builds `AllegianceEvaluator(load_model(model), **evaluator_options)` once
    and returns the `DeletionCounts` of each batch; the driver refuses counts of another
    protocol (a worker configured differently: other fractions, pairs, fills, orders,
    seed or attribution), sums the rest and turns them into the result.

    Args:
        dataset: a `ray.data.Dataset` with an image column (float images (H, W, ch) in
            the evaluator's `value_range`, one size) and optionally a label column.
        model: the path of a `.keras` file or a SavedModel directory, loaded once per
            actor (and once on the driver, which checks it and the options first).
        image_column: the column of the images.
        label_column: the column of the class labels (they give `accuracy`), or None.
        batch_size: images per batch (per explainer pass).
        concurrency: the number of actors, or a (min, max) pair for an autoscaling pool.
        num_cpus: the logical CPUs each actor reserves (see the module docstring).
        num_gpus: the GPUs each actor reserves; a fraction shares a GPU.
        **evaluator_options: `AllegianceEvaluator`'s options (fractions, pairs, orders,
            value_range, seed, attribution, memory_budget, ...), but `explainer`: the
            actors explain with the package's maps of their own copy of the model.

    Returns:
        an `AllegianceResult`.

    Example:
        >>> ds = ray.data.from_numpy(images).rename_columns({"data": "image"})
        >>> result = tf_signsal.ray.evaluate(ds, "model.keras", orders=("morf", "lerf"))
    """
    from tf_signsal.evaluation import AllegianceEvaluator

    ray = _ray()
    if "explainer" in evaluator_options:
        raise ValueError(
            "`explainer` is not taken on Ray: each actor explains with the package's maps of "
            "its own copy of the model (choose them with `attribution`); for another "
            "explainer, sum AllegianceEvaluator.batch_counts of your batches yourself"
        )
    batch_size = _checks.positive_int("batch_size", batch_size)
    resources = _resources(concurrency, num_cpus, num_gpus)
    columns = _check_dataset(ray, dataset, {"image_column": image_column,
                                            "label_column": label_column})
    # The driver's evaluator: the options and the model checked before any work, and the
    # protocol the workers' counts must carry.
    options = {**evaluator_options, "batch_size": batch_size}
    evaluator = AllegianceEvaluator(_load(model), **options)
    counted = dataset.select_columns(columns).map_batches(
        _CountBatches,
        fn_constructor_args=(os.fspath(model), image_column, label_column, options),
        batch_size=batch_size, batch_format="numpy", **resources,
    )
    payloads = (
        payload for batch in counted.iter_batches(batch_size=None, batch_format="numpy")
        for payload in batch["counts"]
    )
    return evaluator.result(_total(payloads, evaluator.protocol))


def _total(payloads: Iterable[bytes], protocol: Any) -> Any:
    """The sum of the workers' counts (`DeletionCounts.to_bytes`) made by `protocol`;
    counts of another protocol are refused, not summed."""
    from tf_signsal.evaluation.counts import DeletionCounts

    total = DeletionCounts.zeros(protocol)
    for payload in payloads:
        counts = DeletionCounts.from_bytes(bytes(payload))
        if counts.fingerprint != protocol.fingerprint:
            raise ValueError(
                "a worker's counts were made by another protocol (fingerprint "
                f"{counts.fingerprint[:12]}..., the driver's {protocol.fingerprint[:12]}...: "
                "fractions, pairs, fills, orders, value_range, seed or attribution differ, or "
                "the worker runs another tf_signsal): refused, not summed"
            )
        total = total + counts
    if total.images == 0:
        raise ValueError("`dataset` holds no images: there is nothing to evaluate")
    return total


# ----------------------------------------------------------------------------- maps


def _shard_keys(batch: dict[str, np.ndarray], index_column: str, shard_size: int
                ) -> dict[str, np.ndarray]:
    """The batch with each image's shard (index // shard_size), its index checked."""
    index = np.asarray(batch[index_column])
    if index.ndim != 1 or index.dtype.kind not in "iu" or (index.size and index.min() < 0):
        raise ValueError(
            f"the `index_column` {index_column!r} must hold one non-negative integer per "
            f"image, received dtype {index.dtype} and shape {index.shape}"
        )
    return {**batch, _SHARD_KEY: index // shard_size}


class _WriteShards:
    """A Ray actor's work for `write_maps`: explain one shard's images and write it, or
    skip it when the folder holds it complete already."""

    def __init__(self, model: str, path: str, methods: tuple[str, ...], attribution: Any,
                 rivals: int | None, image_column: str, index_column: str, batch_size: int,
                 shard_size: int):
        from tf_signsal.maps import SignedSaliency

        _grow_gpu_memory()
        self.saliency = SignedSaliency(_load(model), attribution=attribution, rivals=rivals)
        self.path, self.methods = path, methods
        self.image_column, self.index_column = image_column, index_column
        self.batch_size, self.shard_size = batch_size, shard_size

    def __call__(self, group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        order = np.argsort(group[self.index_column], kind="stable")
        index = np.asarray(group[self.index_column])[order]
        start = int(index[0]) // self.shard_size * self.shard_size
        name = maps_io.shard_name(start, start + self.shard_size, ".parquet")
        file = os.path.join(self.path, name)
        done = os.path.isfile(file) and np.array_equal(_stored_index(file), index)
        if not done:
            explanation = self.saliency.explain(
                group[self.image_column][order], methods=self.methods,
                batch_size=self.batch_size, verbose=0,
            )
            maps_io.write_shard(
                self.path, start, start + self.shard_size, index,
                explanation.targets.numpy(), explanation.logits.numpy(),
                {m: explanation[m].numpy() for m in self.methods},
            )
        return {"file": np.array([name], dtype=object), "images": np.array([len(index)]),
                "skipped": np.array([done])}


def _stored_index(file: str) -> np.ndarray | None:
    """The indices of a complete shard, sorted; None for a file that cannot be read (it
    is computed again)."""
    try:
        return np.sort(maps_io.read_index(file))
    except ValueError:
        return None


def write_maps(
    dataset: Any,
    model: str | os.PathLike,
    path: str | os.PathLike,
    *,
    methods: Sequence[str] | None = None,
    attribution: Any = "gradient",
    rivals: int | None = None,
    image_column: str = "image",
    index_column: str = "index",
    batch_size: int = 32,
    shard_size: int = 256,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = DEFAULT_NUM_CPUS,
    num_gpus: float = 0,
) -> MapsWritten:
    """Explain every image of `dataset` on Ray and store the maps as Parquet shards in the
    folder `path`, resumably; read them with `tf_signsal.read_maps(path)`.

    Images are grouped by their index into shards of `shard_size` consecutive indices
    (`maps-00000000-00000256.parquet`, ...) with Ray's `groupby` (a hash shuffle), so the
    images cross Ray's object store once. Each shard is explained in `batch_size` batches
    by one actor and written atomically. A rerun with the same arguments keeps every shard that is
    complete (holding exactly the indices the dataset gives it) and computes the others:
    a job that dies at 80% does 20% again. When every shard is written, the indices are
    checked (each of one range exactly once) and the marker `_SUCCESS` is written.

    Ray does not keep the order of the rows, so every image needs its index in the
    dataset, a column made where the images are listed, before any shuffle, e.g.
    `ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(sorted(paths))])`
    then a `map` that reads each image. A rerun must give each image the same index.

    Args:
        dataset: a `ray.data.Dataset` with an image column (float images (H, W, ch) in
            the model's input range, one size) and an index column.
        model: the path of a `.keras` file or a SavedModel directory, loaded once per
            actor (and once on the driver, which checks it first).
        path: the output folder: new, empty, or one that an earlier `write_maps` with the
            same arguments wrote (a folder of other maps or of other files is refused).
        methods: the maps to store, any of `METHODS`; None for all five.
        attribution: `SignedSaliency`'s attribution ("gradient", "gradient_x_input",
            "integrated_gradients", "smoothgrad" or a configured object).
        rivals: `SignedSaliency`'s rivals (None: every other class).
        image_column: the column of the images.
        index_column: the column of the image indices (non-negative integers, each once).
        batch_size: images per explain pass; the maps are those of
            `SignedSaliency(model).explain(images, batch_size=batch_size)` of the images
            in index order (indices from 0: the batches start at multiples of it).
        shard_size: images per shard, a multiple of `batch_size`.
        concurrency: the number of actors, or a (min, max) pair for an autoscaling pool.
        num_cpus: the logical CPUs each actor reserves (see the module docstring).
        num_gpus: the GPUs each actor reserves; a fraction shares a GPU.

    Returns:
        a `MapsWritten` (path, images, shards, skipped).

    Raises:
        ValueError: a bad argument, a missing column, a folder of other maps, or indices
            that are not each of one range exactly once (named; no marker is written).
        FileExistsError: `path` is a file, or a folder that `write_maps` did not write.
    """
    from tf_signsal.maps import SignedSaliency

    ray = _ray()
    methods = METHODS if methods is None else _checks.check_choices("methods", methods, METHODS)
    batch_size = _checks.positive_int("batch_size", batch_size)
    shard_size = _checks.positive_int("shard_size", shard_size)
    if shard_size % batch_size:
        raise ValueError(
            f"`shard_size` must be a multiple of `batch_size` ({batch_size}), so that the "
            f"batches are those of one process, received {shard_size}"
        )
    resources = _resources(concurrency, num_cpus, num_gpus)
    columns = _check_dataset(ray, dataset, {"image_column": image_column,
                                            "index_column": index_column})
    check_output_path(path, "`path`")
    saliency = SignedSaliency(_load(model), attribution=attribution, rivals=rivals)
    folder = os.path.abspath(os.fspath(path))
    _claim(folder, os.fspath(path), {
        "format": maps_io.MAPS_FORMAT, "version": maps_io.MAPS_VERSION,
        "model": _digest(os.fspath(model)), "methods": list(methods),
        "attribution": repr(saliency.attribution), "rivals": rivals,
        "batch_size": batch_size, "shard_size": shard_size,
    })
    keyed = dataset.select_columns(columns).map_batches(
        _shard_keys, fn_kwargs={"index_column": index_column, "shard_size": shard_size},
        batch_format="numpy",
    )
    # A few hash partitions per actor: enough to keep the actors busy, and far fewer
    # than Ray's default of 200, each of which costs the shuffle a task.
    actors = resources["concurrency"]
    partitions = 4 * (actors if isinstance(actors, int) else actors[1])
    rows = keyed.groupby(_SHARD_KEY, num_partitions=partitions).map_groups(
        _WriteShards,
        fn_constructor_args=(os.fspath(model), folder, methods, saliency.attribution, rivals,
                             image_column, index_column, batch_size, shard_size),
        batch_format="numpy", **resources,
    ).take_all()
    if not rows:
        raise ValueError("`dataset` holds no images: there is nothing to explain")
    files = sorted(str(row["file"]) for row in rows)
    maps_io.finish(folder, files)
    return MapsWritten(
        os.fspath(path), sum(int(row["images"]) for row in rows), len(files),
        sum(bool(row["skipped"]) for row in rows),
    )


def _digest(path: str) -> str:
    """The SHA-256 of a model file, or of a SavedModel directory's files and their names:
    a rerun into a folder must explain the same model."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        files = sorted(
            os.path.relpath(os.path.join(root, name), path)
            for root, _, names in os.walk(path) for name in names
        )
    else:
        files = [""]
    for name in files:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(path, name) if name else path, "rb") as file:
            for block in iter(lambda: file.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


def _claim(folder: str, shown: str, configuration: dict[str, Any]) -> None:
    """Make `folder` the map folder of `configuration`, before any work: a new or empty
    folder, or one an earlier `write_maps` of the same configuration wrote (its manifest);
    the earlier run's marker and the temporary files of workers that died are removed."""
    manifest = os.path.join(folder, _MANIFEST)
    if os.path.isdir(folder) and os.listdir(folder):
        if not os.path.isfile(manifest):
            raise FileExistsError(
                f"`path` {shown} is a folder that write_maps did not write (it holds no "
                f"{_MANIFEST}): choose a new or empty folder"
            )
        earlier = read_json(manifest).get("configuration")
        if earlier != configuration:
            changed = sorted(
                key for key in {*configuration, *(earlier or {})}
                if (earlier or {}).get(key) != configuration.get(key)
            )
            raise ValueError(
                f"`path` {shown} holds maps of another configuration (differing in {changed}): "
                "a rerun must use the same model and arguments; choose another folder"
            )
        for name in os.listdir(folder):
            if maps_io.is_temporary(name) or name == maps_io.MARKER:
                os.remove(os.path.join(folder, name))
    os.makedirs(folder, exist_ok=True)
    write_json(manifest, {"command": "maps", "configuration": configuration})
