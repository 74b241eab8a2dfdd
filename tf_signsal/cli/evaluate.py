"""`tf-signsal evaluate`: the allegiance (deletion) benchmark of a model on a dataset.

Also what `sanity` shares with it: the --data arguments and their checks, and
`evaluation_data`, which reads a dataset or an image folder (optionally a class-balanced
subset) for either.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from tf_signsal import _checks
from tf_signsal._io import one_line
from tf_signsal.cli import _engines
from tf_signsal.cli._common import (
    PROG,
    CommandError,
    attribution_argument,
    load_model,
    model_argument,
    out_help,
    positive_int,
    precision_argument,
    prepare_out,
    reading,
    run_record,
    seed_int,
    telling_skipped,
    to_value_range,
    write_record_and_figure,
)
from tf_signsal.vocabulary import DATASETS, FILLS, METHODS, ORDERS

HELP = "The allegiance (black/white deletion) benchmark of a model on a dataset."
EXAMPLE = (
    f"example:\n  {PROG} evaluate --model model.keras --data cifar10 --data-dir ../shared/data"
    f" --limit 1000 --out runs/eval-cifar10\n  {PROG} evaluate --model model.keras --data "
    "photos/ --class-names classes.txt --pairs all --orders morf lerf --format pdf "
    "--out runs/eval-photos\n"
    f"  {PROG} evaluate --model model.keras --data photos/ --fills black blur:2.0 road:0.02 "
    "--out runs/eval-fills"
)
FIGURE_FORMATS = ("png", "pdf", "svg")
OUTPUTS = ("results.json", "curves_<order>.<format> per order", "srg.<format> (morf and lerf)")
"""What evaluate writes in its --out (see `outputs`): the record, the curves of each order
run (`plotting.plot_order_curves`) and the SRG bars when morf and lerf both ran."""
_OWN = re.compile(r"results\.json|(curves(_[a-z]+)?|srg)\.(png|pdf|svg)")
"""The names evaluate may replace in its --out (curves.png: the one figure of older runs)."""


def outputs(orders: Sequence[str], figure_format: str = "png") -> list[str]:
    """The files evaluate writes for `--orders orders --format figure_format`: results.json,
    curves_<order>.<format> per order, and srg.<format> when morf and lerf both ran."""
    orders = list(dict.fromkeys(orders))
    names = ["results.json", *(f"curves_{order}.{figure_format}" for order in orders)]
    if {"morf", "lerf"} <= set(orders):
        names.append(f"srg.{figure_format}")
    return names


# ----------------------------------------------------------------------------- --data


def data_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --data, --split and --data-dir: the model and the images of evaluate and
    sanity."""
    model_argument(parser)
    parser.add_argument(
        "--data", required=True, metavar="DIR|cifar10|imagenette",
        help="cifar10 or imagenette (tf_signsal.data.load), or a folder of images, one "
        "subfolder per class (or the images directly in it)",
    )
    parser.add_argument(
        "--split", help="train or test for cifar10/imagenette (default: test); for a "
        "folder, a subfolder to read",
    )
    parser.add_argument(
        "--data-dir", help="local copy of cifar10/imagenette (e.g. ../shared/data)"
    )


def data_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The input folders of --data / --data-dir, that --out must lie outside."""
    if args.data in DATASETS:
        return [] if args.data_dir is None else [("--data-dir", args.data_dir)]
    return [("--data", args.data)]


def check_data(args: argparse.Namespace) -> None:
    """Refuse, before any work, the --data of evaluate or sanity that is neither a dataset
    nor a folder, or a dataset's folder of splits (which would be read as one class per
    split)."""
    from tf_signsal import data

    if args.data in DATASETS:
        return
    folder = args.data if args.split is None else os.path.join(args.data, args.split)
    if not os.path.isdir(folder):
        raise CommandError(
            f"--data must be cifar10, imagenette or an image folder; {folder} is not a folder"
        )
    splits = data.dataset_splits(folder)
    if splits:
        split = splits[0]
        advice = f"pass one split: --data {os.path.join(folder, split)}"
        if args.split is None:
            advice += f" (or --split {split})"
        name = os.path.basename(os.path.realpath(folder))
        if name in DATASETS:
            advice += f", or the dataset: --data {name} --data-dir {folder} --split {split}"
        raise CommandError(
            f"--data {folder} holds the splits {', '.join(splits)} of a dataset (each a folder "
            f"of class folders), not class folders: {advice}"
        )


# What TensorFlow adds to an op's error: the function it ran in, then the node or op.
_TF_FUNCTION = re.compile(r"\{\{function_node [^}]*\}\}")
_TF_NODE = re.compile(r"\[\[|\[Op:")


@contextlib.contextmanager
def decoding(source: str) -> Iterator[None]:
    """Report an error TensorFlow meets while reading the images of `source` (e.g. a file
    it cannot decode) as a CommandError, less TensorFlow's op names."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        text = _TF_FUNCTION.sub("", one_line(error))
        reason = _TF_NODE.split(text, maxsplit=1)[0].strip() or type(error).__name__
        raise CommandError(f"cannot read the data {source}: {reason}") from error


