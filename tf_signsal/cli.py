"""The `tf-signsal` command line: demo | explain | evaluate | sanity | export.

Bad usage exits with status 2 and argparse's message; a problem with the
inputs (a missing file, a model that is not a classifier, an unreadable image,
an --out that cannot be written) exits with status 1 and one line on stderr,
with the traceback only under `--debug`. Every --out is checked before any work: explain,
evaluate and sanity replace only the files they listed in their manifest there
(`manifest_name`), and refuse an --out holding another file of a name they write, or lying
in their input folder (--images, --data, --data-dir).

The parser is built from `tf_signsal.vocabulary` alone, so `tf-signsal --help`
answers without importing TensorFlow; each command imports what it uses. Unless
`--debug` is given, TensorFlow's C++ log (start-up lines such as "I0000 ...
cudart_stub.cc ...") is kept off the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from tf_signsal import _checks
from tf_signsal._io import read_json, write_atomic, write_json
from tf_signsal.vocabulary import ATTRIBUTIONS, DATASETS, FILLS, JACOBIAN_MODES, METHODS, ORDERS

PROG = "tf-signsal"
_ROWS_PER_GRID = 8
_RIVAL_METHODS = ("active", "inactive")

# The record and the figure of evaluate and sanity.
_EVALUATE_OUTPUTS = ("results.json", "curves.png")
_SANITY_OUTPUTS = ("sanity.json", "randomization.png")
_OUTPUTS = {
    "explain": re.compile(r"(maps|overlays)(_\d{3,})?\.(png|npz)"),
    "evaluate": re.compile("|".join(map(re.escape, _EVALUATE_OUTPUTS))),
    "sanity": re.compile("|".join(map(re.escape, _SANITY_OUTPUTS))),
}
"""The names each command may write in its --out (a manifest naming others is not obeyed)."""


def manifest_name(command: str) -> str:
    """The file in which `command` lists the files it wrote in its --out: the only files a
    later run of it replaces or removes there."""
    return f".tf-signsal-{command}.json"


EXPLAIN_MANIFEST = manifest_name("explain")
"""The list of the files `explain` wrote in its --out (the only files it ever replaces)."""


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


@contextlib.contextmanager
def _telling_skipped() -> Iterator[None]:
    """Print one line on stderr per image file the reading passed over."""
    from tf_signsal.data import SkippedImageWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedImageWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, SkippedImageWarning):
                    print(f"{PROG}: {warning.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )


# TensorFlow's C++ log lines (absl format) and absl's notice that precedes them.
_TF_LOG_LINE = re.compile(
    r"(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]|WARNING: All log messages before absl::)"
)


def _import_tensorflow(debug: bool) -> None:
    """Import TensorFlow and Keras; unless `debug`, keep TensorFlow's C++ log quiet.

    TF_CPP_MIN_LOG_LEVEL=3 silences the C++ log once TensorFlow runs (e.g. "E0000 ...
    failed call to cuInit"); the lines printed while its libraries load, before absl's
    log is set up ("I0000 ... port.cc ... oneDNN", "cudart_stub.cc"), obey no setting, so
    the import runs with file descriptor 2 captured, and what it wrote is written back
    less those lines.
    """
    if "tensorflow" in sys.modules:
        return
    if debug:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to redirect
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [line for line in text.splitlines(True) if not _TF_LOG_LINE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _check_out(out: str, must_be_new: bool = False) -> None:
    """Refuse, before any work, an --out that cannot become the output folder: an
    existing file, a path under a file, a folder that cannot be written, or (with
    `must_be_new`) anything that exists."""
    path = os.path.abspath(out)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CommandError(f"--out {out} exists and is not a folder")
    parent = path
    while not os.path.exists(parent):
        if os.path.lexists(parent):
            raise CommandError(f"--out {out}: {parent} is a broken symbolic link")
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CommandError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"--out {out}: {parent} cannot be written")
    if must_be_new and os.path.lexists(path):
        raise CommandError(f"--out {out} already exists: give --overwrite to replace it")


def _load_model(path: str) -> tuple[Any, tuple[int | None, ...], int]:
    """Load a Keras model file, check that it maps images to (batch, classes) scores, and
    return it with its (H, W, channels) input shape and number of classes."""
    import zipfile

    import keras

    from tf_signsal import _checks

    if not os.path.lexists(path) or (os.path.islink(path) and not os.path.exists(path)):
        raise CommandError(f"model file not found: {path}")
    if not os.path.isfile(path):
        raise CommandError(f"cannot load the model {path}: not a regular file")
    reason = None
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        reason = "not a .keras file (a .keras file is a zip archive; this one is not)"
    elif path.endswith((".h5", ".hdf5")):
        with open(path, "rb") as file:
            if file.read(8) != b"\x89HDF\r\n\x1a\n":
                reason = "not an HDF5 file (no HDF5 signature)"
    if reason is not None:
        raise CommandError(f"cannot load the model {path}: {reason}")
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
    return model, shape, int(outputs[0].shape[-1])


def _class_names(args: argparse.Namespace, num_classes: int) -> tuple[str, ...] | None:
    """The model's class names from --class-names FILE or a dataset's names, or None."""
    from tf_signsal import data

    if args.class_names is not None:
        with _reading():
            return data.read_class_names(args.class_names, num_classes)
    dataset = getattr(args, "names_of", None)
    if dataset is not None:
        names = data.class_names(dataset)
        if len(names) != num_classes:
            raise CommandError(
                f"{dataset} has {len(names)} classes, but the model has {num_classes}"
            )
        return names
    return None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- demo


def _run_demo(args: argparse.Namespace) -> None:
    _check_out(args.out)
    from tf_signsal import datasets, demo  # the demo's own dependencies

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


# ----------------------------------------------------------------------------- explain


def _explain_outputs(count: int) -> list[str]:
    """The names explain writes for `count` images: maps.npz, and per eight images a grid
    and the maps drawn over their images."""
    grids = (count + _ROWS_PER_GRID - 1) // _ROWS_PER_GRID
    names = ["maps.npz"]
    for i in range(grids):
        names += [f"maps_{i:03d}.png", f"overlays_{i:03d}.png"]
    return names


def _earlier_outputs(out: str, command: str) -> list[str]:
    """The files an earlier run of `command` wrote in `out` (its manifest), that still are
    files."""
    path = os.path.join(out, manifest_name(command))
    if not os.path.lexists(path):
        return []
    try:
        record = read_json(path)
        names = record["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CommandError(f"cannot read {path} ({command}'s list of its files): "
                           f"{_one_line(error)}") from error
    return [
        name for name in names if isinstance(name, str) and _OUTPUTS[command].fullmatch(name)
        and os.path.isfile(os.path.join(out, name))
        and not os.path.islink(os.path.join(out, name))
    ]


def _check_outputs(out: str, command: str, names: Sequence[str]) -> list[str]:
    """Refuse, before any work, an --out holding a file of `names` that no earlier run of
    `command` wrote; return the earlier run's files."""
    earlier = _earlier_outputs(out, command)
    foreign = [
        name for name in names
        if os.path.lexists(os.path.join(out, name)) and name not in earlier
    ]
    if foreign:
        raise CommandError(
            f"--out {out} holds {', '.join(foreign)}, which {command} did not write there "
            f"(not in {manifest_name(command)}) and will not replace: choose another --out, "
            "or move or remove them"
        )
    return earlier


def _write_outputs(
    out: str, command: str, names: Sequence[str], earlier: Sequence[str], write: Callable[[], Any]
) -> tuple[Any, list[str]]:
    """Write the files `names` of `command` in `out` with `write()` (each atomically), and
    remove the files of the earlier run (`earlier`, from `_check_outputs`) not rewritten.

    The manifest first lists both runs' files, so that a run stopped half-way leaves no file
    of its own unlisted; once written, it lists `names` alone. Returns what `write` returns
    and the names removed.
    """
    os.makedirs(out, exist_ok=True)
    manifest = os.path.join(out, manifest_name(command))
    write_json(manifest, {"command": command, "files": sorted({*earlier, *names})})
    result = write()
    stale = sorted(set(earlier) - set(names))
    for name in stale:
        os.remove(os.path.join(out, name))
    write_json(manifest, {"command": command, "files": list(names)})
    return result, stale


def _write_record_and_figure(
    out: str, command: str, names: tuple[str, str], earlier: Sequence[str], record: Any,
    figure: Any,
) -> list[str]:
    """Write `record` as JSON and `figure` as PNG under `names` in `out` (evaluate's and
    sanity's outputs), through `_write_outputs`; return their paths."""
    from tf_signsal import plotting

    json_path, figure_path = (os.path.join(out, name) for name in names)

    def write() -> None:
        write_json(json_path, record)
        plotting.save_figure(figure, figure_path)

    _write_outputs(out, command, names, earlier, write)
    return [json_path, figure_path]


def _check_out_outside(out: str, folders: Sequence[tuple[str, str]]) -> None:
    """Refuse, before any work, an --out that is one of the input `folders` ((option,
    folder) pairs) or lies inside one, symbolic links resolved: what a run writes there
    would be read as input by the next run."""
    where = os.path.realpath(out)
    for option, folder in folders:
        if not os.path.isdir(folder):
            continue
        inside = os.path.realpath(folder)
        if os.path.commonpath([where, inside]) == inside:
            relation = "is" if where == inside else "lies inside"
            raise CommandError(
                f"--out {out} {relation} the {option} folder {folder}: what tf-signsal "
                f"writes there would be read as images by the next run; choose an --out "
                f"outside {folder}"
            )


def _run_explain(args: argparse.Namespace) -> None:
    _check_out(args.out)
    _check_out_outside(args.out, [("--images", path) for path in args.images])
    from tf_signsal import data

    with _reading(), _telling_skipped():
        files = data.image_files(args.images)
    names = _explain_outputs(len(files))
    earlier = _check_outputs(args.out, "explain", names)
    model, shape, num_classes = _load_model(args.model)
    class_names = _class_names(args, num_classes)
    methods = args.methods
    if methods is None:
        methods = list(METHODS)
        if num_classes < 2:
            methods = [m for m in METHODS if m not in _RIVAL_METHODS]
            print(f"the model has a single output: {', '.join(_RIVAL_METHODS)} maps need other "
                  "classes to compare with, so only these are computed")
    with _reading():
        images = data.read_images(files, shape)
    targets = None
    if args.targets is not None:
        if len(args.targets) not in (1, len(files)):
            raise CommandError(
                f"--targets takes one class for all images or one per image ({len(files)}), "
                f"received {len(args.targets)}"
            )
        targets = [args.targets[i % len(args.targets)] for i in range(len(files))]
    from tf_signsal.maps import SignedSaliency

    explanation = SignedSaliency(model, attribution=args.attribution).explain_checked(
        images, targets, methods, batch_size=args.batch_size
    )
    (written, predictions), stale = _write_outputs(
        args.out, "explain", names, earlier, lambda: _write_explanation(
            args.out, files, images, explanation, targets is not None, class_names
        ),
    )
    print(f"explained {len(files)} images ({', '.join(methods)}):")
    for file, (index, name) in zip(files, predictions):
        print(f"  {file}: predicted {name} ({index})" if name else f"  {file}: predicted {index}")
    print("wrote:\n" + "\n".join(f"  {path}" for path in written))
    if stale:
        print(f"removed the earlier explain's {', '.join(stale)}")


def _write_explanation(
    out: str,
    files: Sequence[str],
    images: Any,
    explanation: Any,
    chosen: bool,
    class_names: Sequence[str] | None,
) -> tuple[list[str], list[tuple[int, str]]]:
    """maps.npz, and per eight images a PNG grid (with a colour bar) and the maps over their
    images, in `out`; return the paths written and
    each image's prediction (index, name or ""). `chosen`: the targets were given."""
    import numpy as np

    from tf_signsal import plotting

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


# ----------------------------------------------------------------------------- evaluate


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


def _check_data(args: argparse.Namespace) -> None:
    """Refuse, before any work, the --data of evaluate or sanity that is neither a dataset
    nor a folder, or a dataset's folder of splits (which would be read as one class per
    split), and an --out inside the data."""
    from tf_signsal import data

    if args.data in DATASETS:
        if args.data_dir is not None:
            _check_out_outside(args.out, [("--data-dir", args.data_dir)])
        return
    folder = args.data if args.split is None else os.path.join(args.data, args.split)
    if not os.path.isdir(folder):
        raise CommandError(
            f"--data must be cifar10, imagenette or an image folder; {folder} is not a folder"
        )
    _check_out_outside(args.out, [("--data", args.data)])
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
def _decoding(source: str) -> Iterator[None]:
    """Report an error TensorFlow meets while reading the images of `source` (e.g. a file
    it cannot decode) as a CommandError, less TensorFlow's op names."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        text = _TF_FUNCTION.sub("", _one_line(error))
        reason = _TF_NODE.split(text, maxsplit=1)[0].strip() or type(error).__name__
        raise CommandError(f"cannot read the data {source}: {reason}") from error


def _run_evaluate(args: argparse.Namespace) -> None:
    _check_out(args.out)
    _check_data(args)
    earlier = _check_outputs(args.out, "evaluate", _EVALUATE_OUTPUTS)
    from tf_signsal import data, plotting, report
    from tf_signsal.evaluation import AllegianceEvaluator, pair_name

    model, shape, num_classes = _load_model(args.model)
    class_names = None
    if args.class_names is not None:
        with _reading():
            class_names = data.read_class_names(args.class_names, num_classes)
    pairs = evaluation_pairs(args.pairs, args.fills)
    with _reading():
        evaluator = AllegianceEvaluator(
            model, pairs=pairs, batch_size=args.batch_size, orders=args.orders,
            attribution=args.attribution, seed=args.seed,
        )
    with _reading(RuntimeError), _telling_skipped():  # RuntimeError: tfds cannot download
        chosen = data.evaluation_data(
            args.data, shape, num_classes, split=args.split, data_dir=args.data_dir,
            limit=args.limit, seed=args.seed, class_names=class_names,
            batch_size=args.batch_size,
        )
    print(chosen.description)
    started = time.perf_counter()
    with _decoding(args.data):  # an image file met while reading that cannot be decoded
        result = evaluator.evaluate(chosen.dataset, verbose=1, num_images=chosen.num_images)
    seconds = time.perf_counter() - started
    print()  # ends the progress bar's line
    record = result.to_dict()
    record["data"] = chosen.record
    record["run"] = {
        "command": "evaluate",
        "model": {"path": os.path.abspath(args.model), "sha256": _sha256(args.model)},
        "parameters": {
            "pairs": [pair_name(pair) for pair in evaluator.pairs],
            "fractions": list(evaluator.fractions), "batch_size": args.batch_size,
            "orders": list(evaluator.orders), "attribution": args.attribution,
            "seed": args.seed,
        },
        "num_classes": num_classes,
        "versions": report.versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
    }
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.5))
    name = os.path.basename(os.path.normpath(args.data))
    plotting.plot_allegiance(result, figure.subplots(), title=f"{name}, {result.n_images} images")
    figure.tight_layout()
    written = _write_record_and_figure(
        args.out, "evaluate", _EVALUATE_OUTPUTS, earlier, record, figure
    )
    print(result.summary())
    if not chosen.labelled:
        print(f"accuracy not measured: the images have no labels ({chosen.record['labels']})")
    print("\nwrote " + "\n      ".join(written))


# ----------------------------------------------------------------------------- sanity


def _run_sanity(args: argparse.Namespace) -> None:
    _check_out(args.out)
    _check_data(args)
    earlier = _check_outputs(args.out, "sanity", _SANITY_OUTPUTS)
    import numpy as np

    from tf_signsal import data, plotting, report
    from tf_signsal.evaluation import random_logit_check, randomization_check

    model, shape, num_classes = _load_model(args.model)
    with _reading(RuntimeError), _telling_skipped(), _decoding(args.data):
        chosen = data.evaluation_data(
            args.data, shape, num_classes, split=args.split, data_dir=args.data_dir,
            limit=args.limit, seed=args.seed, batch_size=args.limit,
        )
        images = np.concatenate([
            (element[0] if isinstance(element, tuple) else element).numpy()
            for element in chosen.dataset
        ])
    print(chosen.description)
    with _reading():
        check = randomization_check(
            model, images, methods=args.methods, cascade=not args.independent, seed=args.seed
        )
        logit = random_logit_check(model, images, methods=args.methods, seed=args.seed)
    record = {
        "randomization": check.to_dict(),
        "random_logit": logit,
        "data": chosen.record,
        "run": {
            "command": "sanity",
            "model": {"path": os.path.abspath(args.model), "sha256": _sha256(args.model)},
            "num_classes": num_classes,
            "versions": report.versions(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    kind = "one layer at a time" if args.independent else "cascading from the top"
    plotting.plot_randomization(check, figure.subplots(), title=f"randomisation, {kind}")
    figure.tight_layout()
    written = _write_record_and_figure(
        args.out, "sanity", _SANITY_OUTPUTS, earlier, record, figure
    )
    print(check.summary())
    print("random-logit check (rank correlation with a random other class's map): "
          + ", ".join(f"{method} {value:.3f}" for method, value in logit.items()))
    print("\nwrote " + "\n      ".join(written))


# ----------------------------------------------------------------------------- export


def _run_export(args: argparse.Namespace) -> None:
    _check_out(args.out, must_be_new=not args.overwrite)
    from tf_signsal import serving

    model, _, _ = _load_model(args.model)
    path = serving.export(
        model, args.out, jacobian=args.jacobian, overwrite=args.overwrite,
        protect=(args.model,), attribution=args.attribution,
    )
    print(f"SavedModel with signatures serving_default and explain: {path}")
    print(f"inspect it with: saved_model_cli show --all --dir {path}")


# ----------------------------------------------------------------------------- parser


def _integer_type(check: Callable[[str, Any], int], expected: str) -> Callable[[str], int]:
    """An argparse `type=`: `text` as an int passing `check` (from `_checks`, which is
    TensorFlow-free), else argparse's usage error saying what is `expected`."""

    def parse(text: str) -> int:
        try:
            return check("value", int(text))
        except ValueError:  # not an integer, or out of range
            raise argparse.ArgumentTypeError(f"must be {expected}, received {text!r}") from None

    return parse


_positive_int = _integer_type(_checks.positive_int, "a positive integer")
_non_negative_int = _integer_type(_checks.non_negative_int, "a non-negative integer")


def _fill(text: str) -> str | float:
    """An argparse `type=`: a named fill or a number."""
    if text in FILLS:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(FILLS)} or a number, received {text!r}"
        ) from None


