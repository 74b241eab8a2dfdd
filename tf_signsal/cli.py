"""The `tf-signsal` command line: demo | explain | evaluate | export.

Bad usage exits with status 2 and argparse's message; a problem with the
inputs (a missing file, a model that is not a classifier, an unreadable image)
exits with status 1 and one line on stderr, with the traceback only under
`--debug`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tf_signsal import _checks, data, datasets, plotting
from tf_signsal._io import write_atomic
from tf_signsal.evaluation import (
    ALL_PAIRS,
    PAPER_PAIRS,
    RANDOM_PAIRS,
    AllegianceEvaluator,
    AllegianceResult,
)
from tf_signsal.gradients import JACOBIAN_MODES
from tf_signsal.maps import METHODS, Explanation, SignedSaliency

PROG = "tf-signsal"
_ROWS_PER_GRID = 8


class CommandError(Exception):
    """A problem with the command's inputs, reported in one line (exit status 1)."""


# ----------------------------------------------------------------------------- helpers


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def _reading(*problems: type[BaseException]) -> Iterator[None]:
    """Report a problem the package finds in the command's inputs as a CommandError."""
    try:
        yield
    except (ValueError, OSError, *problems) as error:
        raise CommandError(_one_line(error)) from error


def _load_model(path: str) -> tuple[keras.Model, tuple[int | None, ...]]:
    """Load a Keras model file, check that it maps images to (batch, classes) scores, and
    return it with its (H, W, channels) input shape."""
    if not os.path.exists(path):
        raise CommandError(f"model file not found: {path}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for unreadable or foreign files
        raise CommandError(f"cannot load the model {path}: {_one_line(error)}") from error
    try:
        shape = _checks.model_image_shape(model)
    except ValueError as error:
        raise CommandError(f"{path} is not an image classifier: {_one_line(error)}") from error
    if shape is None:
        raise CommandError(
            f"{path} is not an image classifier: it declares no (batch, H, W, channels) input"
        )
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        shapes = [tuple(o.shape) for o in outputs or []]
        raise CommandError(
            f"{path} is not a classifier: its output must be (batch, classes), it is {shapes}"
        )
    return model, shape


def _curves_figure(result: AllegianceResult, title: str) -> Figure:
    figure = Figure(figsize=(6.5, 4.5))
    plotting.plot_allegiance(result, figure.subplots(), title=title)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- commands


def _run_demo(args: argparse.Namespace) -> None:
    from tf_signsal import demo  # the demo's own dependencies: models, training, callbacks

    print(
        f"{PROG} demo: {len(datasets.SYNTHETIC_CLASS_NAMES)} classes of bright or dark shapes, "
        f"{args.train_size} training and {args.test_size} test images of "
        f"{args.image_size}x{args.image_size}"
    )
    record = demo.run_demo(
        args.out, epochs=args.epochs, seed=args.seed, train_size=args.train_size,
        test_size=args.test_size, image_size=args.image_size, batch_size=args.batch_size,
    )
    out = os.path.abspath(args.out)
    print("\n" + demo.summary(record))
    print(f"\nreport: {os.path.join(out, demo.REPORT_FILE)}")
    print(f"figures, {demo.RESULTS_FILE} and model.keras: {out}")
    print(f"done in {record['seconds']['total']:.0f} s")


def _run_explain(args: argparse.Namespace) -> None:
    model, shape = _load_model(args.model)
    with _reading():
        files = data.image_files(args.images)
        images = data.read_images(files, shape)
    targets = None
    if args.targets is not None:
        if len(args.targets) not in (1, len(files)):
            raise CommandError(
                f"--targets takes one class for all images or one per image ({len(files)}), "
                f"received {len(args.targets)}"
            )
        targets = np.resize(np.asarray(args.targets, np.int32), len(files))
    explanation = SignedSaliency(model).explain_checked(
        images, targets, args.methods, batch_size=args.batch_size
    )
    os.makedirs(args.out, exist_ok=True)
    written = _write_explanation(args.out, files, images, explanation, targets is not None)
    print(f"explained {len(files)} images ({', '.join(args.methods)}):")
    print("\n".join(f"  {path}" for path in written))


def _write_explanation(
    out: str, files: Sequence[str], images: np.ndarray, explanation: Explanation, chosen: bool
) -> list[str]:
    """maps.npz and a PNG grid per eight images in `out`; return the paths written.
    `chosen`: the targets were given (the grid titles name them)."""
    maps = {m: v.numpy() for m, v in explanation.maps.items()}
    logits = explanation.logits.numpy()
    predictions = np.argmax(logits, axis=1)
    targets = explanation.targets.numpy()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, files=np.array(files), images=images, logits=logits,
        predictions=predictions, targets=targets, **maps,
    )
    written = [os.path.join(out, "maps.npz")]
    write_atomic(written[0], buffer.getvalue())
    for start in range(0, len(files), _ROWS_PER_GRID):
        rows = slice(start, start + _ROWS_PER_GRID)
        titles = [
            f"{os.path.basename(f)}\npred {p}" + (f", map of {t}" if chosen else "")
            for f, p, t in zip(files[rows], predictions[rows], targets[rows])
        ]
        figure = plotting.plot_maps_grid(
            images[rows], {m: v[rows] for m, v in maps.items()}, list(maps), titles
        )
        written.append(os.path.join(out, f"maps_{start // _ROWS_PER_GRID:03d}.png"))
        plotting.save_figure(figure, written[-1])
    return written


def _evaluation_data(args: argparse.Namespace, shape: tuple[int | None, ...]) -> tf.data.Dataset:
    height, width, _ = shape
    if args.data in data.NAMES:
        size = None if height is None or width is None else (height, width)
        with _reading(RuntimeError):  # RuntimeError: no download possible; it says what to do
            dataset = data.load(
                args.data, args.split or "test", data_dir=args.data_dir,
                batch_size=args.batch_size, image_size=size,
            )
    else:
        folder = args.data if args.split is None else os.path.join(args.data, args.split)
        if not os.path.isdir(folder):
            raise CommandError(
                f"--data must be cifar10, imagenette or an image folder; {folder} is not a folder"
            )
        if height is None or width is None:
            raise CommandError("the model's input size is not fixed: images cannot be resized")
        with _reading():
            dataset = data.image_folder_dataset(folder, shape, args.batch_size)
    if args.limit is not None:
        dataset = dataset.unbatch().take(args.limit).batch(args.batch_size)
    return dataset


def _run_evaluate(args: argparse.Namespace) -> None:
    model, shape = _load_model(args.model)
    dataset = _evaluation_data(args, shape)
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

    model, _ = _load_model(args.model)
    path = serving.export(model, args.out, jacobian=args.jacobian, overwrite=args.overwrite)
    print(f"SavedModel with signatures serving_default and explain: {path}")
    print(f"inspect it with: saved_model_cli show --all --dir {path}")


# ----------------------------------------------------------------------------- parser


def _argument_type(check: Callable[[str, Any], int], expected: str) -> Callable[[str], int]:
    """An argparse `type=`: an integer, checked by `check` (a `_checks` function)."""

    def parse(text: str) -> int:
        try:
            return check("value", int(text))
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {expected}, received {text!r}") from None

    return parse


_positive_int = _argument_type(_checks.positive_int, "a positive integer")
_non_negative_int = _argument_type(_checks.non_negative_int, "a non-negative integer")


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
        "--jacobian", choices=JACOBIAN_MODES, default="auto",
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