class EvaluationData(NamedTuple):
    """What `evaluation_data` reads for the benchmark.

    Attributes:
        dataset: batches of (images, int64 labels), or of images alone when no label is
            known; its cardinality (batches) is known.
        num_images: the number of images it holds.
        record: the "data" record of a results.json: "source", "split", "limit", "seed",
            "images_per_class" (class name -> count, None when the images have no class
            folders) and "labels" (how labels were given to the images, or why not).
        description: one line, e.g. "evaluating 20 images: 2 per class, seeded subset
            (seed 0) of cifar10 (test)".
        labelled: whether the images have labels (accuracy can be measured).
    """

    dataset: Any
    num_images: int
    record: dict[str, Any]
    description: str
    labelled: bool


def evaluation_data(
    source: str,
    image_shape: tuple[int | None, int | None, int],
    num_classes: int,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    batch_size: int = 128,
) -> EvaluationData:
    """The images of the `evaluate` command: a dataset or a folder, optionally a subset.

    Labels are given only when they name the model's classes: CIFAR-10 and Imagenette
    label their ten classes (for a model of ten classes); a folder's class folders are
    matched to `class_names` by name (a folder may hold a subset of the classes, e.g. only
    `cat/` and `ship/`), or, without names, taken in sorted order when there are exactly
    as many as the model has classes (Keras's convention). Otherwise the images have no
    label, and `record["labels"]` says why (accuracy cannot be measured; allegiance needs
    no label).

    Args:
        source: "cifar10", "imagenette" or an image folder (`<folder>/<class>/<image>`,
            or images directly in it).
        image_shape: (height, width, channels) of the model's input. For a folder,
            height and width must be fixed.
        num_classes: the model's number of classes.
        split: for a dataset, "train" or "test" (default); for a folder, a subfolder.
        data_dir: a local copy of the dataset (see `tf_signsal.data.load`); None uses
            tensorflow-datasets.
        limit: take a class-balanced, seeded subset of this many images
            (`tf_signsal.data.balanced_subset`); None takes all.
        seed: the seed of the subset.
        class_names: the model's class names, in class order, to match class folders by
            name. Ignored for cifar10/imagenette, which name their classes.
        batch_size: images per batch.

    Returns:
        An `EvaluationData(dataset, num_images, record, description, labelled)`.

    Raises:
        FileNotFoundError: a folder `source` is not a folder.
        ValueError: no image, a file that is not an image, a folder of a dataset's splits
            rather than of classes (see `tf_signsal.data.folder_files`), a class folder not among
            `class_names`, or `class_names` not of `num_classes` names.
        RuntimeError: tensorflow-datasets cannot download the data.

    Example:
        >>> data = evaluation_data("photos/", (32, 32, 3), 10, limit=100,
        ...                        class_names=data.class_names("cifar10"))
        >>> print(data.description)
    """
    import numpy as np

    from tf_signsal import data

    height, width, channels = _checks.image_shape(image_shape)
    num_classes = _checks.positive_int("num_classes", num_classes)
    if limit is not None:
        limit = _checks.positive_int("limit", limit)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must name the model's {num_classes} classes, "
            f"received {len(class_names)} names"
        )
    if source in DATASETS:
        split = split or "test"
        classes = data.class_names(source)
        groups = data.split_labels(source, split, data_dir)
        labelled = num_classes == len(classes)
        how = (
            f"the {source} labels" if labelled else
            f"none: the model has {num_classes} classes, {source} has {len(classes)}"
        )
        mapping = np.arange(len(classes))
        where = f"{source} ({split})"
    else:
        folder_path = os.fspath(source) if split is None else os.path.join(source, split)
        if height is None or width is None:
            raise ValueError("the model's input size is not fixed: images cannot be resized")
        listing = data.folder_files(folder_path)
        groups, classes = listing.groups, listing.classes
        mapping, how = _folder_labels(classes, class_names, num_classes)
        labelled = mapping is not None
        where = folder_path
    chosen = (
        np.arange(len(groups)) if limit is None else data.balanced_subset(groups, limit, seed)
    )
    counts = np.bincount(groups[chosen], minlength=max(len(classes), 1))
    images_per_class = {c: int(n) for c, n in zip(classes, counts)} if classes else None
    labels = mapping[groups[chosen]] if labelled else None
    if source in DATASETS:
        dataset = data.split_subset(
            source, split, chosen, labels, image_shape, data_dir, batch_size
        )
    else:
        dataset = data.files_dataset(
            [listing.paths[i] for i in chosen], labels, (height, width, channels), batch_size
        )
    record = {
        "source": os.fspath(source), "split": split, "limit": limit,
        "seed": seed if limit is not None else None,
        "images_per_class": images_per_class, "labels": how,
    }
    shown = sorted({int(n) for n in counts[counts > 0]}) if classes else []
    per_class = (
        "" if not shown else
        f": {shown[0]} per class" if len(shown) == 1 else f": {shown[0]} to {shown[-1]} per class"
    )
    subset = f", seeded subset (seed {seed}) of" if limit is not None and len(chosen) < len(
        groups) else " of"
    description = f"evaluating {len(chosen)} images{per_class}{subset} {where}"
    return EvaluationData(dataset, len(chosen), record, description, labelled)


