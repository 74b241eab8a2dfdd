"""What the commands share: error reporting, TensorFlow's import, the model, the --out policy.

Every --out goes through `tf_signsal._io`'s one output-folder policy (`prepare_out` and
`write_out` here): a new folder, an empty one or one the package wrote in before; a command
replaces only the files its manifest lists there, holds the --out's lock from its first
check to its end (`command_scope`), and writes beside it before moving its files in.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from tf_signsal import _checks, _io
from tf_signsal.vocabulary import ATTRIBUTIONS, MODEL_OUTPUTS, PRECISIONS

PROG = "tf-signsal"


class CommandError(Exception):
    """A problem with the command's inputs, reported in one line (exit status 1)."""


@contextlib.contextmanager
def reading(*problems: type[BaseException]) -> Iterator[None]:
    """Report a problem the package finds in the command's inputs (a ValueError or OSError
    of its checks, or one of `problems`) as a CommandError."""
    try:
        yield
    except (ValueError, OSError, *problems) as error:
        raise CommandError(_io.one_line(error)) from error


@contextlib.contextmanager
def telling_skipped() -> Iterator[None]:
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


def import_tensorflow(debug: bool) -> None:
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


# ----------------------------------------------------------------------------- --out


@contextlib.contextmanager
def command_scope(args: argparse.Namespace) -> Iterator[None]:
    """The run of one command: the --out lock that `prepare_out` takes is held until the
    command ends, however it ends (an error, Ctrl-C)."""
    with _io.run_scope() as held:
        args.out_locks = held
        yield