DEMO_OUT = os.path.join("runs", "signsal-demo")
"""The demo's default --out (runs/ is git-ignored)."""

_EXAMPLES = {
    "demo": f"example:\n  {PROG} demo\n  {PROG} demo --epochs 3 --seed 1 --out runs/demo-seed1",
    "explain": (
        f"example:\n  {PROG} explain --model model.keras --images cat.png photos/ --out runs/maps\n"
        f"  {PROG} explain --model model.keras --images photos/ --out runs/maps "
        "--methods positive negative --targets 3 --data cifar10"
    ),
    "evaluate": (
        f"example:\n  {PROG} evaluate --model model.keras --data cifar10 --data-dir ../shared/data"
        f" --limit 1000 --out runs/eval\n  {PROG} evaluate --model model.keras --data photos/ "
        "--class-names classes.txt --pairs all --orders morf lerf --out runs/eval"
    ),
    "sanity": (
        f"example:\n  {PROG} sanity --model model.keras --data cifar10 --data-dir ../shared/data "
        "--out runs/sanity\n"
        f"  {PROG} sanity --model model.keras --data photos/ --limit 16 --independent "
        "--out runs/sanity"
    ),
    "export": (
        f"example:\n  {PROG} export --model model.keras --out models/signsal/1\n"
        "  docker run -p 8501:8501 --mount type=bind,source=$PWD/models/signsal,"
        "target=/models/signsal -e MODEL_NAME=signsal -t tensorflow/serving"
    ),
}