def _folder_labels(
    classes: tuple[str, ...], class_names: Sequence[str] | None, num_classes: int
) -> tuple[Any, str]:
    """The model class of each class folder (None when unknown), and how it was found."""
    if not classes:
        return None, "none: the images are not in class folders"
    import numpy as np

    from tf_signsal import data

    if class_names is not None:
        return data.match_class_names(classes, class_names), "class folders matched by name"
    if len(classes) == num_classes:
        return np.arange(num_classes), (
            "class folders in sorted order (no class names given: they are taken to be the "
            "model's classes in order)"
        )
    return None, (
        f"none: {len(classes)} class folders for a model of {num_classes} classes, and no "
        "class names to match them by"
    )


# ----------------------------------------------------------------------------- the command


def _fill(text: str) -> Any:
    """An argparse `type=`: a fill. A name of `FILLS` or a number is kept as it is (the
    evaluator's defaults, today's result names); any other form (`blur:2.0`, `road:0.02`,
    `0.1,0.2,0.3`) is parsed by `tf_signsal.evaluation.parse_fill` (numpy only: parsing
    imports no TensorFlow)."""
    if text in FILLS:
        return text
    try:
        return float(text)
    except ValueError:
        pass
    from tf_signsal.evaluation import parse_fill

    try:
        return parse_fill(text)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(one_line(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare evaluate's arguments on `parser`."""
    data_arguments(parser)
    parser.add_argument(
        "--class-names", metavar="FILE",
        help="the model's class names, one per line in class order: a folder's class "
        "subfolders are matched to them by name (a folder may hold some classes only). "
        "Without names, a folder's subfolders are the model's classes in sorted order when "
        "there are as many, and otherwise accuracy is not measured",
    )
    parser.add_argument(
        "--limit", type=positive_int,
        help="evaluate N images: a class-balanced subset drawn with --seed",
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0,
        help="seed of the --limit subset and of the random control (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, help=out_help("evaluate", OUTPUTS))
    parser.add_argument(
        "--pairs", choices=("paper", "all"), default="paper",
        help="paper: the paper's six (method, fill) pairs of black and white, and the five "
        "maps with any other fill; all: every map and a random control with every fill",
    )
    parser.add_argument(
        "--fills", nargs="+", type=_fill, default=["black", "white"], metavar="FILL",
        help=f"deletion fills: {', '.join(FILLS)}, blur:SIGMA, road:NOISE_STD, a number, or "
        "one number per channel (0.1,0.2,0.3) (default: black white)",
    )
    parser.add_argument(
        "--orders", nargs="+", choices=ORDERS, default=["morf"], metavar="ORDER",
        help=f"deletion orders, of {', '.join(ORDERS)}; morf (the paper's) is required "
        "(default: morf)",
    )
    parser.add_argument(
        "--format", choices=FIGURE_FORMATS, default="png",
        help="format of the figures: png, or pdf or svg (vector, for papers) (default: png)",
    )
    attribution_argument(parser)
    precision_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=128, help="default: 128")
    _engines.engine_arguments(parser)


def evaluation_pairs(kind: str, fills: Sequence[Any]) -> list[tuple[str, Any]]:
    """The (method, fill) pairs of `evaluate --pairs kind --fills ...`.

    "paper": the paper's six pairs of black and white (those of the fills given), then the
    five maps with each other fill. "all": the five maps and the random control with every
    fill.
    """
    from tf_signsal.evaluation import PAPER_PAIRS, RANDOM_METHOD

    fills = list(dict.fromkeys(fills))
    if kind == "paper":
        paper_fills = {fill for _, fill in PAPER_PAIRS}
        return [pair for pair in PAPER_PAIRS if pair[1] in fills] + [
            (method, fill) for fill in fills if fill not in paper_fills for method in METHODS
        ]
    return [(m, f) for f in fills for m in METHODS] + [(RANDOM_METHOD, f) for f in fills]


def run(args: argparse.Namespace) -> None:
    """Run the benchmark of `args.model` on `args.data` and write its record in `args.out`."""
    prepare_out(args, "evaluate", inputs=data_inputs(args))
    engine = _engines.engine_module(args)
    check_data(args)
    names = outputs(args.orders, args.format)
    earlier = prepare_out(args, "evaluate", names, _OWN)
    from tf_signsal import data, plotting
    from tf_signsal.evaluation import AllegianceEvaluator, pair_name

    loaded = model, shape, num_classes, value_range = load_model(args)
    class_names = None
    if args.class_names is not None:
        with reading():
            class_names = data.read_class_names(args.class_names, num_classes)
    pairs = evaluation_pairs(args.pairs, args.fills)
    with reading():
        evaluator = AllegianceEvaluator(
            model, pairs=pairs, batch_size=args.batch_size, orders=args.orders,
            attribution=args.attribution, seed=args.seed, value_range=value_range,
            precision=args.precision,
        )
    with reading(RuntimeError), telling_skipped():  # RuntimeError: tfds cannot download
        chosen = evaluation_data(
            args.data, shape, num_classes, split=args.split, data_dir=args.data_dir,
            limit=args.limit, seed=args.seed, class_names=class_names,
            batch_size=args.batch_size,
        )
    print(chosen.description)
    started = time.perf_counter()
    # decoding: an image file met while reading that cannot be decoded
    with reading(), decoding(args.data):
        if engine is None:
            result = evaluator.evaluate(
                to_value_range(chosen.dataset, value_range), verbose=1,
                num_images=chosen.num_images,
            )
        else:
            result = _engines.evaluate(
                args, engine, to_value_range(chosen.dataset, value_range), dict(
                    pairs=pairs, orders=args.orders, attribution=args.attribution,
                    seed=args.seed, value_range=value_range,
                ),
            )
    seconds = time.perf_counter() - started
    print()  # ends the progress bar's line
    record = result.to_dict()
    record["data"] = chosen.record
    record["run"] = run_record("evaluate", args, loaded)
    record["run"]["parameters"] = {
        "pairs": [pair_name(pair) for pair in evaluator.pairs],
        "fractions": list(evaluator.fractions), "batch_size": args.batch_size,
        "orders": list(evaluator.orders), "attribution": args.attribution,
        "precision": args.precision,
        "seed": args.seed, "engine": args.engine,
    }
    record["run"]["seconds"] = seconds
    name = os.path.basename(os.path.normpath(args.data))
    figures = plotting.allegiance_figures(result, title=f"{name}, {result.n_images} images")
    written = write_record_and_figure(
        args.out, "evaluate", names, earlier, record,
        *(figures[file.rsplit(".", 1)[0]] for file in names[1:]),
    )
    print(result.summary())
    if not chosen.labelled:
        print(f"accuracy not measured: the images have no labels ({chosen.record['labels']})")
    print("\nwrote " + "\n      ".join(written))
