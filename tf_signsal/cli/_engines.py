"""--engine: `evaluate` and `explain` on Ray Data or Apache Beam instead of in this process.

`--engine local` (the default) is the command as it always ran. `--engine ray` and
`--engine beam` read the images here, as local does, and hand them to the engine
(`tf_signsal.ray`, `tf_signsal.beam`), whose workers each load --model: the results equal
the local ones. The engine's module is imported only when --engine names it; without its
extra, the command stops before any work with one line naming the pip command.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Iterator
from typing import Any

from tf_signsal.cli._common import CommandError

ENGINES = ("local", "ray", "beam")
_PIP = {"ray": "pip install 'tf_signsal[ray]'", "beam": "pip install 'tf_signsal[beam]'"}
# tf_signsal.ray loads the model with the loader's defaults and feeds it [0, 1] images.
_RAY_DEFAULTS = {
    "signature": (None, "--signature"), "output": (None, "--output"),
    "outputs": ("logits", "--outputs"), "custom_objects": (None, "--custom-objects"),
    "value_range": (None, "--value-range"),
}


def _beam_option(text: str) -> str:
    """An argparse `type=`: KEY=VALUE, as the pipeline flag --KEY=VALUE."""
    key, equals, _ = text.partition("=")
    if not equals or not key or key.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"must be KEY=VALUE, a Beam pipeline option without its dashes (e.g. "
            f"runner=DataflowRunner), received {text!r}"
        )
    return f"--{text}"


def engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine and the engines' options, in a group of their own."""
    group = parser.add_argument_group("the engine")
    group.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="local (default): in this process; ray or beam: on Ray Data or Apache Beam "
        "(pip install 'tf_signsal[ray]' or 'tf_signsal[beam]'), whose workers each load "
        "--model, which they must be able to read; the images are read here and handed to "
        "the engine. explain then stores the maps in --out as the engine's shards (read them "
        "with tf_signsal.read_maps) instead of maps.npz and figures",
    )
    group.add_argument(
        "--ray-address", metavar="ADDRESS",
        help="--engine ray: the Ray cluster to join (ray.init(address=...)); default: a "
        "Ray started on this machine",
    )
    group.add_argument(
        "--beam-option", action="append", type=_beam_option, metavar="KEY=VALUE",
        help="--engine beam: a Beam pipeline option, e.g. --beam-option runner=DataflowRunner "
        "--beam-option direct_num_workers=2 (repeat it; default: Beam's DirectRunner)",
    )


def engine_module(args: argparse.Namespace) -> Any:
    """Check the engine's options and import its module, before any work; None for local.

    Raises:
        CommandError: an engine's option given for another engine, an option the engine
            does not take, or the engine's extra not installed (naming the pip command).
    """
    for option, engine, value in (
        ("--ray-address", "ray", args.ray_address), ("--beam-option", "beam", args.beam_option)
    ):
        if value is not None and args.engine != engine:
            raise CommandError(f"{option} is an option of --engine {engine}, not of "
                               f"--engine {args.engine}")
    if args.engine == "local":
        return None
    if getattr(args, "precision", "float32") != "float32":
        raise CommandError(
            f"--precision {args.precision} runs on --engine local only: --engine "
            f"{args.engine}'s workers compute in float32 (drop --precision, or use --engine "
            "local)"
        )
    if args.engine == "ray":
        given = [flag for name, (default, flag) in _RAY_DEFAULTS.items()
                 if getattr(args, name, default) != default]
        if given:
            raise CommandError(
                f"--engine ray loads --model with the loader's defaults and feeds it [0, 1] "
                f"images: {', '.join(given)} cannot be passed to its workers; use --engine "
                "beam or local"
            )
    try:
        module = importlib.import_module(f"tf_signsal.{args.engine}")
        if args.engine == "ray":
            module._ray()  # tf_signsal.ray imports Ray when used: ask for it now
    except ImportError as error:
        raise CommandError(
            f"--engine {args.engine} needs its extra: {_PIP[args.engine]} (cannot import "
            f"{error.name or args.engine})"
        ) from None
    return module


def _examples(dataset: Any) -> Iterator[tuple[int, Any, Any]]:
    """(index, image, label or None) of each image of a dataset of image batches or of
    (images, labels) batches."""
    index = 0
    for batch in dataset:
        images, labels = batch if isinstance(batch, tuple) else (batch, None)
        images = images.numpy()
        labels = None if labels is None else labels.numpy()
        for i in range(len(images)):
            yield index, images[i], None if labels is None else labels[i]
            index += 1


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The loader's options of --signature, --output, --outputs and --custom-objects."""
    from tf_signsal.cli._common import custom_objects

    return {
        "signature": args.signature or "serving_default", "output": args.output,
        "outputs": args.outputs, "custom_objects": custom_objects(args.custom_objects),
    }


def _ray_init(ray: Any, address: str | None) -> None:
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)


def evaluate(
    args: argparse.Namespace, engine: Any, dataset: Any, options: dict[str, Any]
) -> Any:
    """The `AllegianceResult` of the images of `dataset` (batches of images or of (images,
    labels), as the model is fed them) on the engine, with the evaluator's `options`."""
    examples = list(_examples(dataset))
    labelled = bool(examples) and examples[0][2] is not None
    if args.engine == "beam":
        elements = [e if labelled else e[:2] for e in examples]
        return engine.evaluate(
            elements, args.model, pipeline_options=args.beam_option or [],
            batch_size=args.batch_size, load_options=_load_options(args), **options,
        )
    import numpy as np

    ray = engine._ray()
    _ray_init(ray, args.ray_address)
    rows = [{"image": image, **({"label": np.int64(label)} if labelled else {})}
            for _, image, label in examples]
    return engine.evaluate(
        ray.data.from_items(rows), args.model, label_column="label" if labelled else None,
        batch_size=args.batch_size, **options,
    )


def check_out(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --out the engine's maps cannot go to: Beam's into a new
    or empty folder only (the shards of two jobs would mix); Ray's `write_maps` claims its
    folder itself (new, empty, or its own earlier run's, which it resumes)."""
    if args.engine == "beam" and os.path.isdir(args.out) and os.listdir(args.out):
        raise CommandError(
            f"--out {args.out} is not empty: --engine beam writes its maps into a new or "
            "empty folder (choose another --out, or empty it)"
        )


def write_maps(
    args: argparse.Namespace, engine: Any, images: Any, methods: list[str],
    value_range: tuple[float, float],
) -> None:
    """Store the maps of `images` (as the model is fed them), indexed 0..N-1 in their
    order, in the folder --out, on the engine."""
    if args.engine == "beam":
        engine.write_maps(
            list(enumerate(images)), args.model, args.out,
            pipeline_options=args.beam_option or [], methods=methods,
            batch_size=args.batch_size, load_options=_load_options(args),
            attribution=args.attribution, value_range=value_range,
        )
        return
    ray = engine._ray()
    _ray_init(ray, args.ray_address)
    rows = [{"index": i, "image": image} for i, image in enumerate(images)]
    engine.write_maps(
        ray.data.from_items(rows), args.model, args.out, methods=methods,
        attribution=args.attribution, batch_size=args.batch_size,
        shard_size=args.batch_size * 8,
    )
