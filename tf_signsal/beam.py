"""Apache Beam: the allegiance benchmark and the maps on any Beam runner, equal to one
process. An optional extra (`pip install 'tf_signsal[beam]'`) the core never imports.

- `EvaluateAllegiance(model_path, ...)`: images (float (H, W, ch)) or `(key, image)` /
  `(key, image, label)` tuples -> one `AllegianceResult`. Workers count each batch
  (`AllegianceEvaluator.batch_counts`) and `SumCounts` (a `CombineFn`) adds the integer
  counts: any split into batches and workers gives `evaluate`'s result exactly. Counts of
  another protocol (its fingerprint) are refused, never summed. `CountAllegiance` stops
  at the summed `DeletionCounts`.
- `SaliencyModelHandler(model_path, ...)`: a `RunInference` model handler yielding each
  image's `ImageMaps` (target, logits, maps) of `SignedSaliency.explain`.
- `WriteMaps(model_path, path, ...)`: `(index, image)` pairs -> TFRecord shards of
  `tf_signsal.maps_io` records and the `_SUCCESS` marker, read back by `read_maps(path)`.
- `evaluate(...)`, `write_maps(...)`: such a pipeline over in-memory elements (what
  `tf-signsal evaluate/explain --engine beam` run).

The model is a path (`.keras`, `.h5`, SavedModel; `tf_signsal.load_model`) every worker
reads. Each worker process loads it once, shared by its threads (`RunInference`'s shared
handle); `model_copies=N` loads N copies per machine shared by all its processes
(`share_model_across_processes`, for GPUs), and each process lets TensorFlow grow its GPU
memory (TF_FORCE_GPU_ALLOW_GROWTH) instead of taking it all. The transforms also load it
where the pipeline is built: bad options are refused before any work.

Resuming: a runner retries a failed bundle, and `WriteToTFRecord` commits its files (a
rename of temporary files) only once their bundles succeeded, so no shard is half-written;
the marker comes last. A job that fails as a whole is run again into a new folder (Beam
keeps no record of a failed job's shards); `read_maps` refuses a folder without the
marker, or where an index is missing or twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import (
        KeyedModelHandler,
        ModelHandler,
        PredictionResult,
        RunInference,
    )
except ImportError as error:  # the extra is not installed
    raise ImportError(
        f"tf_signsal.beam needs Apache Beam: pip install 'tf_signsal[beam]' ({error})"
    ) from error

import numpy as np

from tf_signsal import _checks, maps_io
from tf_signsal.vocabulary import METHODS

__all__ = [
    "CountAllegiance",
    "EvaluateAllegiance",
    "ImageMaps",
    "SaliencyModelHandler",
    "SumCounts",
    "WriteMaps",
    "evaluate",
    "write_maps",
]

MAPS_PREFIX = "maps"
"""`WriteMaps` writes the shards `<path>/maps-SSSSS-of-NNNNN.tfrecord` (Beam's names)."""
MAPS_SUFFIX = ".tfrecord"


class ImageMaps(NamedTuple):
    """One image's explanation (`SaliencyModelHandler`): `target` the explained (predicted)
    class, `logits` float32 (C,), `maps` method -> float32 (H, W), as `explain` gives them."""

    target: int
    logits: np.ndarray
    maps: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- workers


def _load(model_path: str, load_options: Mapping[str, Any]) -> Any:
    from tf_signsal.loading import load_model

    return load_model(model_path, **load_options)


class _Counter:
    """What a worker holds to count: the evaluator, numpy in and out (so that Beam's
    cross-process proxy, which pickles both, can stand in front of it)."""

    def __init__(self, model: Any, batch_size: int, options: Mapping[str, Any]):
        from tf_signsal.evaluation import AllegianceEvaluator

        options = dict(options)
        factory = options.pop("explainer", None)
        if factory is not None:
            if not callable(factory):
                raise TypeError(
                    "`explainer` must be a factory model -> explainer (the model is loaded "
                    f"on each worker), received {type(factory).__name__}"
                )
            options["explainer"] = factory(model)
        self.evaluator = AllegianceEvaluator(model, batch_size=batch_size, **options)

    @property
    def fingerprint(self) -> str:
        return self.evaluator.protocol.fingerprint

    def counts(self, images: np.ndarray, labels: np.ndarray | None) -> Any:
        return self.evaluator.batch_counts(images, labels)


class _Explainer:
    """What a worker holds to explain: a `SignedSaliency`, numpy in and out.

    A batch short of `batch_size` is padded (with copies of its last image) to
    `batch_size`: a model's float rounding may vary with the batch size (~1e-7), and a
    fixed size makes each image's maps those of `SignedSaliency.explain(images,
    batch_size=batch_size)` bit for bit, however the runner cuts the batches.
    """

    def __init__(
        self, model: Any, methods: Sequence[str] | None, batch_size: int,
        options: Mapping[str, Any],
    ):
        from tf_signsal.maps import SignedSaliency

        self.saliency = SignedSaliency(model, **options)
        self.methods, self.batch_size = methods, batch_size

    def explain(self, images: np.ndarray) -> list[ImageMaps]:
        padding = np.repeat(images[-1:], max(0, self.batch_size - len(images)), axis=0)
        explanation = self.saliency.explain(
            np.concatenate([images, padding]), methods=self.methods
        )
        maps = {m: v.numpy() for m, v in explanation.items()}
        logits, targets = explanation.logits.numpy(), explanation.targets.numpy()
        return [
            ImageMaps(int(targets[i]), logits[i], {m: v[i] for m, v in maps.items()})
            for i in range(len(images))
        ]


def _stack(images: Sequence[Any]) -> np.ndarray:
    """A batch of images of one size, as float32 (B, H, W, ch)."""
    arrays = [np.asarray(image, np.float32) for image in images]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(
            f"the images of a batch must have one shape (H, W, ch), received {shapes[:4]}: "
            "resize them before the transform"
        )
    if arrays[0].ndim != 3:
        raise ValueError(f"each image must be (H, W, ch), received shape {arrays[0].shape}")
    return np.stack(arrays)


def _image_and_label(element: Any) -> tuple[Any, Any]:
    """An element of `EvaluateAllegiance`'s input: an image, or (key, image[, label])."""
    if isinstance(element, tuple):
        if len(element) in (2, 3):
            return element[1], element[2] if len(element) == 3 else None
        raise ValueError(
            "EvaluateAllegiance takes images (H, W, ch) or (key, image) or (key, image, "
            f"label) tuples, received a tuple of {len(element)} items"
        )
    return element, None


class _ModelPathHandler(ModelHandler):
    """A model handler of a model file: batches of at most `batch_size` elements; the
    model shared by the threads of a process, or with `model_copies` by the processes of
    a machine."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        batch_size: int,
        model_copies: int | None,
        load_options: Mapping[str, Any] | None,
        fixed_batches: bool = False,
    ):
        self.model_path = os.fspath(model_path)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        if model_copies is not None:
            model_copies = _checks.positive_int("model_copies", model_copies)
        self.load_options = dict(load_options or {})
        super().__init__(
            min_batch_size=self.batch_size if fixed_batches else 1,
            max_batch_size=self.batch_size, model_copies=model_copies,
            # set before the model loads: several processes of a worker then share a GPU,
            # none taking all its memory
            env_vars={"TF_FORCE_GPU_ALLOW_GROWTH": "true"},
        )


class _CountsHandler(_ModelPathHandler):
    """`RunInference` of the evaluator: one `DeletionCounts` per batch, not per element
    (`RunInference` passes on whatever `run_inference` returns)."""

    def __init__(self, model_path, batch_size, model_copies, load_options, options):
        super().__init__(model_path, batch_size, model_copies, load_options)
        self.options = dict(options)

    def load_model(self) -> _Counter:
        return _Counter(_load(self.model_path, self.load_options), self.batch_size, self.options)

    def run_inference(self, batch, model, inference_args=None) -> list[Any]:
        images, labels = zip(*(_image_and_label(element) for element in batch))
        if len({label is None for label in labels}) > 1:
            raise ValueError(
                "either every element carries a label ((key, image, label)) or none does: "
                "a batch mixes both"
            )
        return [model.counts(_stack(images), None if labels[0] is None else np.asarray(labels))]


class SaliencyModelHandler(_ModelPathHandler):
    """A `RunInference` model handler: each image's `ImageMaps` (target, logits, maps).

    Images are float (H, W, ch) arrays in the model's input range; the handler explains
    them `batch_size` at a time with `SignedSaliency.explain` (the predicted classes) and
    yields one `PredictionResult(image, ImageMaps)` per image. A batch the runner cuts
    shorter is padded to `batch_size`, so that each image's maps are bit for bit those of
    `SignedSaliency.explain(images, batch_size=batch_size)` (a model's float rounding may
    vary with the batch size, by ~1e-7). Wrap it in Beam's `KeyedModelHandler` for
    `(key, image)` elements.

    Args:
        model_path: a `.keras` or `.h5` file or a SavedModel directory that the workers
            can read (`tf_signsal.load_model`).
        methods: the maps, of `METHODS`; None for all five.
        batch_size: images per explanation (Beam's batches are at most this big).
        model_copies: None loads the model once per worker process (shared by its
            threads); N loads N copies per machine, shared by all its processes (Beam's
            `share_model_across_processes`: e.g. one per GPU).
        load_options: keyword arguments of `tf_signsal.load_model` (e.g. `signature`).
        **saliency_options: `SignedSaliency`'s `attribution`, `rivals`, `value_range`,
            `classes_per_chunk`, `jacobian`.

    Example:
        >>> from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
        >>> handler = KeyedModelHandler(SaliencyModelHandler("model.keras"))
        >>> maps = keyed_images | RunInference(handler)  # (key, PredictionResult)
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        methods: Sequence[str] | None = None,
        batch_size: int = 32,
        model_copies: int | None = None,
        load_options: Mapping[str, Any] | None = None,
        **saliency_options: Any,
    ):
        super().__init__(model_path, batch_size, model_copies, load_options, fixed_batches=True)
        if methods is not None:
            if isinstance(methods, str) or not methods:
                raise ValueError(f"`methods` must be a non-empty list of {list(METHODS)}, "
                                 f"received {methods!r}")
            methods = [_checks.one_of("methods", m, METHODS) for m in methods]
        self.methods = methods
        self.saliency_options = dict(saliency_options)

    def load_model(self) -> _Explainer:
        model = _load(self.model_path, self.load_options)
        return _Explainer(model, self.methods, self.batch_size, self.saliency_options)

    def run_inference(self, batch, model, inference_args=None) -> list[PredictionResult]:
        return [
            PredictionResult(image, maps)
            for image, maps in zip(batch, model.explain(_stack(batch)))
        ]


# ----------------------------------------------------------------------------- counts


class SumCounts(beam.CombineFn):
    """A `CombineFn` adding `DeletionCounts` of one protocol.

    Args:
        fingerprint: the `DeletionProtocol.fingerprint` all counts must carry (e.g.
            `evaluator.protocol.fingerprint`); None takes the first counts' protocol.
            Counts of another protocol raise a ValueError either way: a worker configured
            otherwise is refused, never summed.
    """

    def __init__(self, fingerprint: str | None = None):
        self.fingerprint = fingerprint

    def create_accumulator(self) -> Any:
        """None: no counts yet."""
        return None

    def add_input(self, accumulator: Any, counts: Any) -> Any:
        """`accumulator + counts`, refusing counts of another protocol."""
        from tf_signsal.evaluation.counts import DeletionCounts

        if not isinstance(counts, DeletionCounts):
            raise TypeError(f"SumCounts adds DeletionCounts, received {type(counts).__name__}")
        if self.fingerprint is not None and counts.fingerprint != self.fingerprint:
            raise ValueError(
                f"refused DeletionCounts of another protocol (fingerprint "
                f"{counts.fingerprint[:12]}..., expected {self.fingerprint[:12]}...): the "
                "worker's fractions, pairs, fills, orders, value_range, seed or explainer "
                "differ from the pipeline's"
            )
        return counts if accumulator is None else accumulator + counts

    def merge_accumulators(self, accumulators: Iterable[Any]) -> Any:
        """The sum of the accumulators (None if none holds counts)."""
        present = [a for a in accumulators if a is not None]
        return sum(present[1:], present[0]) if present else None

    def extract_output(self, accumulator: Any) -> Any:
        """The summed `DeletionCounts`; a ValueError when there were none."""
        if accumulator is None:
            raise ValueError("the PCollection holds no images: there is nothing to evaluate")
        return accumulator


class CountAllegiance(beam.PTransform):
    """Images (or `(key, image[, label])` tuples) -> one summed `DeletionCounts`.

    The arguments are `EvaluateAllegiance`'s. The counts add up with other counts of the
    same protocol (`+`); `save` or `to_bytes` keeps them.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        batch_size: int = 128,
        model_copies: int | None = None,
        load_options: Mapping[str, Any] | None = None,
        **evaluator_options: Any,
    ):
        super().__init__()
        self.handler = _CountsHandler(
            model_path, batch_size, model_copies, load_options, evaluator_options
        )
        # Built once here: bad options are refused before any work, and the workers'
        # counts must carry this protocol.
        self.fingerprint = self.handler.load_model().fingerprint

    def expand(self, images: Any) -> Any:
        return (
            images
            | "Count" >> RunInference(self.handler)
            | "Sum" >> beam.CombineGlobally(SumCounts(self.fingerprint))
        )


def _to_result(counts: Any) -> Any:
    return counts.to_result()


class EvaluateAllegiance(CountAllegiance):
    """Images (or `(key, image[, label])` tuples) -> one `AllegianceResult`.

    Equal, bit for bit, to `AllegianceEvaluator(model, **evaluator_options).evaluate` of
    the same images in one process, however Beam batches and distributes them.

    Args:
        model_path: a `.keras` or `.h5` file or a SavedModel directory that the workers
            can read (`tf_signsal.load_model`).
        batch_size: images per `batch_counts` (Beam's batches are at most this big).
        model_copies: None loads the model once per worker process (shared by its
            threads); N loads N copies per machine shared by its processes (GPUs).
        load_options: keyword arguments of `tf_signsal.load_model`.
        **evaluator_options: `AllegianceEvaluator`'s `fractions`, `pairs`, `orders`,
            `attribution`, `value_range`, `seed`, `memory_budget`; `explainer`, when
            given, is a factory model -> explainer, called on each worker.

    Example:
        >>> with beam.Pipeline() as pipeline:
        ...     (pipeline | beam.Create(list(images))
        ...      | EvaluateAllegiance("model.keras", orders=["morf", "lerf"])
        ...      | beam.Map(lambda result: print(result.summary())))
    """

    def expand(self, images: Any) -> Any:
        return super().expand(images) | "Result" >> beam.Map(_to_result)


# ----------------------------------------------------------------------------- maps


def _indexed(element: Any) -> tuple[int, Any]:
    """An element of `WriteMaps`: (index, image), the index a non-negative integer."""
    index = element[0] if isinstance(element, tuple) and len(element) == 2 else None
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or (
        index < 0
    ):
        raise ValueError(
            "WriteMaps takes (index, image) pairs, the index a non-negative integer, "
            f"received {type(element).__name__}"
            + (f" of index {index!r}" if isinstance(element, tuple) else "")
        )
    return int(index), element[1]


def _encoded(keyed: tuple[int, PredictionResult]) -> bytes:
    index, result = keyed
    maps = result.inference
    return maps_io.encode_example(index, maps.target, maps.logits, maps.maps)


def _mark_finished(files: list[str], folder: str, start: int, last: int) -> None:
    """The `_SUCCESS` marker of `maps_io`, written once the shards are committed: the
    shards' names and the index range [start, last + 1)."""
    names = [FileSystems.split(path)[1] for path in files]
    if FileSystems.get_scheme(folder) is None:  # a local folder: every index checked first
        maps_io.finish(folder, names)
        return
    with FileSystems.create(FileSystems.join(folder, maps_io.MARKER)) as out:
        out.write(json.dumps(maps_io.marker_record(start, last + 1, names), indent=1).encode())


def _check_new_folder(path: str) -> None:
    """Refuse a folder that holds maps already: shards of two jobs would mix."""
    patterns = [FileSystems.join(path, f"{MAPS_PREFIX}-*"), FileSystems.join(path, maps_io.MARKER)]
    found = [m.path for match in FileSystems.match(patterns) for m in match.metadata_list]
    if found:
        raise FileExistsError(
            f"`path` {path} holds maps already ({FileSystems.split(found[0])[1]}"
            f"{', ...' if len(found) > 1 else ''}): write into a new or empty folder"
        )


class WriteMaps(beam.PTransform):
    """`(index, image)` pairs -> TFRecord shards of maps in the folder `path`.

    Each image's target, logits and maps (`SaliencyModelHandler`) are written as one
    `tf_signsal.maps_io` record under its index, in `<path>/maps-SSSSS-of-NNNNN.tfrecord`
    (Beam's `WriteToTFRecord`); once they are committed, the `_SUCCESS` marker lists them
    with the index range [smallest, largest + 1). `tf_signsal.read_maps(path)` reads them
    back by index, bit-identical to `SignedSaliency.explain(images, batch_size=batch_size)`
    (see `SaliencyModelHandler`), and refuses a folder where
    an index of the range is missing or twice: index the images 0..N-1 (or any range
    without gaps). The output is the PCollection of the shards' paths.

    Args:
        model_path: as `SaliencyModelHandler`'s.
        path: the output folder, new or empty (local, or a file system Beam writes, e.g.
            gs://; `read_maps` reads a local copy).
        methods, batch_size, model_copies, load_options, **saliency_options: as
            `SaliencyModelHandler`'s.
        num_shards: how many shards; 0 lets the runner choose.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        path: str | os.PathLike,
        methods: Sequence[str] | None = None,
        batch_size: int = 32,
        num_shards: int = 0,
        model_copies: int | None = None,
        load_options: Mapping[str, Any] | None = None,
        **saliency_options: Any,
    ):
        super().__init__()
        self.handler = SaliencyModelHandler(
            model_path, methods, batch_size, model_copies, load_options, **saliency_options
        )
        self.path = os.fspath(path)
        self.num_shards = _checks.non_negative_int("num_shards", num_shards)
        _check_new_folder(self.path)
        self.handler.load_model()  # bad options, or no classifier: refused before any work

    def expand(self, pairs: Any) -> Any:
        indexed = pairs | "Index" >> beam.Map(_indexed)
        indices = indexed | "Indices" >> beam.Keys()
        files = (
            indexed
            | "Explain" >> RunInference(KeyedModelHandler(self.handler))
            | "Encode" >> beam.Map(_encoded)
            | "Write" >> beam.io.WriteToTFRecord(
                FileSystems.join(self.path, MAPS_PREFIX), file_name_suffix=MAPS_SUFFIX,
                num_shards=self.num_shards,
            )
        )
        _ = (
            files
            | "Shards" >> beam.combiners.ToList()
            | "Mark" >> beam.Map(
                _mark_finished, self.path,
                beam.pvalue.AsSingleton(indices | "First" >> beam.CombineGlobally(min)),
                beam.pvalue.AsSingleton(indices | "Last" >> beam.CombineGlobally(max)),
            )
        )
        return files


# ----------------------------------------------------------------------------- runs


def _pipeline_options(options: Any) -> Any:
    """`PipelineOptions` from None (the DirectRunner), a list of command-line flags
    ("--runner=DataflowRunner", ...) or `PipelineOptions`."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if isinstance(options, PipelineOptions):
        return options
    if options is None or (
        isinstance(options, (list, tuple)) and all(isinstance(o, str) for o in options)
    ):
        return PipelineOptions(list(options or []))
    raise TypeError(
        "`pipeline_options` must be None, PipelineOptions or a list of flags (e.g. "
        f"['--runner=DirectRunner']), received {type(options).__name__}"
    )


def _save_counts(counts: Any, path: str) -> None:
    """Write the counts where the launcher reads them (any file system Beam knows)."""
    with FileSystems.create(path) as out:
        out.write(counts.to_bytes())


def evaluate(
    elements: Iterable[Any],
    model_path: str | os.PathLike,
    pipeline_options: Any = None,
    temp_location: str | None = None,
    **options: Any,
) -> Any:
    """Run `EvaluateAllegiance` over in-memory elements; return its `AllegianceResult`.

    Args:
        elements: images (H, W, ch), or (key, image) / (key, image, label) tuples,
            handed to the pipeline by `beam.Create` (for more images than the launching
            machine holds in memory, build a pipeline that reads them on the workers).
        model_path: the model file or SavedModel directory.
        pipeline_options: None (the DirectRunner), `PipelineOptions` or a list of
            flags, e.g. ["--direct_num_workers=2", "--direct_running_mode=multi_processing"].
        temp_location: a folder the workers and this process share, where the summed
            counts are handed back (and deleted); None: the pipeline's `--temp_location`,
            else a local temporary folder (local runners).
        **options: `EvaluateAllegiance`'s (`batch_size`, `model_copies`, `load_options`,
            evaluator options).
    """
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from tf_signsal.evaluation.counts import DeletionCounts

    beam_options = _pipeline_options(pipeline_options)
    transform = CountAllegiance(model_path, **options)
    elements = list(elements)
    if not elements:
        raise ValueError("`elements` holds no images: there is nothing to evaluate")
    folder = temp_location or beam_options.view_as(GoogleCloudOptions).temp_location
    with tempfile.TemporaryDirectory() as local:
        handed = FileSystems.join(folder or local, f"tf-signsal-counts-{os.urandom(8).hex()}")
        try:
            with beam.Pipeline(options=beam_options) as pipeline:
                _ = (
                    pipeline
                    | "Images" >> beam.Create(elements, reshuffle=True)
                    | "Counts" >> transform
                    | "Hand back" >> beam.Map(_save_counts, handed)
                )
            with FileSystems.open(handed) as file:
                counts = DeletionCounts.from_bytes(file.read())
        finally:
            if FileSystems.exists(handed):
                FileSystems.delete([handed])
    return counts.to_result()


def write_maps(
    elements: Iterable[tuple[int, Any]],
    model_path: str | os.PathLike,
    path: str | os.PathLike,
    pipeline_options: Any = None,
    **options: Any,
) -> None:
    """Run `WriteMaps` over in-memory `(index, image)` pairs into the folder `path`.

    Args:
        elements: (index, image) pairs (see `evaluate` about in-memory elements).
        model_path: the model file or SavedModel directory.
        path: the output folder, new or empty.
        pipeline_options: as `evaluate`'s.
        **options: `WriteMaps`'s (`methods`, `batch_size`, `num_shards`, `model_copies`,
            `load_options`, saliency options).
    """
    transform = WriteMaps(model_path, path, **options)
    elements = list(elements)
    if not elements:
        raise ValueError("`elements` holds no images: there is nothing to explain")
    with beam.Pipeline(options=_pipeline_options(pipeline_options)) as pipeline:
        _ = pipeline | "Images" >> beam.Create(elements, reshuffle=True) | "Maps" >> transform
