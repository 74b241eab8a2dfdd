"""`tf-signsal explain`: the maps of image files, as PNG grids and an npz of the maps."""

from __future__ import annotations

import argparse
import io
import os
import re
from collections.abc import Sequence
from typing import Any

from tf_signsal import _io
from tf_signsal.cli import _engines
from tf_signsal.cli._common import (
    PROG,
    CommandError,
    attribution_argument,
    load_model,
    model_argument,
    non_negative_int,
    positive_int,
    precision_argument,
    prepare_out,
    reading,
    telling_skipped,
    to_value_range,
    write_out,
)
from tf_signsal.vocabulary import DATASETS, METHODS

HELP = "Maps of image files: PNG grids, the maps over their images, and an npz of the maps."
EXAMPLE = (
    f"example:\n  {PROG} explain --model model.keras --images cat.png photos/ --out runs/maps\n"
    f"  {PROG} explain --model model.keras --images photos/ --out runs/maps "
    "--methods positive negative --targets 3 --data cifar10"
)

MANIFEST = _io.manifest_name("explain")
"""The list of the files `explain` wrote in its --out (the only files it ever replaces)."""

_OWN = re.compile(r"(maps|overlays)(_\d{3,})?\.(png|npz)")  # the names explain may write
_ROWS_PER_GRID = 8
_RIVAL_METHODS = ("active", "inactive")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare explain's arguments on `parser`."""
    model_argument(parser)
    parser.add_argument(
        "--images", required=True, nargs="+", metavar="PATH",
        help="image files or folders (searched recursively); resized to the model's input "
        "size and scaled to [0, 1]. Only regular files of at most 50 MiB and 40 megapixels "
        "are read; others are skipped, with a line on stderr",
    )
    parser.add_argument(
        "--out", required=True,
        help="output folder: a new one, an empty one or one tf-signsal wrote in. explain "
        "writes maps.npz, maps_NNN.png (one grid per 8 images: image | each map, with a "
        "colour bar), overlays_NNN.png (the same maps drawn over their images) and "
        f"{MANIFEST} (the list of what it wrote) there; run again, it replaces the files it "
        "listed and removes the grids the new run does not rewrite. It never replaces or "
        "removes a file it did not write: an --out holding such a maps.npz, maps_NNN.png or "
        "overlays_NNN.png is refused, and so is an "
        "--out inside an --images folder or one another run is writing. The files are "
        "written beside --out and moved in at the end: an interrupted run leaves --out as it was",
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=None, metavar="METHOD",
        help=f"maps to compute, of {', '.join(METHODS)} (default: all; standard, positive "
        "and negative for a model with a single output)",
    )
    parser.add_argument(
        "--targets", nargs="+", type=non_negative_int, metavar="CLASS",
        help="class to explain: one for every image or one per image (default: the predicted)",
    )
    names = parser.add_mutually_exclusive_group()
    names.add_argument(
        "--class-names", metavar="FILE",
        help="the model's class names, one per line in class order (shown in the figures)",
    )
    names.add_argument(
        "--data", dest="names_of", choices=DATASETS,
        help="the model is of this dataset: show its class names",
    )
    attribution_argument(parser)
    precision_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=32, help="default: 32")
    _engines.engine_arguments(parser)


def _outputs(count: int) -> list[str]:
    """The names explain writes for `count` images: maps.npz, and per eight images a grid
    and the maps drawn over their images."""
    grids = (count + _ROWS_PER_GRID - 1) // _ROWS_PER_GRID
    names = ["maps.npz"]
    for i in range(grids):
        names += [f"maps_{i:03d}.png", f"overlays_{i:03d}.png"]
    return names


def _class_names(args: argparse.Namespace, num_classes: int) -> tuple[str, ...] | None:
    """The model's class names from --class-names FILE or a dataset's names, or None."""
    from tf_signsal import data

    if args.class_names is not None:
        with reading():
            return data.read_class_names(args.class_names, num_classes)
    if args.names_of is not None:
        names = data.class_names(args.names_of)
        if len(names) != num_classes:
            raise CommandError(
                f"{args.names_of} has {len(names)} classes, but the model has {num_classes}"
            )
        return names
    return None