def _tell(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def prepare_out(
    args: argparse.Namespace,
    command: str,
    names: Sequence[str] = (),
    own: re.Pattern[str] | None = None,
    inputs: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Refuse, before any work, an --out that the output-folder policy refuses (see
    `tf_signsal._io`): not a folder, not writable, inside an input folder (`inputs`,
    (option, folder) pairs), locked by another run, holding a file of `names` that
    `command` did not write, or a folder the package never wrote in. Takes the --out's lock
    for the rest of the command (`command_scope`). Returns the files of `command`'s earlier
    run there (none when `own`, the pattern of the names it may write, is None: only the
    path is checked)."""
    with reading():
        _io.check_output_path(args.out, "--out", inputs)
        args.out_locks.enter_context(
            _io.locked_output_folder(args.out, command, "--out", _tell)
        )
        if own is None:
            return []
        return _io.claim_output_folder(args.out, command, names, own, "--out", _tell)


def write_out(
    out: str, command: str, names: Sequence[str], earlier: Sequence[str],
    write: Callable[[str], Any],
) -> tuple[Any, list[str]]:
    """Write `names` with `write(folder)` in a folder beside `out`, then move them into
    `out` under `command`'s manifest (see `tf_signsal._io.write_output_folder`); return what
    `write` returns and the names of the earlier run removed."""
    return _io.write_output_folder(out, command, names, earlier, write, "--out")


def outputs_pattern(names: Sequence[str]) -> re.Pattern[str]:
    """The pattern of exactly `names`: what a command of fixed outputs may write."""
    return re.compile("|".join(map(re.escape, names)))


def write_record_and_figure(
    out: str, command: str, names: Sequence[str], earlier: Sequence[str], record: Any,
    *figures: Any,
) -> list[str]:
    """Write `record` as JSON under `names[0]` and each figure under the next names (in
    the format of their extension) in `out` (evaluate's and sanity's outputs), through
    `write_out`; return their paths."""
    from tf_signsal import plotting

    def write(folder: str) -> None:
        _io.write_json(os.path.join(folder, names[0]), record)
        for name, figure in zip(names[1:], figures, strict=True):
            plotting.save_figure(figure, os.path.join(folder, name))

    write_out(out, command, names, earlier, write)
    return [os.path.join(out, name) for name in names]


def out_help(command: str, names: Sequence[str]) -> str:
    """The --out help of a command that writes the files `names`."""
    return (
        f"output folder: a new one, an empty one or one tf-signsal wrote in. {command} "
        f"writes {' and '.join(names)} there, and lists them in {_io.manifest_name(command)}; "
        "run again, it replaces them. It never replaces a file it did not write: an --out "
        "holding such a file is refused, and so is an --out inside the input data, or one "
        "another run is writing. The files are written beside --out and moved in at the end: "
        "an interrupted run leaves --out as it was"
    )


# ----------------------------------------------------------------------------- the model

# The loader's argument names, as the command line spells them.
_MODEL_OPTIONS = {"path": "--model", "signature": "--signature", "output": "--output",
                  "outputs": "--outputs", "custom_objects": "--custom-objects"}


class LoadedModel(NamedTuple):
    """What `load_model` gives a command.

    Attributes:
        model: the Keras model of `tf_signsal.load_model`.
        shape: its (H, W, channels) input shape (H and W may be None).
        num_classes: its number of classes.
        value_range: the (low, high) range it is fed: --value-range, or (0.0, 1.0).
    """

    model: Any
    shape: tuple[int | None, ...]
    num_classes: int
    value_range: tuple[float, float]


def load_model(args: argparse.Namespace) -> LoadedModel:
    """Load --model (a .keras file, an .h5 file or a SavedModel directory) with
    `tf_signsal.load_model` and the options of `model_argument`, check that it maps images
    to (batch, classes) scores, and check --value-range against its first layers.

    Without --value-range, a model whose first layers show that it expects another range
    than [0, 1] (e.g. a Rescaling(1/255): [0, 255]) is refused, naming the --value-range
    to pass; with it, a contradiction is the API's warning (`tf_signsal._model`).
    """
    from tf_signsal import _model
    from tf_signsal.loading import EXPECTED
    from tf_signsal.loading import load_model as load

    path = args.model
    if not os.path.lexists(path) or (os.path.islink(path) and not os.path.exists(path)):
        raise CommandError(f"model file not found: {path} (expected {EXPECTED})")
    objects = custom_objects(args.custom_objects)
    try:
        model = load(
            path, signature=args.signature or "serving_default", output=args.output,
            custom_objects=objects, outputs=args.outputs,
        )
    except (ValueError, TypeError, OSError) as error:  # the loader's refusals, by name
        message = _io.one_line(error)
        if "safe_mode" in message:  # Keras's refusal of a Lambda layer's code
            message += (
                "; the command line keeps safe mode on: rebuild the model with a layer "
                "subclass (passed with --custom-objects), or, for a file you trust, load it "
                "in Python with tf_signsal.load_model(path, safe_mode=False)"
            )
        message = _as_options(message)
        if path not in message:  # Keras's own words
            message = f"cannot load the model {path}: {message}"
        raise CommandError(message) from error
    except Exception as error:  # Keras and TensorFlow raise many types on foreign files
        raise CommandError(f"cannot load the model {path}: {_io.one_line(error)}") from error
    shape = _checks.model_image_shape(model)  # checked by the loader: None or (H, W, ch)
    outputs = getattr(model, "outputs", None)
    if shape is None or not outputs:
        raise CommandError(
            f"{path} is not an image classifier: it declares no (batch, H, W, channels) input "
            "and (batch, classes) output (a subclassed model saved unbuilt)"
        )
    value_range = (0.0, 1.0) if args.value_range is None else args.value_range
    expected = _model.contradiction(model, value_range)
    if expected is not None and args.value_range is None:
        low, high = expected.value_range
        raise CommandError(
            f"the model expects pixels in [{low:g}, {high:g}] (its layer '{expected.layer}': "
            f"{expected.reason}), and without --value-range the images are fed in [0, 1]: "
            f"pass --value-range {low:g} {high:g}, or --value-range 0 1 to feed [0, 1] anyway"
        )
    return LoadedModel(model, shape, int(outputs[0].shape[-1]), value_range)


def _as_options(message: str) -> str:
    """A loader's message with its argument names spelled as the command line's options."""
    message = re.sub(r"`(\w+)`", lambda m: _MODEL_OPTIONS.get(m[1], m[0]), message)
    return re.sub(r"\boutputs='(\w+)'", r"--outputs \1", message)


def custom_objects(specs: Sequence[str] | None) -> dict[str, Any] | None:
    """{NAME: object} of --custom-objects MODULE:NAME ...: each MODULE imported (from the
    current folder or sys.path; importing runs its code, and registers the classes it
    decorates with keras.saving.register_keras_serializable), NAME taken from it."""
    if not specs:
        return None
    import importlib

    objects = {}
    for spec in specs:
        module_name, attribute = spec.split(":")
        # The console script's sys.path lacks the current folder, which `python -m` has.
        here = os.getcwd()
        added = here not in sys.path and "" not in sys.path
        if added:
            sys.path.insert(0, here)
        try:
            value = importlib.import_module(module_name)
        except Exception as error:  # the module's own code may raise anything
            raise CommandError(
                f"--custom-objects {spec}: cannot import {module_name}: {_io.one_line(error)}"
            ) from error
        finally:
            if added:
                sys.path.remove(here)
        for part in attribute.split("."):
            if not hasattr(value, part):
                raise CommandError(f"--custom-objects {spec}: {module_name} has no {attribute}")
            value = getattr(value, part)
        objects[attribute.rsplit(".", 1)[-1]] = value
    return objects


def to_value_range(images: Any, value_range: tuple[float, float]) -> Any:
    """[0, 1] images as the model is fed them: x * (high - low) + low, for an array, a
    tensor or a tf.data.Dataset of images or (images, labels); unchanged for (0, 1)."""
    low, high = value_range
    if (low, high) == (0.0, 1.0):
        return images
    import tensorflow as tf

    def scale(x: Any) -> Any:
        return x * (high - low) + low

    if isinstance(images, tf.data.Dataset):
        return images.map(lambda x, *rest: (scale(x), *rest) if rest else scale(x))
    return scale(images)


def sha256(path: str) -> str:
    """The run record's model fingerprint, in hex: the SHA-256 of a file; of a folder (a
    SavedModel), of its files in sorted order of their paths relative to it ('/'-separated),
    each as its path, a NUL byte, its size in 8 bytes (big-endian) and its content."""
    digest = hashlib.sha256()

    def add(file_path: str) -> None:
        with open(file_path, "rb") as file:
            for block in iter(lambda: file.read(2**20), b""):
                digest.update(block)

    if not os.path.isdir(path):
        add(path)
        return digest.hexdigest()
    found = []
    for root, folders, names in os.walk(path):
        folders.sort()
        found += [os.path.join(root, name) for name in names]
    for file_path in sorted(found, key=lambda p: os.path.relpath(p, path).replace(os.sep, "/")):
        relative = os.path.relpath(file_path, path).replace(os.sep, "/")
        digest.update(relative.encode() + b"\0" + os.path.getsize(file_path).to_bytes(8, "big"))
        add(file_path)
    return digest.hexdigest()


def run_record(
    command: str, args: argparse.Namespace, loaded: LoadedModel
) -> dict[str, Any]:
    """The "run" record of a results file: the command, the model (its path, fingerprint
    and how it was loaded), its classes and the value range it was fed, versions and date."""
    from datetime import datetime, timezone

    from tf_signsal import report

    model = {"path": os.path.abspath(args.model), "sha256": sha256(args.model)}
    if os.path.isdir(args.model):
        model.update(format="SavedModel", signature=args.signature or "serving_default",
                     output=args.output)
    else:
        model["format"] = "Keras"
    model.update(outputs=args.outputs, custom_objects=list(args.custom_objects or []))
    return {
        "command": command,
        "model": model,
        "num_classes": loaded.num_classes,
        "value_range": list(loaded.value_range),
        "versions": report.versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- arguments


def _integer_type(check: Callable[[str, Any], int], expected: str) -> Callable[[str], int]:
    """An argparse `type=`: `text` as an int passing `check` (from `_checks`, which is
    TensorFlow-free), else argparse's usage error saying what is `expected`."""

    def parse(text: str) -> int:
        try:
            return check("value", int(text))
        except ValueError:  # not an integer, or out of range
            raise argparse.ArgumentTypeError(f"must be {expected}, received {text!r}") from None

    return parse


positive_int = _integer_type(_checks.positive_int, "a positive integer")
non_negative_int = _integer_type(_checks.non_negative_int, "a non-negative integer")
seed_int = _integer_type(_checks.seed, "an integer in [0, 2**32)")


class _ValueRange(argparse.Action):
    """--value-range LOW HIGH, checked as the API checks value_range (usage error)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            setattr(namespace, self.dest, _checks.value_range(values, option_string))
        except (TypeError, ValueError) as error:
            parser.error(str(error))


_CUSTOM_OBJECT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _custom_object(text: str) -> str:
    """An argparse `type=`: MODULE:NAME, both dotted Python names."""
    if not _CUSTOM_OBJECT.fullmatch(text) or ".." in text or text.endswith("."):
        raise argparse.ArgumentTypeError(
            f"must be MODULE:NAME (e.g. my_layers:Doubling), received {text!r}"
        )
    return text


def model_argument(parser: argparse.ArgumentParser) -> None:
    """--model and how it is read (--signature, --output, --outputs, --custom-objects) and
    fed (--value-range): every command but demo takes them."""
    group = parser.add_argument_group("the model")
    group.add_argument(
        "--model", required=True, metavar="PATH",
        help="a .keras file, an .h5 file, or a SavedModel directory (written by "
        "model.export, tf.saved_model.save or tf-signsal export), as tf_signsal.load_model "
        "reads them. Security: as TensorFlow's security guidance says, a SavedModel is a "
        "program: loading one runs its graph, so a SavedModel from an untrusted source can "
        "run any code it carries; load only SavedModels you trust. .keras and .h5 files are "
        "loaded in Keras's safe mode (no Lambda layer's Python code)",
    )
    group.add_argument(
        "--signature", metavar="NAME",
        help="the SavedModel signature to explain (default: serving_default)",
    )
    group.add_argument(
        "--output", metavar="NAME",
        help="the signature's output to explain, e.g. logits (default: its only output)",
    )
    group.add_argument(
        "--outputs", choices=MODEL_OUTPUTS, default="logits",
        help="logits (default), or log_probabilities for a SavedModel whose output is "
        "probabilities: their log is explained (the active and inactive maps are those of "
        "the logits; the others are of log-probabilities)",
    )
    group.add_argument(
        "--custom-objects", nargs="+", type=_custom_object, metavar="MODULE:NAME",
        help="custom layers or functions a .keras/.h5 file needs: imports MODULE (from the "
        "current folder or PYTHONPATH; importing runs the module's code, so name only "
        "modules you trust) and passes its NAME to Keras as custom object NAME. Keras's safe "
        "mode stays on",
    )
    group.add_argument(
        "--value-range", nargs=2, type=float, action=_ValueRange, metavar=("LOW", "HIGH"),
        help="the pixel range the model is fed: images are read as [0, 1] and scaled to "
        "[LOW, HIGH], whose ends are also the black and white fills (default: 0 1). A model "
        "whose first layers show another range (e.g. Rescaling(1/255), as in "
        "keras.applications' EfficientNet, or ConvNeXt's Normalization: 0 255) is refused "
        "without it",
    )


def attribution_argument(parser: argparse.ArgumentParser) -> None:
    """--attribution: what the maps are channel reductions of."""
    parser.add_argument(
        "--attribution", choices=ATTRIBUTIONS, default="gradient",
        help="what the maps are channel reductions of (default: %(default)s, the paper)",
    )


def precision_argument(parser: argparse.ArgumentParser) -> None:
    """--precision: what the model's passes compute in (`SignedSaliency(precision=...)`)."""
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="float32",
        help="float32 (default), or bfloat16: the model's passes run on a bfloat16 copy of it "
        "(the maps stay float32); faster on CPUs with AVX512-BF16/AMX and on GPUs, the maps "
        "agreeing with float32's up to bfloat16's rounding (benchmarks/README.md)",
    )
