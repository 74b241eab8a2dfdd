"""The `tf-signsal` command line: demo | explain | evaluate | export.

Bad usage exits with status 2 and argparse's message; a problem with the
inputs (a missing file, a model that is not a classifier, an unreadable image)
exits with status 1 and one line on stderr, with the traceback only under
`--debug`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tf_signsal import datasets, plotting
from tf_signsal._io import write_atomic
from tf_signsal.evaluation import ALL_PAIRS, PAPER_PAIRS, AllegianceEvaluator, pair_name
from tf_signsal.maps import METHODS, SignedSaliency
from tf_signsal.report import HtmlReport

PROG = "tf-signsal"
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
RANDOM_PAIRS = (("random", "black"), ("random", "white"))
_ROWS_PER_GRID = 8


class CommandError(Exception):
    """A problem with the command's inputs, reported in one line (exit status 1)."""


# ----------------------------------------------------------------------------- helpers


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _load_model(path: str) -> keras.Model:
    """Load a Keras model file and check that it maps images to (batch, classes) scores."""
    if not os.path.exists(path):
        raise CommandError(f"model file not found: {path}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for unreadable or foreign files
        raise CommandError(f"cannot load the model {path}: {_one_line(error)}") from error
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or len(inputs) != 1 or len(tuple(inputs[0].shape)) != 4:
        raise CommandError(
            f"{path} is not an image classifier: it must take one (batch, H, W, channels) input"
        )
    if not outputs or len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        shapes = [tuple(o.shape) for o in outputs or []]
        raise CommandError(
            f"{path} is not a classifier: its output must be (batch, classes), it is {shapes}"
        )
    return model


def _image_files(paths: Sequence[str]) -> list[str]:
    """Image files named directly, and those under named folders (sorted, recursive)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise CommandError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise CommandError(f"image file or folder not found: {path}")
    return files


def _read_images(files: Sequence[str], shape: tuple) -> np.ndarray:
    """Decode, resize to the model's (H, W) and scale to [0, 1]: float32 (N, H, W, ch)."""
    height, width, channels = shape
    images = []
    for path in files:
        try:
            image = tf.io.decode_image(
                tf.io.read_file(path), channels=channels, expand_animations=False
            )
        except (tf.errors.OpError, ValueError) as error:
            raise CommandError(f"cannot read image {path}: {_one_line(error)}") from error
        image = tf.image.convert_image_dtype(image, tf.float32)  # [0, 1] for 8 and 16 bit
        size = (height or image.shape[0], width or image.shape[1])
        if image.shape[:2] != size:
            image = tf.clip_by_value(tf.image.resize(image, size, antialias=True), 0.0, 1.0)
        images.append(image.numpy())
    if len({image.shape for image in images}) > 1:
        raise CommandError(
            "the model takes any image size, but the images differ in size: resize them first"
        )
    return np.stack(images)


def _save_figure(figure: Figure, path: str) -> bytes:
    """Save a figure atomically as PNG and return its bytes (for the HTML report)."""
    plotting.save_figure(figure, path)
    with open(path, "rb") as file:
        return file.read()


def _write_json(record: dict, path: str) -> None:
    write_atomic(path, (json.dumps(record, indent=1) + "\n").encode())


def _curves_figure(result: Any, title: str) -> Figure:
    figure = Figure(figsize=(6.5, 4.5))
    result.plot(figure.subplots(), title=title)
    figure.tight_layout()
    return figure


def _auc_rows(result: Any) -> list[list[Any]]:
    return [[pair_name(pair), result.auc[pair]] for pair in result.pairs]


# ----------------------------------------------------------------------------- commands


def _run_demo(args: argparse.Namespace) -> None:
    from tf_signsal import models, training  # the demo's own dependencies
    from tf_signsal.callbacks import SaliencyMapsCallback

    started = time.perf_counter()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    names = datasets.SYNTHETIC_CLASS_NAMES
    bright = np.array(datasets.SYNTHETIC_CLASS_IS_BRIGHT)
    x_train, y_train, _ = datasets.synthetic_signs(args.train_size, args.image_size, args.seed)
    x_test, y_test, masks = datasets.synthetic_signs(args.test_size, args.image_size, args.seed + 1)
    # One probe image per class, in class order: the maps grid and the maps over training.
    probe = np.array([np.flatnonzero(y_test == c)[0] for c in range(len(names)) if c in y_test])
    print(
        f"{PROG} demo: {len(names)} classes of bright or dark shapes, {args.train_size} "
        f"training and {args.test_size} test images of {args.image_size}x{args.image_size}"
    )

    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    train_ds = train_ds.shuffle(len(x_train), seed=args.seed).batch(args.batch_size)
    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(args.batch_size)
    keras.utils.set_random_seed(args.seed)  # the initial weights
    model = models.paper_cnn((args.image_size, args.image_size, 3), len(names))
    maps_dir = os.path.join(out, "maps_over_training")
    maps_callback = SaliencyMapsCallback(
        x_test[probe], maps_dir, formats=("png", "npz"), class_names=names, labels=y_test[probe]
    )
    history = training.fit_paper_recipe(
        model, train_ds, args.epochs, test_ds, seed=args.seed, out_dir=out,
        callbacks=[maps_callback], verbose=2,
    )
    trained = time.perf_counter()

    maps, logits = SignedSaliency(model).explain_with_logits(x_test)
    maps = {method: m.numpy() for method, m in maps.items()}
    predictions = np.argmax(logits.numpy(), axis=1)
    accuracy = float(np.mean(predictions == y_test))

    # Pointing game: the share of each map's top 5% pixels inside the shape.
    groups = {"bright classes": bright[y_test], "dark classes": ~bright[y_test]}
    groups["all"] = np.ones(len(y_test), bool)
    random_map = np.random.default_rng(args.seed).random(masks.shape)
    scored = {**maps, "random map": random_map}
    pointing = {
        name: {
            group: float(np.mean(datasets.pointing_score(m, masks, reduce=False)[chosen]))
            for group, chosen in groups.items()
        }
        for name, m in scored.items()
    }
    pointing["chance (shape area)"] = {
        group: float(masks[chosen].mean()) for group, chosen in groups.items()
    }

    evaluator = AllegianceEvaluator(model, pairs=PAPER_PAIRS + RANDOM_PAIRS)
    result = evaluator.evaluate((x_test, y_test), verbose=1)

    grid_maps = {"shape": masks[probe].astype(np.float32)}
    grid_maps.update({method: maps[method][probe] for method in METHODS})
    # Short row titles: the true class on two lines, and the prediction only when wrong.
    titles = [
        "\n".join(names[true].rsplit(" ", 1))
        + ("" if true == predicted else f"\npred: {names[predicted]}")
        for true, predicted in zip(y_test[probe], predictions[probe])
    ]
    figures = {
        "maps_grid.png": plotting.plot_maps_grid(
            x_test[probe], grid_maps, ("shape", *METHODS), titles=titles
        ),
        "curves.png": _curves_figure(result, f"Allegiance, {len(x_test)} synthetic test images"),
    }
    # The first probe image is of a bright class and the second of a dark one.
    for index, method in ((0, "positive"), (1, "negative")):
        if index < len(probe):
            figures[f"maps_over_training_{method}.png"] = plotting.plot_map_evolution(
                maps_dir, index, method
            )
    pngs = {name: _save_figure(figure, os.path.join(out, name)) for name, figure in figures.items()}

    record = {
        "command": "demo",
        "config": {
            k: v for k, v in vars(args).items() if k not in ("func", "debug", "out", "command")
        },
        "class_names": list(names),
        "test_accuracy": accuracy,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "pointing_game": {"top_fraction": 0.05, "scores": pointing},
        "allegiance": result.to_dict(),
        "seconds": {"training": trained - started, "total": time.perf_counter() - started},
    }
    _write_json(record, os.path.join(out, "results.json"))

    group_names = list(groups)
    pointing_rows = [[name, *(scores[g] for g in group_names)] for name, scores in pointing.items()]
    page = HtmlReport("tf-signsal demo: sign-aware saliency on synthetic signs")
    page.paragraph(
        f"Paper CNN trained {args.epochs} epochs on {args.train_size} images of {len(names)} "
        f"classes, each a shape brighter or darker than a textured background at a "
        f"class-specific place ({', '.join(names)}). Test accuracy {accuracy:.3f} on "
        f"{args.test_size} images. A bright class's shape should appear in the positive map "
        "(pixels to brighten), a dark class's in the negative map (pixels to darken)."
    )
    page.heading("Maps of one test image per class")
    page.figure(pngs["maps_grid.png"], "first column: the image; second: its shape (the truth)")
    page.heading("Pointing game (share of the top 5% pixels of each map inside the shape)")
    page.table(["map", *group_names], pointing_rows)
    page.paragraph("Higher is better; chance is the shape's share of the image.", note=True)
    page.heading("Maps over training")
    for method in ("positive", "negative"):
        name = f"maps_over_training_{method}.png"
        if name in pngs:
            page.figure(pngs[name], f"the {method} map of a probe image after each epoch")
    page.heading("Black and white deletion (allegiance)")
    page.figure(pngs["curves.png"], "allegiance as pixels are deleted in the map's order")
    page.table(["pair", "AUC (lower is better)"], _auc_rows(result))
    page.paragraph(
        f"Total time {record['seconds']['total']:.0f} s. Files: results.json, history.json, "
        f"model.keras, {', '.join(pngs)}, maps_over_training/.", note=True
    )
    write_atomic(os.path.join(out, "report.html"), page.html().encode())

    width = max(len(name) for name in pointing)
    print(f"\ntest accuracy {accuracy:.3f}\npointing game (top 5% inside the shape):")
    print(f"  {'map':<{width}}  " + "  ".join(f"{g:>14}" for g in group_names))
    for name, *values in pointing_rows:
        print(f"  {name:<{width}}  " + "  ".join(f"{v:>14.3f}" for v in values))
    print("\n" + result.summary())
    print(f"\nreport: {os.path.join(out, 'report.html')}")
    print(f"figures, results.json and model.keras: {out}")
    print(f"done in {record['seconds']['total']:.0f} s")


def _run_explain(args: argparse.Namespace) -> None:
    model = _load_model(args.model)
    files = _image_files(args.images)
    images = _read_images(files, tuple(model.inputs[0].shape)[1:])
    targets = None
    if args.targets is not None:
        if len(args.targets) not in (1, len(files)):
            raise CommandError(
                f"--targets takes one class for all images or one per image ({len(files)}), "
                f"received {len(args.targets)}"
            )
        targets = np.resize(np.asarray(args.targets, np.int32), len(files))
    saliency = SignedSaliency(model)
    parts = []
    for start in range(0, len(files), args.batch_size):
        chosen = slice(start, start + args.batch_size)
        batch_targets = None if targets is None else targets[chosen]
        parts.append(saliency.explain_with_logits(images[chosen], batch_targets, args.methods))
    maps = {m: np.concatenate([p[0][m].numpy() for p in parts]) for m in args.methods}
    logits = np.concatenate([p[1].numpy() for p in parts])
    predictions = np.argmax(logits, axis=1)
    explained = predictions if targets is None else targets

    os.makedirs(args.out, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, files=np.array(files), images=images, logits=logits,
        predictions=predictions, targets=explained, **maps,
    )
    written = [os.path.join(args.out, "maps.npz")]
    write_atomic(written[0], buffer.getvalue())
    for start in range(0, len(files), _ROWS_PER_GRID):
        chosen = slice(start, start + _ROWS_PER_GRID)
        titles = [
            f"{os.path.basename(f)}\npred {p}" + ("" if targets is None else f", map of {t}")
            for f, p, t in zip(files[chosen], predictions[chosen], explained[chosen])
        ]
        figure = plotting.plot_maps_grid(
            images[chosen], {m: maps[m][chosen] for m in args.methods}, args.methods, titles
        )
        written.append(os.path.join(args.out, f"maps_{start // _ROWS_PER_GRID:03d}.png"))
        plotting.save_figure(figure, written[-1])
    print(f"explained {len(files)} images ({', '.join(args.methods)}):")
    print("\n".join(f"  {path}" for path in written))


def _evaluation_data(args: argparse.Namespace, model: keras.Model) -> tf.data.Dataset:
    height, width, channels = tuple(model.inputs[0].shape)[1:]
    if args.data in ("cifar10", "imagenette"):
        from tf_signsal import data  # tensorflow-datasets is only needed here

        size = None if height is None or width is None else (height, width)
        try:
            dataset = data.load(
                args.data, args.split or "test", data_dir=args.data_dir,
                batch_size=args.batch_size, image_size=size,
            )
        except RuntimeError as error:  # no download possible; the message says what to do
            raise CommandError(_one_line(error)) from error
    else:
        folder = args.data if args.split is None else os.path.join(args.data, args.split)
        if not os.path.isdir(folder):
            raise CommandError(
                f"--data must be cifar10, imagenette or an image folder; {folder} is not a folder"
            )
        if height is None or width is None:
            raise CommandError("the model's input size is not fixed: images cannot be resized")
        has_classes = any(entry.is_dir() for entry in os.scandir(folder))
        try:
            dataset = keras.utils.image_dataset_from_directory(
                folder, labels="inferred" if has_classes else None, image_size=(height, width),
                batch_size=args.batch_size, shuffle=False, verbose=False,
                color_mode={1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels, "rgb"),
            )
        except ValueError as error:  # e.g. no images
            raise CommandError(f"cannot read images in {folder}: {_one_line(error)}") from error

        def scale(images: tf.Tensor, *labels: tf.Tensor) -> Any:
            return (images / 255.0, *labels) if labels else images / 255.0

        dataset = dataset.map(scale)
    if args.limit is not None:
        dataset = dataset.unbatch().take(args.limit).batch(args.batch_size)
    return dataset


def _run_evaluate(args: argparse.Namespace) -> None:
    model = _load_model(args.model)
    dataset = _evaluation_data(args, model)
    pairs = PAPER_PAIRS if args.pairs == "paper" else ALL_PAIRS + RANDOM_PAIRS
    evaluator = AllegianceEvaluator(model, pairs=pairs, batch_size=args.batch_size)
    try:
        result = evaluator.evaluate(dataset, verbose=1)
    except tf.errors.OpError as error:  # an unreadable image file met while reading
        raise CommandError(f"cannot read the data {args.data}: {_one_line(error)}") from error
    print()  # ends the progress bar's line (a dataset's length is not known in advance)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "results.json")
    curves_path = os.path.join(args.out, "curves.png")
    result.save_json(json_path)
    name = os.path.basename(os.path.normpath(args.data))
    plotting.save_figure(_curves_figure(result, f"{name}, {result.n_images} images"), curves_path)
    print(result.summary())
    print(f"\nwrote {json_path}\n      {curves_path}")


def _run_export(args: argparse.Namespace) -> None:
    from tf_signsal import serving

    model = _load_model(args.model)
    path = serving.export(model, args.out, jacobian=args.jacobian, overwrite=args.overwrite)
    print(f"SavedModel with signatures serving_default and explain: {path}")
    print(f"inspect it with: saved_model_cli show --all --dir {path}")


# ----------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, received {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, received {text!r}")
    return value


_EXAMPLES = {
    "demo": f"example:\n  {PROG} demo --out signsal-demo\n  {PROG} demo --epochs 3 --seed 1",
    "explain": (
        f"example:\n  {PROG} explain --model model.keras --images cat.png photos/ --out maps\n"
        f"  {PROG} explain --model model.keras --images photos/ --out maps "
        "--methods positive negative --targets 3"
    ),
    "evaluate": (
        f"example:\n  {PROG} evaluate --model model.keras --data cifar10 --data-dir ../shared/data"
        f" --limit 1000 --out eval\n  {PROG} evaluate --model model.keras --data photos/ "
        "--pairs all --out eval"
    ),
    "export": (
        f"example:\n  {PROG} export --model model.keras --out models/signsal/1\n"
        "  docker run -p 8501:8501 --mount type=bind,source=$PWD/models/signsal,"
        "target=/models/signsal -e MODEL_NAME=signsal -t tensorflow/serving"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tf-signsal` and its four commands."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not overwrite a --debug given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sign-aware saliency maps (positive, negative, active, inactive) and the "
        "black/white deletion benchmark for Keras classifiers.",
        epilog=f"example:\n  {PROG} demo --out signsal-demo\n  {PROG} explain --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, parents=[common],
            epilog=_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    demo = command(
        "demo",
        "Train the paper's CNN on built-in synthetic signs, explain it, run the deletion "
        "benchmark and the pointing game, and write an HTML report.",
    )
    demo.add_argument("--out", default="signsal-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive_int, default=6, help="default: %(default)s")
    demo.add_argument("--seed", type=_non_negative_int, default=0, help="default: %(default)s")
    demo.add_argument(
        "--train-size", type=_positive_int, default=4000, help="training images (default: 4000)"
    )
    demo.add_argument(
        "--test-size", type=_positive_int, default=256, help="test images (default: %(default)s)"
    )
    demo.add_argument(
        "--image-size", type=_positive_int, default=32, help="pixels per side (default: 32)"
    )
    demo.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    demo.set_defaults(func=_run_demo)

    explain = command("explain", "Maps of image files: PNG grids and an npz of the maps.")
    explain.add_argument("--model", required=True, help="a Keras model file (.keras, .h5)")
    explain.add_argument(
        "--images", required=True, nargs="+", metavar="PATH",
        help="image files or folders (searched recursively); resized to the model's input "
        "size and scaled to [0, 1]",
    )
    explain.add_argument("--out", required=True, help="output folder")
    explain.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
        help=f"maps to compute, of {', '.join(METHODS)} (default: all)",
    )
    explain.add_argument(
        "--targets", nargs="+", type=_non_negative_int, metavar="CLASS",
        help="class to explain: one for every image or one per image (default: the predicted)",
    )
    explain.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    explain.set_defaults(func=_run_explain)

    evaluate = command(
        "evaluate", "The allegiance (black/white deletion) benchmark of a model on a dataset."
    )
    evaluate.add_argument("--model", required=True, help="a Keras model file (.keras, .h5)")
    evaluate.add_argument(
        "--data", required=True, metavar="DIR|cifar10|imagenette",
        help="cifar10 or imagenette (tf_signsal.data.load), or a folder of images, one "
        "subfolder per class",
    )
    evaluate.add_argument(
        "--split", help="train or test for cifar10/imagenette (default: test); for a folder, "
        "a subfolder to read",
    )
    evaluate.add_argument(
        "--data-dir", help="local copy of cifar10/imagenette (e.g. ../shared/data)"
    )
    evaluate.add_argument("--limit", type=_positive_int, help="evaluate the first N images only")
    evaluate.add_argument("--out", required=True, help="output folder")
    evaluate.add_argument(
        "--pairs", choices=("paper", "all"), default="paper",
        help="paper: the paper's six (method, fill) pairs; all: all ten and a random control",
    )
    evaluate.add_argument("--batch-size", type=_positive_int, default=128, help="default: 128")
    evaluate.set_defaults(func=_run_evaluate)

    export = command(
        "export", "A SavedModel for TF Serving with serving_default and explain signatures."
    )
    export.add_argument("--model", required=True, help="a Keras model file (.keras, .h5)")
    export.add_argument("--out", required=True, help="the SavedModel folder, e.g. models/name/1")
    export.add_argument(
        "--jacobian", choices=("auto", "batch_jacobian", "loop"), default="auto",
        help="all-class gradients in the graph: batch_jacobian for a GPU server, loop for a "
        "CPU one (default: auto, for this machine)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    export.set_defaults(func=_run_export)
    return parser


_REPORTED = (CommandError, ValueError, TypeError, OSError, RuntimeError, tf.errors.OpError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tf-signsal` with `argv` (default: the process's arguments); return the exit status.

    Example:
        >>> from tf_signsal.cli import main
        >>> main(["export", "--model", "model.keras", "--out", "models/signsal/1"])
        0
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except _REPORTED as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0