def run(args: argparse.Namespace) -> None:
    """Explain the images of `args.images` with the model of `args.model` into `args.out`."""
    prepare_out(args, "explain", inputs=[("--images", path) for path in args.images])
    engine = _engines.engine_module(args)
    if engine is not None:
        _engines.check_out(args)
        if args.targets is not None:
            raise CommandError(f"--targets is not taken with --engine {args.engine}: the "
                               "engines explain the predicted classes")
    from tf_signsal import data

    with reading(), telling_skipped():
        files = data.image_files(args.images)
    names = _outputs(len(files))
    earlier = prepare_out(args, "explain", names, _OWN) if engine is None else []
    model, shape, num_classes, value_range = load_model(args)
    class_names = _class_names(args, num_classes)
    methods = args.methods
    if methods is None:
        methods = list(METHODS)
        if num_classes < 2:
            methods = [m for m in METHODS if m not in _RIVAL_METHODS]
            print(f"the model has a single output: {', '.join(_RIVAL_METHODS)} maps need other "
                  "classes to compare with, so only these are computed")
    with reading():
        images = data.read_images(files, shape)
    if engine is not None:
        with reading():
            _engines.write_maps(args, engine, to_value_range(images, value_range), methods,
                                value_range)
        print(f"explained {len(files)} images ({', '.join(methods)}) on {args.engine}: index "
              "i is the i-th image file, in the order of --images (a folder's sorted by path)"
              f"\nwrote {args.out} (read it with tf_signsal.read_maps)")
        return
    targets = None
    if args.targets is not None:
        if len(args.targets) not in (1, len(files)):
            raise CommandError(
                f"--targets takes one class for all images or one per image ({len(files)}), "
                f"received {len(args.targets)}"
            )
        targets = [args.targets[i % len(args.targets)] for i in range(len(files))]
    from tf_signsal.maps import SignedSaliency

    with reading():
        explanation = SignedSaliency(
            model, attribution=args.attribution, value_range=value_range,
            precision=args.precision,
        ).explain(to_value_range(images, value_range), targets, methods,
                  batch_size=args.batch_size)
    (written, predictions), stale = write_out(
        args.out, "explain", names, earlier, lambda folder: _write_explanation(
            folder, files, images, explanation, targets is not None, class_names, value_range
        ),
    )
    print(f"explained {len(files)} images ({', '.join(methods)}):")
    for file, (index, name) in zip(files, predictions):
        print(f"  {file}: predicted {name} ({index})" if name else f"  {file}: predicted {index}")
    print("wrote:\n" + "\n".join(
        f"  {os.path.join(args.out, os.path.basename(path))}" for path in written
    ))
    if stale:
        print(f"removed the earlier explain's {', '.join(stale)}")


def _write_explanation(
    out: str,
    files: Sequence[str],
    images: Any,
    explanation: Any,
    chosen: bool,
    class_names: Sequence[str] | None,
    value_range: tuple[float, float],
) -> tuple[list[str], list[tuple[int, str]]]:
    """maps.npz, and per eight images a PNG grid (with a colour bar) and the maps over their
    images, in `out`; return the paths written and each image's prediction (index, name or
    ""). `chosen`: the targets were given. `images` are as read, in [0, 1]; the model was
    fed them scaled to `value_range`, which maps.npz records."""
    import numpy as np

    from tf_signsal import plotting

    maps = {m: v.numpy() for m, v in explanation.items()}
    logits = explanation.logits.numpy()
    predictions = np.argmax(logits, axis=1)
    targets = explanation.targets.numpy()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, files=np.array(files), images=images, logits=logits,
        predictions=predictions, targets=targets, value_range=np.array(value_range), **maps,
    )
    written = [os.path.join(out, "maps.npz")]
    _io.write_atomic(written[0], buffer.getvalue())

    def label(index: int) -> str:
        return plotting.class_label(index, class_names) + (
            f" ({index})" if class_names is not None else ""
        )

    for start in range(0, len(files), _ROWS_PER_GRID):
        rows = slice(start, start + _ROWS_PER_GRID)
        titles = [
            f"{os.path.basename(f)}\npred {label(p)}" + (f", map of {label(t)}" if chosen else "")
            for f, p, t in zip(files[rows], predictions[rows], targets[rows])
        ]
        shown = {m: v[rows] for m, v in maps.items()}
        grid = start // _ROWS_PER_GRID
        figures = {
            f"maps_{grid:03d}.png": plotting.plot_maps_grid(
                images[rows], shown, list(maps), titles, colorbar=True
            ),
            f"overlays_{grid:03d}.png": plotting.plot_overlays(
                images[rows], shown, list(maps), titles=titles
            ),
        }
        for name, figure in figures.items():
            written.append(os.path.join(out, name))
            plotting.save_figure(figure, written[-1])
    named = [
        (int(p), class_names[p] if class_names is not None and p < len(class_names) else "")
        for p in predictions
    ]
    return written, named