def _data_out_help(command: str, names: Sequence[str]) -> str:
    """The --out help of evaluate and sanity."""
    return (
        f"output folder. {command} writes {' and '.join(names)} there, and lists them in "
        f"{manifest_name(command)}; run again, it replaces them. It never replaces a file "
        "it did not write: an --out holding such a file is refused, and so is an --out "
        "inside the --data or --data-dir folder"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tf-signsal` and its commands (no TensorFlow needed)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not overwrite a --debug given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="show the full traceback of an error, and TensorFlow's log",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sign-aware saliency maps (positive, negative, active, inactive) and the "
        "black/white deletion benchmark for Keras classifiers.",
        epilog=f"example:\n  {PROG} demo\n  {PROG} explain --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true",
        help="show the full traceback of an error, and TensorFlow's log",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, parents=[common],
            epilog=_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def data_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--model", required=True, help="a Keras model file (.keras, .h5)")
        sub.add_argument(
            "--data", required=True, metavar="DIR|cifar10|imagenette",
            help="cifar10 or imagenette (tf_signsal.data.load), or a folder of images, one "
            "subfolder per class (or the images directly in it)",
        )
        sub.add_argument(
            "--split", help="train or test for cifar10/imagenette (default: test); for a "
            "folder, a subfolder to read",
        )
        sub.add_argument(
            "--data-dir", help="local copy of cifar10/imagenette (e.g. ../shared/data)"
        )

    def attribution(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--attribution", choices=ATTRIBUTIONS, default="gradient",
            help="what the maps are channel reductions of (default: %(default)s, the paper)",
        )

    demo = command(
        "demo",
        "Train the paper's CNN on built-in synthetic signs, explain it, run the deletion "
        "benchmark and the pointing game, and write an HTML report.",
    )
    demo.add_argument("--out", default=DEMO_OUT, help="output folder (default: %(default)s)")
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
        "size and scaled to [0, 1]. Only regular files of at most 50 MiB and 40 megapixels "
        "are read; others are skipped, with a line on stderr",
    )
    explain.add_argument(
        "--out", required=True,
        help="output folder. explain writes maps.npz, maps_NNN.png (one grid per 8 images) "
        f"and {EXPLAIN_MANIFEST} (the list of what it wrote) there; run again, it replaces "
        "the files it listed and removes the grids the new run does not rewrite. It never "
        "replaces or removes a file it did not write: an --out holding such a maps.npz or "
        "maps_NNN.png is refused, and so is an --out inside an --images folder",
    )
    explain.add_argument(
        "--methods", nargs="+", choices=METHODS, default=None, metavar="METHOD",
        help=f"maps to compute, of {', '.join(METHODS)} (default: all; standard, positive "
        "and negative for a model with a single output)",
    )
    explain.add_argument(
        "--targets", nargs="+", type=_non_negative_int, metavar="CLASS",
        help="class to explain: one for every image or one per image (default: the predicted)",
    )
    names = explain.add_mutually_exclusive_group()
    names.add_argument(
        "--class-names", metavar="FILE",
        help="the model's class names, one per line in class order (shown in the figures)",
    )
    names.add_argument(
        "--data", dest="names_of", choices=DATASETS,
        help="the model is of this dataset: show its class names",
    )
    attribution(explain)
    explain.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    explain.set_defaults(func=_run_explain)

    evaluate = command(
        "evaluate", "The allegiance (black/white deletion) benchmark of a model on a dataset."
    )
    data_arguments(evaluate)
    evaluate.add_argument(
        "--class-names", metavar="FILE",
        help="the model's class names, one per line in class order: a folder's class "
        "subfolders are matched to them by name (a folder may hold some classes only). "
        "Without names, a folder's subfolders are the model's classes in sorted order when "
        "there are as many, and otherwise accuracy is not measured",
    )
    evaluate.add_argument(
        "--limit", type=_positive_int,
        help="evaluate N images: a class-balanced subset drawn with --seed",
    )
    evaluate.add_argument(
        "--seed", type=_non_negative_int, default=0,
        help="seed of the --limit subset and of the random control (default: %(default)s)",
    )
    evaluate.add_argument(
        "--out", required=True, help=_data_out_help("evaluate", _EVALUATE_OUTPUTS)
    )
    evaluate.add_argument(
        "--pairs", choices=("paper", "all"), default="paper",
        help="paper: the paper's six (method, fill) pairs of black and white, and the five "
        "maps with any other fill; all: every map and a random control with every fill",
    )
    evaluate.add_argument(
        "--fills", nargs="+", type=_fill, default=["black", "white"], metavar="FILL",
        help=f"deletion fills: {', '.join(FILLS)} or numbers (default: black white)",
    )
    evaluate.add_argument(
        "--orders", nargs="+", choices=ORDERS, default=["morf"], metavar="ORDER",
        help=f"deletion orders, of {', '.join(ORDERS)}; morf (the paper's) is required "
        "(default: morf)",
    )
    attribution(evaluate)
    evaluate.add_argument("--batch-size", type=_positive_int, default=128, help="default: 128")
    evaluate.set_defaults(func=_run_evaluate)

    sanity = command(
        "sanity",
        "Sanity checks of the maps: model randomisation (Adebayo et al. 2018) and the "
        "random-logit check, on a class-balanced subset of a dataset.",
    )
    data_arguments(sanity)
    sanity.add_argument(
        "--limit", type=_positive_int, default=32,
        help="images to check: a class-balanced subset drawn with --seed (default: 32)",
    )
    sanity.add_argument(
        "--seed", type=_non_negative_int, default=0,
        help="seed of the subset, the re-initialisation and the random class (default: 0)",
    )
    sanity.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
        help=f"maps to check, of {', '.join(METHODS)} (default: all)",
    )
    sanity.add_argument(
        "--independent", action="store_true",
        help="randomise one layer at a time instead of cascading from the top",
    )
    sanity.add_argument("--out", required=True, help=_data_out_help("sanity", _SANITY_OUTPUTS))
    sanity.set_defaults(func=_run_sanity)

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
    attribution(export)
    export.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing --out that is a SavedModel or an empty folder (never a "
        "folder of other files, the current folder or one above it)",
    )
    export.set_defaults(func=_run_export)
    return parser


_REPORTED = (CommandError, ValueError, TypeError, OSError, RuntimeError)


def _reported(error: BaseException) -> bool:
    """Whether `error` is a problem with the inputs (one line) rather than a bug."""
    if isinstance(error, _REPORTED):
        return True
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and isinstance(error, tensorflow.errors.OpError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tf-signsal` with `argv` (default: the process's arguments); return the exit status.

    Example:
        >>> from tf_signsal.cli import main
        >>> main(["export", "--model", "model.keras", "--out", "models/signsal/1"])
        0
    """
    args = build_parser().parse_args(argv)
    try:
        _import_tensorflow(args.debug)
        args.func(args)
    except Exception as error:
        if args.debug or not _reported(error):
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0
